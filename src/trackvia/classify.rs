//! The classification of an answer from `GET /openapi/views`: pure functions of
//! the status code, the `Retry-After` header, the body and the clock.

use std::time::Duration;

use super::views::ViewList;
use super::{Credentials, Rejection, TransientKind, VerificationOutcome};

/// Largest error message kept from a TrackVia body.
pub const MAX_DETAIL: usize = 200;

/// Longest pause a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Classify an HTTP answer from `GET /openapi/views` with a complete body
/// (see [`classify_response_at`]); an HTTP-date `Retry-After` is read against the system clock.
pub fn classify_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> VerificationOutcome {
    classify_response_at(status, retry_after, body, jiff::Timestamp::now())
}

/// Classify an HTTP answer. Pure: status code first, the body only for a
/// message, the expiry hint, or whether a 200 holds a JSON list.
pub fn classify_response_at(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: jiff::Timestamp,
) -> VerificationOutcome {
    if status == 200 {
        return classify_views(ViewList::check(body).is_ok());
    }
    let retry_after = retry_after.and_then(|v| parse_retry_after_at(v, now));
    classify_error(status, retry_after, &body_message(body))
}

/// A 200: verified when its body is a JSON list (of any length).
pub(crate) fn classify_views(is_list: bool) -> VerificationOutcome {
    if is_list {
        VerificationOutcome::Verified { http_status: 200 }
    } else {
        VerificationOutcome::Transient {
            kind: TransientKind::UnexpectedResponse,
            http_status: Some(200),
            retry_after: None,
            detail: "HTTP 200 without a JSON list of views: is the host a TrackVia server?".into(),
        }
    }
}

/// Does a 403's message say the API key failed authentication? The 3scale
/// gateway in front of TrackVia answers an unknown `user_key` that way.
fn key_failed_authentication(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "authentication failed",
        "authentication parameters missing",
        "user_key",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

fn classify_error(
    status: u16,
    retry_after: Option<Duration>,
    message: &str,
) -> VerificationOutcome {
    let message = message.to_string();
    match status {
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
        403 if key_failed_authentication(&message) => VerificationOutcome::Rejected {
            rejection: Rejection::Unauthorized,
            http_status: 403,
            detail: format!("the API key (user_key) was not accepted: {message}"),
        },
        403 => VerificationOutcome::Rejected {
            rejection: Rejection::Forbidden,
            http_status: 403,
            detail: message,
        },
        429 => VerificationOutcome::Transient {
            kind: TransientKind::RateLimited,
            http_status: Some(429),
            retry_after,
            detail: "TrackVia rate limit reached".into(),
        },
        500..=599 => VerificationOutcome::Transient {
            kind: TransientKind::ServerError,
            http_status: Some(status),
            retry_after,
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

/// `Retry-After` in seconds or as an HTTP date, read against the system clock.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_retry_after_at(value, jiff::Timestamp::now())
}

/// `Retry-After` in seconds or as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`),
/// as a wait from `now`; at most a day. A date in the past is no wait.
pub fn parse_retry_after_at(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    Some(
        Duration::try_from(wait)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The human message in a TrackVia error body, printable and short:
/// `error_description`, `message` or `error` of a JSON object, and the messages
/// inside its `errors` list (TrackVia's own shape puts the detail there); else
/// the text itself.
pub fn body_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => {
            let top = ["error_description", "message", "error"]
                .iter()
                .find_map(|k| {
                    map.get(*k)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.trim().is_empty())
                })
                .map(str::to_string);
            let listed = map
                .get("errors")
                .and_then(|e| e.as_array())
                .map(|errors| errors.iter().filter_map(error_text).collect::<Vec<_>>())
                .unwrap_or_default();
            top.into_iter()
                .chain(listed)
                .fold(Vec::<String>::new(), |mut all, m| {
                    if !all.contains(&m) {
                        all.push(m);
                    }
                    all
                })
                .join("; ")
        }
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

/// The text of one entry of an `errors` list: a string, or an object's
/// `message`, `error_description`, `error` or `detail`.
fn error_text(entry: &serde_json::Value) -> Option<String> {
    let text = match entry {
        serde_json::Value::String(s) => Some(s.as_str()),
        serde_json::Value::Object(map) => ["message", "error_description", "error", "detail"]
            .iter()
            .find_map(|k| map.get(*k).and_then(|v| v.as_str())),
        _ => None,
    }?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
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

/// Remove the credentials from the details of an outcome.
pub(crate) fn scrub_outcome(
    outcome: VerificationOutcome,
    creds: &Credentials,
) -> VerificationOutcome {
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
