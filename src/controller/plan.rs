//! The pure decisions of one pass, between its reads and its writes: what the
//! verifier's reply means, the status before and after publishing, what to do
//! with the output Secret found at the target name, which Secret to retire
//! and when to look again (the restart debounce is in [`super::restart`]).
//! No IO here.

use std::time::Duration;

use compact_str::CompactString;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::adoption;
use super::restart::RestartStep;
use super::secret::{self, Ownership};
use super::source_read;
use crate::connection::{self, Observation, ParsedSpec, SecretOutcome, Settings, Verification};
use crate::crd::{TrackViaConnection, TrackViaConnectionStatus, VERIFY_REQUESTED_ANNOTATION};
use crate::trackvia::{Ask, Credentials, Freshness};

/// When to look again at a connection whose check is queued, should the
/// verifier's wake-up not come first.
pub const VERIFICATION_RECHECK: Duration = Duration::from_secs(60);

/// A Secret that could not be written is tried again after this.
pub const SECRET_RETRY: Duration = Duration::from_secs(15);

/// A stable hash of `value`, for fingerprints, predicates and jitter.
pub fn stable_hash<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A fraction in [0, 1) fixed per connection, so a fleet spreads its checks.
pub fn jitter_for(tvc: &TrackViaConnection) -> f64 {
    let seed = tvc.uid().unwrap_or_else(|| tvc.name_any());
    (stable_hash(&seed) % 10_000) as f64 / 10_000.0
}

/// Why a spec is refused beyond what the schema catches.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    /// A field does not parse or is out of range.
    #[error("{0}")]
    Field(String),
    /// The output Secret would be the source Secret.
    #[error(transparent)]
    TargetIsSource(#[from] adoption::TargetIsSource),
}

/// The spec as the operator reads it, parsed once.
pub type Parsed = Result<ParsedSpec, InvalidSpec>;

/// The spec as the operator reads it; the output Secret is never the source,
/// refused before anything is read or written.
pub fn parse(tvc: &TrackViaConnection) -> Parsed {
    let parsed =
        connection::parse_spec(&tvc.spec).map_err(|e| InvalidSpec::Field(e.to_string()))?;
    adoption::check_target(tvc)?;
    Ok(parsed)
}

/// A check waiting for its answer (or for the forced-check limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The check was forced (a verify request).
    pub forced: bool,
    /// When to look again if no wake-up comes first.
    pub recheck: Duration,
}

/// What a pass found out about the credentials.
#[derive(Debug)]
pub struct Seen {
    /// The observation the status is decided from.
    pub observation: Observation,
    /// The credentials, when they were read.
    pub credentials: Option<Credentials>,
    /// The resourceVersion of their Secret, when they were read or are known
    /// from the status's record.
    pub credentials_version: Option<CompactString>,
    /// Known from the status's record without the credentials: the output
    /// Secret is as the last pass left it (see [`super::recorded`]).
    pub published: Option<SecretOutcome>,
    /// A check asked for and not answered yet.
    pub waiting: Option<Waiting>,
}

impl Seen {
    /// An observation with no credentials behind it.
    pub fn without_credentials(observation: Observation) -> Seen {
        Seen {
            observation,
            credentials: None,
            credentials_version: None,
            published: None,
            waiting: None,
        }
    }
}

/// Which remembered answers will do for a check at `now`: past the token's
/// date, only those given after it.
pub fn freshness(
    spec: &ParsedSpec,
    forced: bool,
    old: Option<&TrackViaConnectionStatus>,
    now: Timestamp,
) -> Freshness {
    Freshness {
        max_age: spec.verify_interval.unwrap_or(Duration::from_secs(3600)),
        force: forced,
        last_verified: old
            .and_then(|o| o.last_verified_time.as_deref())
            .and_then(|t| t.parse().ok()),
        not_before: spec.token_expires_at.filter(|at| now >= *at),
    }
}

