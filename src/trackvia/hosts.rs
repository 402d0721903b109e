//! The allow list of hosts the operator may call.

use crate::names::{self, HostPort};

/// An allow list that cannot be used, with the pattern at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    /// A pattern's port is no number.
    #[error("allowed host {0:?}: bad port")]
    Port(String),
    /// A pattern is not `host[:port]` or `*.domain[:port]`.
    #[error("allowed host {0:?}: expected host[:port] or *.domain[:port]")]
    Pattern(String),
    /// No pattern at all.
    #[error("the allow list of hosts is empty")]
    Empty,
}

/// Hosts the operator may call. Patterns: `host`, `host:port`, `host:*`,
/// `*.domain`, `*.domain:port`; a pattern without a port means port 443.
#[derive(Clone, Debug)]
pub struct AllowedHosts {
    patterns: Vec<HostPattern>,
}

#[derive(Clone, Debug)]
struct HostPattern {
    host: String,
    wildcard: bool,
    port: Option<u16>,
    any_port: bool,
}

impl std::str::FromStr for AllowedHosts {
    type Err = HostsError;

    /// See [`AllowedHosts::parse`].
    fn from_str(list: &str) -> Result<Self, HostsError> {
        AllowedHosts::parse(list)
    }
}

impl AllowedHosts {
    /// Parse a comma-separated list of patterns.
    pub fn parse(list: &str) -> Result<Self, HostsError> {
        let mut patterns = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let lower = raw.to_ascii_lowercase();
            let (host_part, port_part) = names::split_port(&lower);
            let (any_port, port) = match port_part {
                None => (false, None),
                Some("*") => (true, None),
                Some(p) => (
                    false,
                    Some(
                        // Any u16, as always: a pattern of port 0 matches nothing.
                        p.parse::<u16>()
                            .map_err(|_| HostsError::Port(raw.to_string()))?,
                    ),
                ),
            };
            let (wildcard, host) = match host_part.strip_prefix("*.") {
                Some(rest) => (true, rest.to_string()),
                None => (false, host_part.to_string()),
            };
            if host.is_empty() || host.contains('*') || host.contains('/') {
                return Err(HostsError::Pattern(raw.to_string()));
            }
            patterns.push(HostPattern {
                host,
                wildcard,
                port,
                any_port,
            });
        }
        if patterns.is_empty() {
            return Err(HostsError::Empty);
        }
        Ok(AllowedHosts { patterns })
    }

    /// Whether `host[:port]` (as written in a spec) may be called.
    pub fn allows(&self, host_port: &str) -> bool {
        let Some((host, port)) = split_host_port(host_port) else {
            return false;
        };
        self.patterns.iter().any(|p| {
            let host_ok = if p.wildcard {
                host.len() > p.host.len() + 1
                    && host.ends_with(&p.host)
                    && host.as_bytes()[host.len() - p.host.len() - 1] == b'.'
            } else {
                host == p.host
            };
            let port_ok = p.any_port || port == p.port.unwrap_or(443);
            host_ok && port_ok
        })
    }
}

/// Split `host[:port]` into a lower-case host and a port (443 by default);
/// `None` when the port is not one.
pub fn split_host_port(host_port: &str) -> Option<(String, u16)> {
    HostPort::split(host_port).map(|h| (h.host, h.port))
}
