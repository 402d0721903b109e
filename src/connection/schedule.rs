//! When to act: whether a call to TrackVia is due this pass, the delay before
//! a retry, the jittered next check, and the next wake-up of a connection.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::conditions::{ConditionExt, ConditionStatus, Instants};
use super::expiry;
use super::spec::ParsedSpec;
use super::status::Settings;
use super::verification::{asked_for, awaits_answer};
use crate::crd::{TrackViaConnectionStatus, condition, reason};

/// Share of the interval by which a periodic check is spread.
const INTERVAL_SPREAD: f64 = 0.1;
/// Share of a retry delay by which retries are spread.
const RETRY_SPREAD: f64 = 0.2;
/// The longest retry delay when periodic checks are off.
const RETRY_CAP: Duration = Duration::from_secs(3600);

/// Is a call to TrackVia due this pass? Returns `(due, forced)`; forced checks
/// do not reuse answers shared by other connections.
pub fn verification_due(
    spec: &ParsedSpec,
    generation: Option<i64>,
    old: Option<&TrackViaConnectionStatus>,
    fingerprint: &str,
    verify_requested: Option<&str>,
    now: Timestamp,
) -> (bool, bool) {
    let forced = verify_requested.is_some()
        && verify_requested != old.and_then(|o| o.verify_requested_at.as_deref());
    if forced {
        return (true, true);
    }
    let past = spec.token_expires_at.is_some_and(|at| now >= at);
    let Some(old) = old else {
        return (!past, false);
    };
    let verified = old.condition(condition::VERIFIED);
    let never_answered = verified.is_none_or(|c| {
        c.is(ConditionStatus::Unknown)
            && !c.reason_in(&[reason::TRANSIENT_FAILURE, reason::RATE_LIMITED])
    });
    let scheduled = Instants::of(old)
        .next_verification
        .is_some_and(|next| now >= next);
    if past {
        // Past the date, TrackVia is asked about rotated credentials (users
        // rotate and forget the date) until it answers, and keeps being asked
        // on schedule once it accepted them anyway; the token the connection
        // started with, or one already answered for, expires without a call.
        let rotated = old
            .credentials_fingerprint
            .as_deref()
            .is_some_and(|previous| previous != fingerprint);
        let asking = (expiry::date_stale(Some(spec), old, now)
            || verified.is_some_and(|v| awaits_answer(v) || asked_for(v)))
            && (never_answered || scheduled);
        return (rotated || asking, false);
    }
    let new_credentials = old.credentials_fingerprint.as_deref() != Some(fingerprint);
    let changed = new_credentials || old.observed_generation != generation;
    (never_answered || changed || scheduled, false)
}

/// The next periodic check after an answer at `at`, if checks are on.
pub(super) fn next_check(
    at: Timestamp,
    interval: Option<Duration>,
    jitter: f64,
) -> Option<Timestamp> {
    interval.map(|i| add(at, jittered(i, jitter, INTERVAL_SPREAD)))
}

/// The delay before retrying after `failures` transient failures: exponential
/// from `retry_base`, jittered, at least `Retry-After`, never beyond the interval.
pub fn retry_delay(
    failures: u32,
    retry_after: Option<Duration>,
    interval: Option<Duration>,
    jitter: f64,
    settings: Settings,
) -> Duration {
    let exp = settings
        .retry_base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let mut delay = jittered(exp, jitter, RETRY_SPREAD);
    if let Some(wait) = retry_after {
        delay = delay.max(wait);
    }
    let cap = interval.unwrap_or(RETRY_CAP);
    delay.min(cap).max(Duration::from_secs(1))
}

/// The retry after a transient failure at `at` of an outage that began at
/// `since`: [`retry_delay`], but no later than just after the grace period
/// ends (so `Unreachable` is reported on time) unless `Retry-After` says so.
pub(super) fn retry_at(
    at: Timestamp,
    since: Timestamp,
    failures: u32,
    retry_after: Option<Duration>,
    interval: Option<Duration>,
    jitter: f64,
    settings: Settings,
) -> Timestamp {
    let mut delay = retry_delay(failures, retry_after, interval, jitter, settings);
    let grace_end = add(since, settings.failure_grace);
    if grace_end > at {
        let until = grace_end.duration_since(at).unsigned_abs() + Duration::from_secs(1);
        if retry_after.is_none_or(|r| r <= until) {
            delay = delay.min(until);
        }
    }
    add(at, delay)
}

/// `base` stretched by `spread * jitter` (jitter clamped to [0, 1]).
fn jittered(base: Duration, jitter: f64, spread: f64) -> Duration {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + spread * jitter)).unwrap_or(base)
}

/// `at + d`, saturating at the end of time.
pub(super) fn add(at: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// How long to wait before the next pass: the next check, or the warning or
/// expiry instant, whichever comes first. `None`: nothing is scheduled.
pub fn next_wakeup(status: &TrackViaConnectionStatus, now: Timestamp) -> Option<Duration> {
    let times = Instants::of(status);
    [
        times.next_verification,
        times.expiry_warning,
        times.token_expires,
    ]
    .into_iter()
    .flatten()
    .filter(|t| *t > now)
    .min()
    .map(|t| t.duration_since(now).unsigned_abs())
    .or_else(|| {
        // A check already due (e.g. the next verification time passed while down).
        times
            .next_verification
            .filter(|t| *t <= now)
            .map(|_| Duration::from_secs(1))
    })
}