/// The verifier's reply as an answer, or as a check still waiting.
pub fn reply(ask: Ask, forced: bool) -> (Option<Verification>, Option<Waiting>) {
    let waiting = |recheck| Some(Waiting { forced, recheck });
    match ask {
        Ask::Answer(answer) => (
            Some(Verification {
                outcome: answer.outcome,
                at: answer.at,
            }),
            None,
        ),
        Ask::Pending => (None, waiting(VERIFICATION_RECHECK)),
        Ask::Deferred(wait) => (None, waiting(wait)),
    }
}

/// Nothing to say about a new connection until its first answer: when to look again.
pub fn quiet_until_first_answer(
    old: Option<&TrackViaConnectionStatus>,
    waiting: Option<Waiting>,
) -> Option<Duration> {
    waiting.filter(|_| old.is_none()).map(|w| w.recheck)
}

/// The status this pass decides before publishing anything.
pub fn status_before_publishing(
    tvc: &TrackViaConnection,
    old: Option<&TrackViaConnectionStatus>,
    parsed: &Parsed,
    seen: &Seen,
    now: Timestamp,
    settings: Settings,
) -> TrackViaConnectionStatus {
    let requested = tvc
        .annotations()
        .get(VERIFY_REQUESTED_ANNOTATION)
        .map(String::as_str);
    // A forced check still waiting is recorded as done only with its answer.
    let verify_requested = match seen.waiting {
        Some(Waiting { forced: true, .. }) => old.and_then(|o| o.verify_requested_at.as_deref()),
        _ => requested,
    };
    let target_name = tvc.target_name();
    let mut next = connection::desired_status(&connection::Input {
        spec: parsed.as_ref().ok(),
        generation: tvc.metadata.generation,
        old,
        observation: &seen.observation,
        jitter: jitter_for(tvc),
        verify_requested,
        secret_name: &target_name,
        now,
        settings,
    });
    // The fingerprint and the version it was read at go together (a status
    // without credentials keeps both from the pass that had them).
    if let Observation::Credentials { .. } = seen.observation {
        next.credentials_version = seen.credentials_version.clone();
    }
    next
}

/// What publishing takes, when the status allows it.
#[derive(Debug)]
pub enum PublishStep<'a> {
    /// Publish these host and credentials.
    Write(&'a str, &'a Credentials),
    /// The output Secret is known as the status records it: this outcome.
    AsRecorded(SecretOutcome),
    /// Nothing.
    Nothing,
}

/// What to publish, when the status allows publishing.
pub fn to_publish<'a>(
    tvc: &TrackViaConnection,
    parsed: &'a Parsed,
    seen: &'a Seen,
    next: &TrackViaConnectionStatus,
) -> PublishStep<'a> {
    if parsed.is_err() || !connection::should_publish(tvc.spec.publish, next) {
        return PublishStep::Nothing;
    }
    match (&seen.credentials, parsed, &seen.published) {
        (Some(creds), Ok(p), _) => PublishStep::Write(p.host.as_str(), creds),
        (None, _, Some(outcome)) => PublishStep::AsRecorded(outcome.clone()),
        _ => PublishStep::Nothing,
    }
}

/// The status once the Secret's outcome is known.
pub fn status_after_publishing(
    mut next: TrackViaConnectionStatus,
    outcome: &SecretOutcome,
    tvc: &TrackViaConnection,
    now: Timestamp,
) -> TrackViaConnectionStatus {
    if let SecretOutcome::Synced { .. } = outcome {
        next.secret_name = Some(tvc.target_name().into());
    }
    connection::finish(next, outcome, tvc.metadata.generation, now)
}

/// The Secret published under an earlier `target.name`, to let go of once the
/// new one is in place.
pub fn retired_name<'a>(
    old: Option<&'a TrackViaConnectionStatus>,
    outcome: &SecretOutcome,
    tvc: &TrackViaConnection,
) -> Option<&'a str> {
    let previous = old.and_then(|o| o.secret_name.as_deref())?;
    (matches!(outcome, SecretOutcome::Synced { .. }) && previous != tvc.target_name())
        .then_some(previous)
}

