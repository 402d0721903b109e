//! The status decision: from (spec, previous status, what was observed, now)
//! to the status after the verification step. It carries the old status over,
//! then lets each concern speak in turn: the observation (stop early when the
//! connection cannot be checked), the answer (`verification`), `Ready`
//! (`readiness`) and `Expiring` (`expiry`). `SecretSynced` comes later, from
//! `publish::finish`.

use std::time::Duration;

use compact_str::CompactString;
use jiff::Timestamp;

use super::conditions::{ConditionStatus, Setter, fmt_time};
use super::expiry;
use super::readiness::{ReadyInput, set_ready};
use super::spec::ParsedSpec;
use super::verification::Recorder;
use crate::crd::{TrackViaConnectionStatus, condition, reason};
use crate::trackvia::VerificationOutcome;

/// Knobs of the status computation (start-up flags).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Transient failures in a row before `Ready` turns `Unreachable`…
    pub failure_threshold: u32,
    /// …and for at least this long.
    pub failure_grace: Duration,
    /// First retry delay after a transient failure (doubles each time).
    pub retry_base: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            failure_threshold: 3,
            failure_grace: Duration::from_secs(15 * 60),
            retry_base: Duration::from_secs(10),
        }
    }
}

/// What the controller found this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The spec is invalid beyond what the schema catches.
    InvalidSpec(String),
    /// The host is outside the allow list.
    HostNotAllowed(String),
    /// The source Secret or a key is missing.
    CredentialsNotFound(String),
    /// The source Secret could not be read (anything but "not found").
    CredentialsUnreadable(String),
    /// Credentials were read.
    Credentials {
        /// Their keyed fingerprint.
        fingerprint: String,
        /// The verification answer obtained this pass, if a check was due.
        verification: Option<Verification>,
        /// A check was due and asked for, but its answer is not in yet (queued,
        /// under way, or deferred by the forced-check limit).
        awaiting: bool,
    },
}

/// A verification answer and when it was obtained.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// The classified answer.
    pub outcome: VerificationOutcome,
    /// When TrackVia answered (shared answers keep their original time).
    pub at: Timestamp,
}

/// Everything the status computation needs.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// Parsed spec (absent when the spec is invalid).
    pub spec: Option<&'a ParsedSpec>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The status before this pass.
    pub old: Option<&'a TrackViaConnectionStatus>,
    /// What was found.
    pub observation: &'a Observation,
    /// A fraction in [0, 1) fixed per connection, spreading a fleet's checks.
    pub jitter: f64,
    /// The value of the verify-requested-at annotation.
    pub verify_requested: Option<&'a str>,
    /// The output Secret's name.
    pub secret_name: &'a str,
    /// The clock.
    pub now: Timestamp,
    /// Knobs.
    pub settings: Settings,
}

/// The status after the verification step (SecretSynced is filled in by
/// [`finish`](super::publish::finish)).
pub fn desired_status(input: &Input<'_>) -> TrackViaConnectionStatus {
    let setter = Setter {
        generation: input.generation,
        now: input.now,
    };
    let mut next = checked_status(input, &setter);
    // Set once, after the answer: whether the date is stale depends on it.
    expiry::set_expiring(&mut next, input.spec, &setter);
    next
}

/// Everything but `Expiring`.
fn checked_status(input: &Input<'_>, setter: &Setter) -> TrackViaConnectionStatus {
    let old = input.old.cloned().unwrap_or_default();
    let next = carried(input, &old);
    let (fingerprint, verification, awaiting) = match input.observation {
        Observation::InvalidSpec(msg) => return blocked(next, reason::INVALID_SPEC, msg, setter),
        Observation::HostNotAllowed(msg) => {
            return blocked(next, reason::HOST_NOT_ALLOWED, msg, setter);
        }
        Observation::CredentialsNotFound(msg) => {
            return blocked(next, reason::CREDENTIALS_NOT_FOUND, msg, setter);
        }
        Observation::CredentialsUnreadable(msg) => {
            return blocked(next, reason::CREDENTIALS_UNREADABLE, msg, setter);
        }
        Observation::Credentials {
            fingerprint,
            verification,
            awaiting,
        } => (fingerprint.as_str(), verification.as_ref(), *awaiting),
    };
    let Some(spec) = input.spec else {
        let message = "the spec could not be parsed";
        return blocked(next, reason::INVALID_SPEC, message, setter);
    };
    checked(
        next,
        &old,
        spec,
        (fingerprint, verification, awaiting),
        input,
        setter,
    )
}

/// Credentials were read and the spec parsed: record the answer, then `Ready`.
fn checked(
    mut next: TrackViaConnectionStatus,
    old: &TrackViaConnectionStatus,
    spec: &ParsedSpec,
    (fingerprint, verification, awaiting): (&str, Option<&Verification>, bool),
    input: &Input<'_>,
    setter: &Setter,
) -> TrackViaConnectionStatus {
    let recorder = Recorder {
        spec,
        jitter: input.jitter,
        settings: input.settings,
        setter,
    };
    let same_credentials = recorder.credentials(&mut next, fingerprint, verification.is_some());
    if let Some(v) = verification {
        recorder.answer(&mut next, fingerprint, v);
    }
    let ready = ReadyInput {
        old,
        fingerprint,
        same_credentials,
        // An answer given before the token's date (remembered for shared
        // credentials) says nothing of the token past it.
        answered: verification.is_some_and(|v| spec.token_expires_at.is_none_or(|at| v.at >= at)),
        awaiting,
        expires: spec.token_expires_at,
        stale: expiry::date_stale(Some(spec), &next, input.now),
        settings: input.settings,
    };
    set_ready(&mut next, &ready, setter);
    next
}

/// The old status carried into this pass, with the spec's dates and the
/// forced-check value of this pass.
fn carried(input: &Input<'_>, old: &TrackViaConnectionStatus) -> TrackViaConnectionStatus {
    let dates = |at: fn(&ParsedSpec) -> Option<Timestamp>| input.spec.and_then(at).map(fmt_time);
    TrackViaConnectionStatus {
        observed_generation: input.generation,
        token_expires_at: dates(|s| s.token_expires_at),
        expiry_warning_at: dates(|s| s.expiry_warning_at),
        // Moves to a new target name only once that Secret is written (see the controller).
        secret_name: old
            .secret_name
            .clone()
            .or_else(|| Some(input.secret_name.into())),
        verify_requested_at: input
            .verify_requested
            .map(CompactString::from)
            .or(old.verify_requested_at.clone()),
        ..old.clone()
    }
}

/// The connection cannot be checked: `Ready=False` with `why`, `Verified`
/// unknown, and whatever failed before is moot until it can be checked again.
fn blocked(
    mut next: TrackViaConnectionStatus,
    why: &str,
    message: &str,
    setter: &Setter,
) -> TrackViaConnectionStatus {
    next.consecutive_failures = 0;
    next.failing_since = None;
    setter.set(
        &mut next,
        condition::READY,
        ConditionStatus::False,
        why,
        message,
    );
    let unchecked = "not checked: see Ready";
    setter.set(
        &mut next,
        condition::VERIFIED,
        ConditionStatus::Unknown,
        why,
        unchecked,
    );
    next.next_verification_time = None;
    next
}
