//! The TrackVia side: credentials, the allow list of hosts, the verification
//! call, the classification of its answer, and the process-wide budget of calls
//! (one call per distinct credential per interval, a global rate limit).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A TrackVia API key and auth token. `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account's API key, sent as `user_key`.
    pub api_key: String,
    /// The auth token, sent as a Bearer token.
    pub auth_token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { api_key: <redacted>, auth_token: <redacted> }")
    }
}

impl Credentials {
    /// A short keyed fingerprint of these credentials: the first 16 hex digits of
    /// HMAC-SHA256 under `key`. It identifies a credential without revealing it.
    pub fn fingerprint(&self, key: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(self.api_key.as_bytes());
        mac.update(&[0]);
        mac.update(self.auth_token.as_bytes());
        let digest = mac.finalize().into_bytes();
        hex::encode(&digest[..8])
    }

    /// Replace any occurrence of the key or token in `text` with `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in [&self.auth_token, &self.api_key] {
            if secret.len() >= 4 {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// Why TrackVia refused the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// 401: wrong, revoked or deactivated token, bad API key, inactive user.
    Unauthorized,
    /// 401 saying `Access token expired`.
    Expired,
    /// 403: the API user's role lacks permission.
    Forbidden,
}

/// Kinds of transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransientKind {
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// Any other unexpected HTTP answer (404, 410, 3xx, a 200 that is not a JSON array).
    UnexpectedResponse,
    /// The request timed out.
    Timeout,
    /// The name did not resolve.
    Dns,
    /// The TLS handshake failed (untrusted or wrong certificate).
    Tls,
    /// The connection failed or was closed.
    Connection,
}

impl TransientKind {
    /// A stable label for metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TransientKind::RateLimited => "rate_limited",
            TransientKind::ServerError => "server_error",
            TransientKind::UnexpectedResponse => "unexpected_response",
            TransientKind::Timeout => "timeout",
            TransientKind::Dns => "dns",
            TransientKind::Tls => "tls",
            TransientKind::Connection => "connection",
        }
    }
}

/// The result of one verification call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationOutcome {
    /// 200 with a JSON array: TrackVia accepted the credentials.
    Verified {
        /// The HTTP status (200).
        http_status: u16,
    },
    /// TrackVia definitely refused the credentials.
    Rejected {
        /// Why.
        rejection: Rejection,
        /// The HTTP status (401 or 403).
        http_status: u16,
        /// TrackVia's message, scrubbed and shortened.
        detail: String,
    },
    /// No definite answer; try again later.
    Transient {
        /// What went wrong.
        kind: TransientKind,
        /// The HTTP status, when there was an answer.
        http_status: Option<u16>,
        /// `Retry-After`, when TrackVia sent one.
        retry_after: Option<Duration>,
        /// A short description without secrets or URLs.
        detail: String,
    },
}

impl VerificationOutcome {
    /// The HTTP status of the answer, if any.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            VerificationOutcome::Verified { http_status } => Some(*http_status),
            VerificationOutcome::Rejected { http_status, .. } => Some(*http_status),
            VerificationOutcome::Transient { http_status, .. } => *http_status,
        }
    }

    /// A stable label for metrics: verified, unauthorized, expired, forbidden or the transient kind.
    pub fn label(&self) -> &'static str {
        match self {
            VerificationOutcome::Verified { .. } => "verified",
            VerificationOutcome::Rejected {
                rejection: Rejection::Unauthorized,
                ..
            } => "unauthorized",
            VerificationOutcome::Rejected {
                rejection: Rejection::Expired,
                ..
            } => "expired",
            VerificationOutcome::Rejected {
                rejection: Rejection::Forbidden,
                ..
            } => "forbidden",
            VerificationOutcome::Transient { kind, .. } => kind.as_str(),
        }
    }
}

/// Largest error message kept from a TrackVia body.
const MAX_DETAIL: usize = 200;

