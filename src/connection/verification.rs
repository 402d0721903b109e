//! What TrackVia's answer does to a status: `Verified`, the answer's times and
//! HTTP status, the failure count of an outage, and when to check again.

use jiff::Timestamp;

use super::conditions::{ConditionExt, ConditionStatus, Setter, fmt_time};
use super::schedule::{next_check, retry_at};
use super::spec::ParsedSpec;
use super::status::{Settings, Verification};
use crate::crd::{Condition, TrackViaConnectionStatus, condition, reason};
use crate::trackvia::{Rejection, TransientKind, VerificationOutcome};

/// Condition reason for a rejection.
pub fn rejection_reason(rejection: Rejection) -> &'static str {
    match rejection {
        Rejection::Unauthorized => reason::UNAUTHORIZED,
        Rejection::Expired => reason::EXPIRED,
        Rejection::Forbidden => reason::FORBIDDEN,
    }
}

/// Verified says a check of the current credentials got no definite answer
/// yet (an outage, a 429): it is to be retried.
pub(super) fn awaits_answer(verified: &Condition) -> bool {
    verified.is(ConditionStatus::Unknown)
        && verified.reason_in(&[reason::TRANSIENT_FAILURE, reason::RATE_LIMITED])
}

/// Verified says the current credentials' check was asked for and is not
/// answered yet (set only when it was: see the past-date branch of
/// `readiness`).
pub(super) fn asked_for(verified: &Condition) -> bool {
    verified.is(ConditionStatus::Unknown) && verified.reason == reason::VERIFICATION_PENDING
}

/// How an answer is recorded: the parsed spec, the connection's jitter, the knobs.
pub(super) struct Recorder<'a> {
    /// The parsed spec.
    pub spec: &'a ParsedSpec,
    /// A fraction in [0, 1) fixed per connection.
    pub jitter: f64,
    /// Knobs.
    pub settings: Settings,
    /// Generation and clock.
    pub setter: &'a Setter,
}

impl Recorder<'_> {
    /// Record credentials `fingerprint` read this pass; a new credential
    /// starts with a clean slate. Returns whether they are the same as before.
    pub fn credentials(
        &self,
        next: &mut TrackViaConnectionStatus,
        fingerprint: &str,
        checked: bool,
    ) -> bool {
        let same = next.credentials_fingerprint.as_deref() == Some(fingerprint);
        next.credentials_fingerprint = Some(fingerprint.into());
        if !same {
            next.consecutive_failures = 0;
            next.failing_since = None;
            if !checked {
                let message = "the credentials have not been checked yet";
                let pending = reason::VERIFICATION_PENDING;
                (self.setter).set(
                    next,
                    condition::VERIFIED,
                    ConditionStatus::Unknown,
                    pending,
                    message,
                );
            }
        }
        same
    }

    /// Record TrackVia's answer `v` about credentials `fingerprint`.
    pub fn answer(&self, next: &mut TrackViaConnectionStatus, fingerprint: &str, v: &Verification) {
        next.last_verified_time = Some(fmt_time(v.at));
        next.last_http_status = v.outcome.http_status().or(next.last_http_status);
        match &v.outcome {
            VerificationOutcome::Verified { http_status } => {
                self.definite(next, v.at);
                next.last_successful_verification_time = Some(fmt_time(v.at));
                next.verified_fingerprint = Some(fingerprint.into());
                let message = format!("TrackVia accepted the credentials (HTTP {http_status})");
                (self.setter).set(
                    next,
                    condition::VERIFIED,
                    ConditionStatus::True,
                    reason::VERIFIED,
                    &message,
                );
            }
            VerificationOutcome::Rejected {
                rejection,
                http_status,
                detail,
            } => {
                self.definite(next, v.at);
                let mut message = format!("TrackVia refused the credentials (HTTP {http_status})");
                if !detail.is_empty() {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                let why = rejection_reason(*rejection);
                (self.setter).set(
                    next,
                    condition::VERIFIED,
                    ConditionStatus::False,
                    why,
                    &message,
                );
            }
            VerificationOutcome::Transient {
                kind,
                http_status,
                retry_after,
                detail,
            } => {
                next.consecutive_failures = next.consecutive_failures.saturating_add(1);
                if next.consecutive_failures == 1 || next.failing_since.is_none() {
                    next.failing_since = Some(fmt_time(v.at));
                }
                let why = if *kind == TransientKind::RateLimited {
                    reason::RATE_LIMITED
                } else {
                    reason::TRANSIENT_FAILURE
                };
                let message = match http_status {
                    Some(code) if !detail.contains(&code.to_string()) => {
                        format!("no answer from TrackVia (HTTP {code}): {detail}")
                    }
                    _ => format!("no answer from TrackVia: {detail}"),
                };
                (self.setter).set(
                    next,
                    condition::VERIFIED,
                    ConditionStatus::Unknown,
                    why,
                    &message,
                );
                let since = super::conditions::instant(&next.failing_since).unwrap_or(v.at);
                let retry = retry_at(
                    v.at,
                    since,
                    next.consecutive_failures,
                    *retry_after,
                    self.spec.verify_interval,
                    self.jitter,
                    self.settings,
                );
                next.next_verification_time = Some(fmt_time(retry));
            }
        }
    }

    /// A definite answer at `at` ends an outage and schedules the next check.
    fn definite(&self, next: &mut TrackViaConnectionStatus, at: Timestamp) {
        next.consecutive_failures = 0;
        next.failing_since = None;
        next.next_verification_time =
            next_check(at, self.spec.verify_interval, self.jitter).map(fmt_time);
    }
}