/// What to do with the output Secret found at the target name.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretStep {
    /// It holds what is wanted: nothing to write.
    UpToDate,
    /// Apply this Secret.
    Apply(Box<Secret>),
    /// Not ours to write; the text says why.
    Conflict(String),
}

/// The decision for the output Secret `existing` (absent: `None`) and the
/// Secret the connection wants there. A change here that the rendering does
/// not show needs `published::RULES` bumped.
pub fn secret_step(
    existing: Option<&Secret>,
    desired: Secret,
    tvc: &TrackViaConnection,
) -> SecretStep {
    let name = tvc.target_name();
    if let Some(existing) = existing {
        match secret::ownership(&existing.metadata, tvc) {
            Ownership::Ours => {}
            Ownership::OtherConnection(other) => {
                return SecretStep::Conflict(format!(
                    "Secret {name} is published by TrackViaConnection {other}; choose another spec.target.name"
                ));
            }
            Ownership::Foreign if !tvc.spec.target.adopt => {
                return SecretStep::Conflict(format!(
                    "Secret {name} exists and is not managed by trackvia-operator; it is left untouched (set spec.target.adopt: true to take it over)"
                ));
            }
            Ownership::Foreign if existing.type_.as_deref().unwrap_or("Opaque") != "Opaque" => {
                return SecretStep::Conflict(format!(
                    "Secret {name} has type {}; only Opaque Secrets are adopted",
                    existing.type_.as_deref().unwrap_or_default()
                ));
            }
            Ownership::Foreign => {}
        }
    }
    // An adopted Secret keeps its other keys, so it never carries an ownerReference.
    let desired = if adoption::is_adopted(existing, tvc) {
        adoption::as_adopted(desired, tvc.spec.target.deletion_policy)
    } else {
        desired
    };
    if secret::needs_apply(existing, &desired) {
        SecretStep::Apply(Box::new(desired))
    } else {
        SecretStep::UpToDate
    }
}

/// Everything the next wake-up depends on.
#[derive(Debug)]
pub struct WakeInputs<'a> {
    /// The status as written.
    pub next: &'a TrackViaConnectionStatus,
    /// The check waiting for its answer, if any.
    pub waiting: Option<Waiting>,
    /// The restart debounce.
    pub restart: &'a RestartStep,
    /// What happened to the Secret.
    pub outcome: &'a SecretOutcome,
    /// What the pass observed.
    pub observation: &'a Observation,
    /// Now.
    pub now: Timestamp,
}

/// When to look at the connection again without a change to wake it (a
/// little past the instant, so the next pass sees it as reached), if ever.
pub fn next_check(w: &WakeInputs<'_>) -> Option<Duration> {
    let scheduled = match w.waiting {
        // The due check is asked for already: wake for the other instants only.
        Some(_) => connection::next_wakeup(
            &TrackViaConnectionStatus {
                next_verification_time: None,
                ..w.next.clone()
            },
            w.now,
        ),
        None => connection::next_wakeup(w.next, w.now),
    };
    let restart_wake = match w.restart {
        RestartStep::Wait(d) => Some(*d),
        _ => None,
    };
    // A Secret that could not be written is tried again soon, one that could
    // not be read now and then.
    let secret_retry = matches!(w.outcome, SecretOutcome::Error(_)).then_some(SECRET_RETRY);
    let source_retry = matches!(w.observation, Observation::CredentialsUnreadable(_))
        .then_some(source_read::RETRY_EVERY);
    [
        scheduled,
        restart_wake,
        secret_retry,
        source_retry,
        w.waiting.map(|w| w.recheck),
    ]
    .into_iter()
    .flatten()
    .min()
    .map(|d| d + Duration::from_millis(250))
}
