//! The TrackVia side: credentials and the outcome of a verification (here),
//! the classification of an answer (`classify`), the streaming check of a list
//! of views (`views`), the HTTP call (`client`), the allow list of hosts
//! (`hosts`), the budget of calls shared by all connections (`budget`,
//! `answers`, `verifier`), and a stand-in for TrackVia answering at once (`at_once`).

mod answers;
mod at_once;
mod budget;
mod classify;
mod client;
mod hosts;
mod verifier;
mod views;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use answers::{AnswerCache, CacheLimits};
pub use at_once::{AnswerAtOnce, ask_as_a_connection};
pub use budget::{Budget, BudgetLimits, CallerId};
pub use classify::{
    MAX_DETAIL, body_message, classify_response, classify_response_at, classify_transport_error,
    parse_retry_after, parse_retry_after_at,
};
pub use client::{ClientError, TrackViaClient, VerifyCall};
pub use hosts::{AllowedHosts, HostsError, split_host_port};
pub use verifier::{Ask, CachedOutcome, FORCED_GAP, Freshness, Verifier, VerifyRequest};
pub use views::{ViewList, ViewListError};

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
