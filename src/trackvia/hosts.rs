//! The allow list of hosts the operator may call.

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

impl AllowedHosts {
    /// Parse a comma-separated list of patterns.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let lower = raw.to_ascii_lowercase();
            let (host_part, port_part) = match lower.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.to_string())),
                None => (lower.clone(), None),
            };
            let (any_port, port) = match port_part.as_deref() {
                None => (false, None),
                Some("*") => (true, None),
                Some(p) => (
                    false,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("allowed host {raw:?}: bad port"))?,
                    ),
                ),
            };
            let (wildcard, host) = match host_part.strip_prefix("*.") {
                Some(rest) => (true, rest.to_string()),
                None => (false, host_part),
            };
            if host.is_empty() || host.contains('*') || host.contains('/') {
                return Err(format!(
                    "allowed host {raw:?}: expected host[:port] or *.domain[:port]"
                ));
            }
            patterns.push(HostPattern {
                host,
                wildcard,
                port,
                any_port,
            });
        }
        if patterns.is_empty() {
            return Err("the allow list of hosts is empty".into());
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

/// Split `host[:port]` into a lower-case host and a port (443 by default).
pub fn split_host_port(host_port: &str) -> Option<(String, u16)> {
    let lower = host_port.to_ascii_lowercase();
    match lower.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok().filter(|p| *p > 0)?)),
        None => Some((lower, 443)),
    }
}
