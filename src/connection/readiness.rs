//! `Ready`, the summary: the token's date first (unless TrackVia accepted the
//! credentials after it), then the latest answer, damped for transient failures.

use super::conditions::{ConditionExt, ConditionStatus, Setter, fmt_time};
use super::expiry;
use super::status::Settings;
use super::verification::awaits_answer;
use crate::crd::{Condition, TrackViaConnectionStatus, condition, reason};

/// Ready reasons that stand for "the credentials work, but the output Secret
/// could not be written"; `finish` decides each pass whether they still hold.
pub(super) const HELD_BY_SECRET: [&str; 2] = [reason::TARGET_CONFLICT, reason::SECRET_SYNC_FAILED];

/// Ready reasons an outage of the same credentials keeps until its grace period ends.
const KEPT_THROUGH_OUTAGE: [&str; 8] = [
    reason::VERIFIED,
    reason::UNAUTHORIZED,
    reason::FORBIDDEN,
    reason::EXPIRED,
    reason::UNREACHABLE,
    reason::TARGET_CONFLICT,
    reason::SECRET_SYNC_FAILED,
    reason::EXPIRY_DATE_STALE,
];

/// What `Ready` is decided from, besides the status being built.
pub(super) struct ReadyInput<'a> {
    /// The status before this pass.
    pub old: &'a TrackViaConnectionStatus,
    /// Credentials `fingerprint` were read this pass.
    pub fingerprint: &'a str,
    /// They are the ones the old status knew.
    pub same_credentials: bool,
    /// TrackVia answered this pass, at or after the token's date if it has one.
    pub answered: bool,
    /// A check is asked for and not answered yet.
    pub awaiting: bool,
    /// `tokenExpiresAt`, if set.
    pub expires: Option<jiff::Timestamp>,
    /// TrackVia accepted the credentials after the date.
    pub stale: bool,
    /// Knobs.
    pub settings: Settings,
}

/// Set `Ready` on `next`.
pub(super) fn set_ready(
    next: &mut TrackViaConnectionStatus,
    input: &ReadyInput<'_>,
    setter: &Setter,
) {
    if let Some(expires) = input.expires.filter(|at| setter.now >= *at && !input.stale) {
        return expired(next, input, expires, setter);
    }
    let verified = next.condition(condition::VERIFIED).cloned();
    let pending = || {
        (
            ConditionStatus::Unknown,
            reason::VERIFICATION_PENDING.to_string(),
            "waiting for an answer from TrackVia".to_string(),
        )
    };
    let (state, why, message) = match verified {
        Some(c) if c.is(ConditionStatus::True) => {
            // A target conflict or an unwritable Secret stays until `finish`
            // knows whether it is still there, so Ready does not flip True and
            // back on every pass (which would move lastTransitionTime and patch
            // the status each time).
            let held = input
                .old
                .condition(condition::READY)
                .is_some_and(|r| r.is(ConditionStatus::False) && r.reason_in(&HELD_BY_SECRET));
            if held {
                return;
            }
            let (why, message) = expiry::working_as(input.stale);
            (ConditionStatus::True, why.to_string(), message.to_string())
        }
        Some(c) if c.is(ConditionStatus::False) => {
            let mut message = String::from(c.message);
            if next.verified_fingerprint.is_some()
                && next.verified_fingerprint.as_deref() != Some(input.fingerprint)
            {
                message.push_str("; the output Secret keeps the last verified credentials");
            }
            (ConditionStatus::False, String::from(c.reason), message)
        }
        Some(c) if c.reason_in(&[reason::TRANSIENT_FAILURE, reason::RATE_LIMITED]) => {
            match outage(next, input, &c, setter) {
                Outage::Unreachable(message) => {
                    (ConditionStatus::False, reason::UNREACHABLE.into(), message)
                }
                Outage::Keep(kept) => return setter.keep(next, &kept),
                Outage::Pending => pending(),
            }
        }
        _ => pending(),
    };
    setter.set(next, condition::READY, state, &why, &message);
}

/// Past the token's date: `Ready=False, Expired`, and no more checks unless
/// one is under way.
fn expired(
    next: &mut TrackViaConnectionStatus,
    input: &ReadyInput<'_>,
    expires: jiff::Timestamp,
    setter: &Setter,
) {
    let message = format!(
        "the token expired at {} (spec.tokenExpiresOn)",
        fmt_time(expires)
    );
    setter.set(
        next,
        condition::READY,
        ConditionStatus::False,
        reason::EXPIRED,
        &message,
    );
    // Credentials whose check is asked for and not answered yet, or still
    // waiting for a real answer (rotated during an outage), keep their
    // check; anything else is not asked again.
    let verified = next.condition(condition::VERIFIED);
    let waiting = input.awaiting || verified.is_some_and(awaits_answer);
    // A refusal stays as TrackVia gave it.
    let refused = verified.is_some_and(|v| v.is(ConditionStatus::False));
    if waiting {
        return;
    }
    if !input.answered && !refused {
        let message = "the token is past its expiry date; TrackVia is not asked";
        setter.set(
            next,
            condition::VERIFIED,
            ConditionStatus::False,
            reason::EXPIRED,
            message,
        );
    }
    // A check left in the past would make `next_wakeup` requeue every second.
    next.next_verification_time = None;
}

/// What an outage does to `Ready`.
enum Outage {
    /// It lasted long enough: `Unreachable`, with this message.
    Unreachable(String),
    /// Keep the last definite answer of the same credentials.
    Keep(Condition),
    /// Nothing to keep: pending.
    Pending,
}

/// During an outage: `Unreachable` once it lasted long enough, else the last
/// definite answer of the same credentials until the grace period ends.
fn outage(
    next: &TrackViaConnectionStatus,
    input: &ReadyInput<'_>,
    verified: &Condition,
    setter: &Setter,
) -> Outage {
    let since = super::conditions::instant(&next.failing_since)
        .or_else(|| verified.transition())
        .unwrap_or(setter.now);
    let lasted = setter.now.duration_since(since).unsigned_abs();
    let failures = next.consecutive_failures;
    if failures >= input.settings.failure_threshold && lasted >= input.settings.failure_grace {
        return Outage::Unreachable(format!(
            "TrackVia unreachable for {failures} checks since {}: {}",
            fmt_time(since),
            verified.message
        ));
    }
    match input.old.condition(condition::READY) {
        Some(old) if input.same_credentials && old.reason_in(&KEPT_THROUGH_OUTAGE) => {
            Outage::Keep(old.clone())
        }
        _ => Outage::Pending,
    }
}