/// Classify an HTTP answer from `GET /openapi/views`. Pure: status code first,
/// the body only for a message or the expiry hint.
pub fn classify_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> VerificationOutcome {
    let message = body_message(body);
    match status {
        200 => {
            if serde_json::from_slice::<Vec<serde_json::Value>>(body).is_ok() {
                VerificationOutcome::Verified { http_status: 200 }
            } else {
                VerificationOutcome::Transient {
                    kind: TransientKind::UnexpectedResponse,
                    http_status: Some(200),
                    retry_after: None,
                    detail: "HTTP 200 without a JSON list of views: is the host a TrackVia server?"
                        .into(),
                }
            }
        }
        401 => {
            let expired = message.contains("Access token expired");
            VerificationOutcome::Rejected {
                rejection: if expired {
                    Rejection::Expired
                } else {
                    Rejection::Unauthorized
                },
                http_status: 401,
                detail: message,
            }
        }
        403 => VerificationOutcome::Rejected {
            rejection: Rejection::Forbidden,
            http_status: 403,
            detail: message,
        },
        429 => VerificationOutcome::Transient {
            kind: TransientKind::RateLimited,
            http_status: Some(429),
            retry_after: retry_after.and_then(parse_retry_after),
            detail: "TrackVia rate limit reached".into(),
        },
        500..=599 => VerificationOutcome::Transient {
            kind: TransientKind::ServerError,
            http_status: Some(status),
            retry_after: retry_after.and_then(parse_retry_after),
            detail: if message.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {message}")
            },
        },
        _ => VerificationOutcome::Transient {
            kind: TransientKind::UnexpectedResponse,
            http_status: Some(status),
            retry_after: None,
            detail: if (300..400).contains(&status) {
                format!("HTTP {status}: redirects are not followed")
            } else if message.is_empty() {
                format!("unexpected HTTP {status}")
            } else {
                format!("unexpected HTTP {status}: {message}")
            },
        },
    }
}

/// `Retry-After` in seconds (HTTP dates are rare for APIs; they are ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(24 * 3600)))
}

