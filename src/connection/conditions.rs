//! Conditions as the domain reads and writes them: [`ConditionStatus`] instead
//! of strings, the one place instants are formatted and parsed, and
//! [`set_condition`], which keeps `lastTransitionTime` unless `status` flips.

use compact_str::{CompactString, ToCompactString};
use jiff::Timestamp;

pub use crate::crd::ConditionStatus;
use crate::crd::{Condition, TrackViaConnectionStatus, condition};

/// A condition's typed status and its reason.
pub trait ConditionExt {
    /// The status, typed.
    fn state(&self) -> ConditionStatus;
    /// Is the status `s`?
    fn is(&self, s: ConditionStatus) -> bool {
        self.state() == s
    }
    /// Is the reason one of `reasons`?
    fn reason_in(&self, reasons: &[&str]) -> bool;
    /// When `status` last changed, if readable.
    fn transition(&self) -> Option<Timestamp>;
}

impl ConditionExt for Condition {
    fn state(&self) -> ConditionStatus {
        self.status
    }
    fn reason_in(&self, reasons: &[&str]) -> bool {
        reasons.contains(&self.reason.as_str())
    }
    fn transition(&self) -> Option<Timestamp> {
        parse_time(&self.last_transition_time)
    }
}

/// RFC 3339 with seconds precision, UTC.
pub fn fmt_time(t: Timestamp) -> CompactString {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_compact_string()
}

/// An instant written in a status; `None` when it is not one.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// An optional instant field of a status.
pub fn instant(field: &Option<CompactString>) -> Option<Timestamp> {
    field.as_deref().and_then(parse_time)
}

/// The instants of a status, parsed once.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Instants {
    /// `tokenExpiresAt`.
    pub token_expires: Option<Timestamp>,
    /// `expiryWarningAt`.
    pub expiry_warning: Option<Timestamp>,
    /// `nextVerificationTime`.
    pub next_verification: Option<Timestamp>,
    /// `lastSuccessfulVerificationTime`.
    pub last_success: Option<Timestamp>,
    /// `failingSince`.
    pub failing_since: Option<Timestamp>,
}

impl Instants {
    /// Parse the instants of `status`.
    pub fn of(status: &TrackViaConnectionStatus) -> Instants {
        Instants {
            token_expires: instant(&status.token_expires_at),
            expiry_warning: instant(&status.expiry_warning_at),
            next_verification: instant(&status.next_verification_time),
            last_success: instant(&status.last_successful_verification_time),
            failing_since: instant(&status.failing_since),
        }
    }
}

/// The fixed order of conditions: Ready, Verified, SecretSynced, Expiring, others.
const ORDER: [&str; 4] = [
    condition::READY,
    condition::VERIFIED,
    condition::SECRET_SYNCED,
    condition::EXPIRING,
];

/// The longest message kept, in characters.
const MAX_MESSAGE: usize = 1024;

/// Set a condition, keeping `lastTransitionTime` unless `status` flips. The
/// list stays in a fixed order: Ready, Verified, SecretSynced, Expiring, others.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message: CompactString = message.chars().take(MAX_MESSAGE).collect();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.last_transition_time = fmt_time(now);
        }
        existing.status = status;
        existing.reason = reason.into();
        existing.message = message;
        existing.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            last_transition_time: fmt_time(now),
            observed_generation: generation,
        });
    }
    let rank = |t: &str| ORDER.iter().position(|x| *x == t).unwrap_or(99);
    conditions.sort_by_key(|c| rank(&c.type_));
}

/// Sets conditions of one status for one pass: the generation and clock fixed.
pub(crate) struct Setter {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The clock.
    pub now: Timestamp,
}

impl Setter {
    /// Set condition `type_` on `status`.
    pub fn set(
        &self,
        status: &mut TrackViaConnectionStatus,
        type_: &str,
        state: ConditionStatus,
        reason: &str,
        message: &str,
    ) {
        self.on(&mut status.conditions, type_, state, reason, message);
    }

    /// Set condition `type_` in `conditions`.
    pub fn on(
        &self,
        conditions: &mut Vec<Condition>,
        type_: &str,
        state: ConditionStatus,
        reason: &str,
        message: &str,
    ) {
        let (generation, now) = (self.generation, self.now);
        set_condition(conditions, type_, state, reason, message, generation, now);
    }

    /// Set `kept` again on `status` as it was (status text, reason, message).
    pub fn keep(&self, status: &mut TrackViaConnectionStatus, kept: &Condition) {
        set_condition(
            &mut status.conditions,
            &kept.type_,
            kept.status,
            &kept.reason,
            &kept.message,
            self.generation,
            self.now,
        );
    }
}
