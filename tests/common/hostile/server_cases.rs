//! The hostile servers of `tests/hostile_servers.rs` and the cases that point connections at
//! them: redirects, bodies that are not the list of views, and untrustworthy transports.

use trackvia_testsupport::fake::{Behavior, FakeTrackVia};

use super::servers::{Outcome, PlainServer, Proxy};
use crate::common::Harness;

/// The servers that stand where TrackVia should be, besides the harness's fake.
pub struct Hostiles {
    pub evil: FakeTrackVia,
    pub untrusted: FakeTrackVia,
    pub http_target: PlainServer,
    pub no_tls: PlainServer,
    /// Trickles the fake's answers.
    pub slow: Proxy,
    /// The fake under a name its certificate lacks.
    pub misnamed: Proxy,
}

/// Where a connection points, and the fake that answers there (directly or through a proxy), if any.
pub struct Server {
    pub fake: Option<FakeTrackVia>,
    pub host: String,
}

/// What the case is, where it points, what the fake answers there and what must follow.
pub type HostileCase = (&'static str, Server, Behavior, Outcome);

/// The harness's fake, reached directly.
pub fn main_fake(h: &Harness) -> Server {
    Server {
        fake: Some(h.fake.clone()),
        host: h.fake.host(),
    }
}

/// Redirects to places that would answer: none is followed.
pub fn redirects(h: &Harness, s: &Hostiles) -> Vec<HostileCase> {
    let redirect = |location: String, status| Behavior::Redirect { location, status };
    let not_followed = Outcome::Transient("redirects are not followed");
    vec![
        (
            "302 to another trusted, allowed host",
            main_fake(h),
            redirect(format!("{}/openapi/views", s.evil.base_url()), 302),
            not_followed,
        ),
        (
            "307 to another path of the same host",
            main_fake(h),
            redirect(format!("{}/openapi/apps", h.fake.base_url()), 307),
            not_followed,
        ),
        (
            "301 to plain http",
            main_fake(h),
            redirect(
                format!("http://localhost:{}/openapi/views", s.http_target.port),
                301,
            ),
            not_followed,
        ),
        (
            "308 to the cloud metadata address",
            main_fake(h),
            redirect("https://169.254.169.254/latest/meta-data/".into(), 308),
            not_followed,
        ),
    ]
}

/// Bodies that are not the list of views, or carry control characters.
pub fn bodies(h: &Harness) -> Vec<HostileCase> {
    let status = |code, body: &str, content_type: Option<&str>| Behavior::Status {
        code,
        body: body.into(),
        content_type: content_type.map(Into::into),
    };
    vec![
        (
            "a 50 MB body that is not JSON",
            main_fake(h),
            Behavior::NotJsonBody { bytes: 50_000_000 },
            Outcome::Transient("JSON list"),
        ),
        (
            "an HTML login page",
            main_fake(h),
            status(200, "<html><body>Sign in</body></html>", Some("text/html")),
            Outcome::Transient("JSON list"),
        ),
        (
            "a JSON object instead of a list",
            main_fake(h),
            status(200, r#"{"views":[]}"#, Some("application/json")),
            Outcome::Transient("JSON list"),
        ),
        (
            "terminal escapes and CRLF in the error",
            main_fake(h),
            status(401, "\u{1b}[31mDenied\r\nX-Injected: 1\u{7}", None),
            Outcome::Refusal("Unauthorized", "Denied X-Injected: 1"),
        ),
    ]
}

/// Servers that trickle, or whose transport must not be trusted.
pub fn servers(h: &Harness, s: &Hostiles) -> Vec<HostileCase> {
    let at = |fake: Option<&FakeTrackVia>, host: String| Server {
        fake: fake.cloned(),
        host,
    };
    vec![
        (
            "a trickling body (slow loris)",
            at(Some(&h.fake), format!("localhost:{}", s.slow.port)),
            Behavior::HugeBody { bytes: 1_000_000 },
            Outcome::Transient("timed out"),
        ),
        (
            "an untrusted certificate",
            at(Some(&s.untrusted), s.untrusted.host()),
            Behavior::Valid,
            Outcome::Transient("TLS"),
        ),
        (
            "a certificate for another name",
            at(None, format!("127.0.0.2:{}", s.misnamed.port)),
            Behavior::Valid,
            Outcome::Transient("TLS"),
        ),
        (
            "plain HTTP where TLS is expected",
            at(None, format!("localhost:{}", s.no_tls.port)),
            Behavior::Valid,
            Outcome::Transient(""),
        ),
    ]
}
