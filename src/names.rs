//! Names Kubernetes and TrackVia accept: DNS subdomains, label and annotation
//! keys, label values, Secret data keys, and `host[:port]`. Written once and
//! used by the spec checks and by the outbound allow list; pure, no IO.

/// The port used when `host[:port]` names none.
pub const DEFAULT_PORT: u16 = 443;

/// A lower-case DNS subdomain: labels of 1 to 63 letters, digits and inner
/// hyphens, at most 253 characters in all.
pub fn valid_dns_subdomain(name: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

/// The name part of a qualified name, or a non-empty label value.
fn valid_name_part(name: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    (1..=63).contains(&name.len())
        && edge(name.bytes().next())
        && edge(name.bytes().last())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A Kubernetes qualified name (label or annotation key): `[prefix/]name`.
pub fn valid_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => valid_dns_subdomain(prefix) && valid_name_part(name),
        None => valid_name_part(key),
    }
}

/// A label value: empty, or a name part.
pub fn valid_label_value(value: &str) -> bool {
    value.is_empty() || valid_name_part(value)
}

/// A key of a Secret's `data`.
pub fn valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key != "."
        && key != ".."
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// `text` split at its last `:` into a host part and a port part, if any.
pub fn split_port(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    }
}

/// A port written as 1 to 5 digits, from 1 to 65535.
pub fn port_number(text: &str) -> Option<u16> {
    let digits = (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|p| *p > 0)
}

/// A host and port as written in a spec (`host[:port]`), lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The DNS name.
    pub host: String,
    /// The port, [`DEFAULT_PORT`] when none was written.
    pub port: u16,
}

impl HostPort {
    /// Split `host[:port]` (any case) at its port: the host part is taken as
    /// it is (lower-cased), the port must be valid. Where the host was checked
    /// already, or an address such as `[::1]` is fine, this is the parse.
    pub fn split(text: &str) -> Option<HostPort> {
        let lower = text.to_ascii_lowercase();
        let (host, port) = split_port(&lower);
        let port = match port {
            Some(p) => port_number(p)?,
            None => DEFAULT_PORT,
        };
        Some(HostPort {
            host: host.to_string(),
            port,
        })
    }

    /// Parse `host[:port]`: a DNS name (any case) and an optional port.
    pub fn parse(text: &str) -> Option<HostPort> {
        HostPort::split(text).filter(|h| valid_dns_subdomain(&h.host))
    }
}

/// A lower-case DNS name with an optional port from 1 to 65535, and nothing else.
pub fn valid_host_port(text: &str) -> bool {
    text.bytes().all(|b| !b.is_ascii_uppercase()) && HostPort::parse(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        let cases: [(&str, Option<(&str, u16)>); 12] = [
            ("acme.trackvia.com", Some(("acme.trackvia.com", 443))),
            ("ACME.trackvia.com:8443", Some(("acme.trackvia.com", 8443))),
            ("localhost:1", Some(("localhost", 1))),
            ("localhost:65535", Some(("localhost", 65535))),
            ("localhost:0", None),
            ("localhost:65536", None),
            ("localhost:+443", None),
            ("localhost:", None),
            ("localhost:000443", None),
            ("-bad.com", None),
            ("a..b", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = HostPort::parse(text);
            assert_eq!(
                got.as_ref().map(|h| (h.host.as_str(), h.port)),
                want,
                "{text}"
            );
        }
        assert_eq!(
            HostPort::split("[::1]:8443").map(|h| (h.host, h.port)),
            Some(("[::1]".to_string(), 8443))
        );
        assert!(!valid_host_port("ACME.trackvia.com"));
        assert!(valid_host_port("acme.trackvia.com:8443"));
    }

    #[test]
    fn keys_and_values() {
        assert!(valid_qualified_name("example.com/team"));
        assert!(valid_qualified_name("team_a.b-c"));
        assert!(!valid_qualified_name("Example.com/team"));
        assert!(!valid_qualified_name("-team"));
        assert!(valid_label_value(""));
        assert!(!valid_label_value("a b"));
        assert!(valid_secret_key("api.key_1-x"));
        for bad in ["", ".", "..", "a/b", &"k".repeat(254)] {
            assert!(!valid_secret_key(bad), "{bad}");
        }
    }
}