/// The human message in a TrackVia error body: `error_description`, `message`
/// or `error` of a JSON object, else the text itself; printable and short.
pub fn body_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => ["error_description", "message", "error"]
            .iter()
            .find_map(|k| {
                map.get(*k)
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_string)
            .unwrap_or_default(),
        Ok(_) => String::new(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if cleaned.chars().count() > MAX_DETAIL {
        let cut: String = cleaned.chars().take(MAX_DETAIL).collect();
        format!("{cut}…")
    } else {
        cleaned
    }
}

/// Classify a failure to get an answer at all. The error text never carries the
/// URL (it holds `user_key`).
pub fn classify_transport_error(err: &reqwest::Error) -> VerificationOutcome {
    let chain = error_chain_text(err);
    let lower = chain.to_lowercase();
    let closed = [
        "unexpected eof",
        "unexpected-eof",
        "connection closed",
        "connection reset",
        "broken pipe",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let kind = if err.is_timeout() {
        TransientKind::Timeout
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup address")
        || lower.contains("name or service not known")
    {
        TransientKind::Dns
    } else if closed {
        TransientKind::Connection
    } else if lower.contains("certificate")
        || lower.contains("handshake")
        || lower.contains("alert")
    {
        TransientKind::Tls
    } else {
        TransientKind::Connection
    };
    let detail = match kind {
        TransientKind::Timeout => "request timed out".to_string(),
        TransientKind::Dns => "host name did not resolve".to_string(),
        TransientKind::Tls => format!("TLS failure: {}", last_cause(&chain)),
        _ if closed => "connection closed by the server without an answer".to_string(),
        _ => format!("connection failed: {}", last_cause(&chain)),
    };
    VerificationOutcome::Transient {
        kind,
        http_status: None,
        retry_after: None,
        detail,
    }
}

fn error_chain_text(err: &reqwest::Error) -> String {
    // `without_url` strips the URL, which carries the API key.
    let mut parts = Vec::new();
    let stripped = clone_without_url(err);
    parts.push(stripped);
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

fn clone_without_url(err: &reqwest::Error) -> String {
    let text = err.to_string();
    match err.url() {
        Some(url) => text.replace(url.as_str(), "<url>"),
        None => text,
    }
}

fn last_cause(chain: &str) -> String {
    let cause = chain
        .rsplit(": ")
        .find(|part| !part.trim().is_empty() && !part.contains("://"))
        .unwrap_or("unknown error");
    let short: String = cause.chars().take(MAX_DETAIL).collect();
    short
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

/// Client for the verification call.
#[derive(Clone)]
pub struct TrackViaClient {
    http: reqwest::Client,
    timeout: Duration,
}

/// Largest body read from TrackVia.
const MAX_BODY: usize = 64 * 1024;

impl TrackViaClient {
    /// Build a client trusting the system roots plus `extra_ca_pem`; redirects
    /// are never followed (they would carry the key and token elsewhere).
    pub fn new(extra_ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // HTTPS_PROXY / NO_PROXY from the environment are honoured (egress proxies).
            .user_agent(concat!("trackvia-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("extra CA bundle: {e}"))?;
            if certs.is_empty() {
                return Err("extra CA bundle holds no certificate".into());
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(TrackViaClient { http, timeout })
    }

    /// `GET https://{host}/openapi/views` with the credentials, classified.
    pub async fn verify(
        &self,
        host: &str,
        account_id: Option<u64>,
        creds: &Credentials,
    ) -> VerificationOutcome {
        let url = match url::Url::parse_with_params(
            &format!("https://{host}/openapi/views"),
            [("user_key", creds.api_key.as_str())],
        ) {
            Ok(u) => u,
            Err(_) => {
                return VerificationOutcome::Transient {
                    kind: TransientKind::Connection,
                    http_status: None,
                    retry_after: None,
                    detail: format!("cannot build a URL for host {host:?}"),
                };
            }
        };
        // The credentials go only to the host and port the allow list approved.
        let expected = split_host_port(host);
        let actual = url
            .host_str()
            .map(|h| h.to_ascii_lowercase())
            .zip(url.port_or_known_default());
        if expected.is_none() || expected != actual {
            return VerificationOutcome::Transient {
                kind: TransientKind::Connection,
                http_status: None,
                retry_after: None,
                detail: format!("host {host:?} is not a plain host[:port]; no request was made"),
            };
        }
        let mut request = self.http.get(url).bearer_auth(&creds.auth_token);
        if let Some(id) = account_id {
            request = request.header("account-id", id.to_string());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return scrub_outcome(classify_transport_error(&e), creds),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match read_capped(response).await {
            Ok(b) => b,
            Err(e) => return scrub_outcome(classify_transport_error(&e), creds),
        };
        // Scrub the whole body first: a secret cut in half by the message's
        // length limit would not be recognised afterwards.
        let body = creds.scrub(&String::from_utf8_lossy(&body)).into_bytes();
        scrub_outcome(
            classify_response(status, retry_after.as_deref(), &body),
            creds,
        )
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

fn scrub_outcome(outcome: VerificationOutcome, creds: &Credentials) -> VerificationOutcome {
    match outcome {
        VerificationOutcome::Rejected {
            rejection,
            http_status,
            detail,
        } => VerificationOutcome::Rejected {
            rejection,
            http_status,
            detail: creds.scrub(&detail),
        },
        VerificationOutcome::Transient {
            kind,
            http_status,
            retry_after,
            detail,
        } => VerificationOutcome::Transient {
            kind,
            http_status,
            retry_after,
            detail: creds.scrub(&detail),
        },
        v => v,
    }
}

/// The process-wide budget of TrackVia calls: at most `per_minute` calls in any
/// sliding window of one minute (TrackVia counts per minute too). Waiters are
/// served in order of arrival.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: usize,
    slack: Duration,
    recent: tokio::sync::Mutex<std::collections::VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter granting `per_minute` calls a minute (at least one).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1) as usize;
        RateLimiter {
            per_minute,
            slack: Duration::ZERO,
            recent: tokio::sync::Mutex::new(std::collections::VecDeque::with_capacity(per_minute)),
        }
    }

    /// Like [`RateLimiter::new`], counting each call as leaving its slot up to
    /// `slack` later: a call that takes time to connect still arrives inside the
    /// minute it was counted in, so TrackVia never sees more than the budget.
    pub fn with_slack(per_minute: u32, slack: Duration) -> Self {
        RateLimiter {
            slack,
            ..RateLimiter::new(per_minute)
        }
    }

    /// Wait until a call fits in the budget, and count it.
    pub async fn acquire(&self) {
        // The lock is held while waiting: that is what makes the queue first-come, first-served.
        let mut recent = self.recent.lock().await;
        let window = Duration::from_secs(60) + self.slack;
        loop {
            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            {
                recent.pop_front();
            }
            if recent.len() < self.per_minute {
                recent.push_back(now);
                return;
            }
            let Some(&oldest) = recent.front() else {
                // per_minute is at least one, so a full window has a front.
                recent.push_back(now);
                return;
            };
            tokio::time::sleep_until(oldest + window).await;
        }
    }
}

/// A verification answer remembered for sharing between connections.
#[derive(Clone, Debug)]
pub struct CachedOutcome {
    /// The answer.
    pub outcome: VerificationOutcome,
    /// When it was obtained (wall clock, seconds).
    pub at: jiff::Timestamp,
    /// How long the HTTP exchange took.
    pub took: Duration,
}

/// One verification per distinct credential per interval, however many
/// connections share it, under a process-wide rate limit.
pub struct Verifier {
    client: TrackViaClient,
    limiter: RateLimiter,
    cache_key: [u8; 32],
    entries: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<CachedOutcome>>>>>,
    calls: std::sync::atomic::AtomicU64,
}

/// What decides whether a remembered answer can be reused.
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    /// Answers younger than this are reused.
    pub max_age: Duration,
    /// Ignore remembered answers (a forced check).
    pub force: bool,
}

impl Verifier {
    /// A verifier over `client` with `per_minute` calls a minute.
    pub fn new(client: TrackViaClient, per_minute: u32) -> Self {
        let mut cache_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut cache_key);
        Verifier {
            limiter: RateLimiter::with_slack(per_minute, client.timeout),
            client,
            cache_key,
            entries: std::sync::Mutex::new(HashMap::new()),
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Calls made to TrackVia so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Verify, reusing a fresh answer for the same credential, host and account.
    /// Returns the answer, when it was obtained, and whether a call was made.
    pub async fn verify(
        &self,
        host: &str,
        account_id: Option<u64>,
        creds: &Credentials,
        freshness: Freshness,
        now: impl Fn() -> jiff::Timestamp,
    ) -> (CachedOutcome, bool) {
        let key = format!(
            "{}|{}|{}",
            creds.fingerprint(&self.cache_key),
            host.to_ascii_lowercase(),
            account_id.unwrap_or(0)
        );
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if entries.len() > 10_000 {
                entries.retain(|_, v| {
                    Arc::strong_count(v) > 1 || v.try_lock().map(|e| e.is_some()).unwrap_or(true)
                });
            }
            entries.entry(key).or_default().clone()
        };
        let mut entry = slot.lock().await;
        if let Some(cached) = entry.as_ref() {
            let age = now().duration_since(cached.at);
            let reusable = !freshness.force
                && age.as_secs_f64() >= 0.0
                && age.unsigned_abs() < freshness.max_age;
            if reusable {
                return (cached.clone(), false);
            }
        }
        self.limiter.acquire().await;
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let outcome = self.client.verify(host, account_id, creds).await;
        let fresh = CachedOutcome {
            outcome,
            at: now(),
            took: started.elapsed(),
        };
        // Transient answers are not shared: each connection keeps its own retry schedule.
        *entry = match fresh.outcome {
            VerificationOutcome::Transient { .. } => None,
            _ => Some(fresh.clone()),
        };
        (fresh, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            api_key: "key-123456".into(),
            auth_token: "tok-abcdef".into(),
        }
    }

    #[test]
    fn debug_of_credentials_is_redacted() {
        let text = format!("{:?}", creds());
        assert!(
            !text.contains("key-123456") && !text.contains("tok-abcdef"),
            "{text}"
        );
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn fingerprint_is_stable_keyed_and_short() {
        let a = creds().fingerprint(b"uid-1");
        assert_eq!(a, creds().fingerprint(b"uid-1"));
        assert_ne!(a, creds().fingerprint(b"uid-2"));
        assert_eq!(a.len(), 16);
        let other = Credentials {
            auth_token: "tok-other".into(),
            ..creds()
        };
        assert_ne!(a, other.fingerprint(b"uid-1"));
    }

    #[test]
    fn classify_200_json_list_is_verified() {
        let body = br#"[{"id":52,"name":"Default TEST TABLE View","applicationName":"TEST APP","default":true}]"#;
        assert_eq!(
            classify_response(200, None, body),
            VerificationOutcome::Verified { http_status: 200 }
        );
        assert_eq!(
            classify_response(200, None, b"[]"),
            VerificationOutcome::Verified { http_status: 200 }
        );
    }

    #[test]
    fn classify_200_not_json_is_not_verified() {
        let out = classify_response(200, None, b"<html>login</html>");
        assert!(
            matches!(
                out,
                VerificationOutcome::Transient {
                    kind: TransientKind::UnexpectedResponse,
                    ..
                }
            ),
            "{out:?}"
        );
    }

    #[test]
    fn classify_401_shapes() {
        let expired =
            br#"{"error":"invalid_token","error_description":"Access token expired: 2027-01-01"}"#;
        assert!(matches!(
            classify_response(401, None, expired),
            VerificationOutcome::Rejected {
                rejection: Rejection::Expired,
                http_status: 401,
                ..
            }
        ));
        let invalid = br#"{"error":"invalid_token","error_description":"Invalid access token: x"}"#;
        assert!(matches!(
            classify_response(401, None, invalid),
            VerificationOutcome::Rejected {
                rejection: Rejection::Unauthorized,
                ..
            }
        ));
        let trackvia =
            br#"{"errors":[],"message":"Inactive user","name":"accessDenied","code":"401"}"#;
        match classify_response(401, None, trackvia) {
            VerificationOutcome::Rejected {
                rejection: Rejection::Unauthorized,
                detail,
                ..
            } => assert_eq!(detail, "Inactive user"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_response(401, None, b"Authentication failed"),
            VerificationOutcome::Rejected {
                rejection: Rejection::Unauthorized,
                ..
            }
        ));
    }

    #[test]
    fn classify_403_429_5xx_and_others() {
        assert!(matches!(
            classify_response(403, None, b"{}"),
            VerificationOutcome::Rejected {
                rejection: Rejection::Forbidden,
                http_status: 403,
                ..
            }
        ));
        match classify_response(429, Some("30"), b"") {
            VerificationOutcome::Transient {
                kind: TransientKind::RateLimited,
                retry_after,
                ..
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(30)))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_response(429, None, b""),
            VerificationOutcome::Transient {
                kind: TransientKind::RateLimited,
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify_response(503, None, b"oops"),
            VerificationOutcome::Transient {
                kind: TransientKind::ServerError,
                http_status: Some(503),
                ..
            }
        ));
        for code in [301, 302, 404, 410] {
            assert!(matches!(
                classify_response(code, None, b""),
                VerificationOutcome::Transient {
                    kind: TransientKind::UnexpectedResponse,
                    ..
                }
            ));
        }
    }

    #[test]
    fn body_message_is_short_and_printable() {
        let long = "x".repeat(5000);
        assert!(body_message(long.as_bytes()).chars().count() <= MAX_DETAIL + 1);
        assert_eq!(body_message(b"a\nb\tc\x1b"), "a b c");
    }

    #[test]
    fn a_secret_cut_by_the_message_limit_is_still_scrubbed() {
        let c = creds();
        let body = format!(
            r#"{{"error_description":"{}{}"}}"#,
            "A".repeat(MAX_DETAIL - 5),
            c.auth_token
        );
        let scrubbed = c.scrub(&body).into_bytes();
        let out = scrub_outcome(classify_response(401, None, &scrubbed), &c);
        let text = format!("{out:?}");
        assert!(!text.contains("tok-a"), "{text}");
    }

    #[test]
    fn scrub_removes_secrets_from_details() {
        let body = br#"{"error_description":"Invalid access token: tok-abcdef"}"#;
        let out = scrub_outcome(classify_response(401, None, body), &creds());
        let text = format!("{out:?}");
        assert!(!text.contains("tok-abcdef"), "{text}");
    }

    #[test]
    fn allowed_hosts_patterns() {
        let allow = AllowedHosts::parse("*.trackvia.com, localhost:8443, 127.0.0.1:*").unwrap();
        assert!(allow.allows("go.trackvia.com"));
        assert!(allow.allows("acme.trackvia.com:443"));
        assert!(!allow.allows("trackvia.com"));
        assert!(!allow.allows("eviltrackvia.com"));
        assert!(!allow.allows("acme.trackvia.com:8443"));
        assert!(!allow.allows("trackvia.com.evil.net"));
        assert!(allow.allows("localhost:8443"));
        assert!(!allow.allows("localhost"));
        assert!(allow.allows("127.0.0.1:1234"));
        assert!(!allow.allows("10.0.0.1"));
        assert!(AllowedHosts::parse("").is_err());
        assert!(AllowedHosts::parse("a:b").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_allows_the_budget_per_sliding_minute_in_order() {
        let limiter = std::sync::Arc::new(RateLimiter::new(5));
        let start = tokio::time::Instant::now();
        let granted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..12u32 {
            let (limiter, granted) = (limiter.clone(), granted.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(u64::from(i))).await;
                limiter.acquire().await;
                granted.lock().unwrap().push((i, start.elapsed()));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let granted = granted.lock().unwrap().clone();
        let order: Vec<u32> = granted.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            order,
            (0..12).collect::<Vec<_>>(),
            "first come, first served"
        );
        // Never more than 5 in any 60 s window; the 6th waits for the first to leave it.
        for (k, (_, at)) in granted.iter().enumerate() {
            let in_window = granted
                .iter()
                .filter(|(_, t)| *t >= *at && *t < *at + Duration::from_secs(60))
                .count();
            assert!(
                in_window <= 5,
                "call {k}: {in_window} calls in the minute after it"
            );
        }
        assert!(granted[4].1 < Duration::from_secs(1));
        assert!(granted[5].1 >= Duration::from_secs(60));
        assert!(granted[11].1 >= Duration::from_secs(120));
    }
}
