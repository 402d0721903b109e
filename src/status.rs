//! Pure decisions about a connection's status: the desired status from
//! (spec, previous status, what was observed, now), when to verify next, and
//! which transitions deserve an event. No IO here; `now` is always an argument.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::crd::{
    Condition, Publish, TrackViaConnectionSpec, TrackViaConnectionStatus, condition, reason,
};
use crate::trackvia::{Rejection, TransientKind, VerificationOutcome};

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

/// The spec, parsed into typed values.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSpec {
    /// `host[:port]`, lower case.
    pub host: String,
    /// 00:00 UTC on `tokenExpiresOn`.
    pub token_expires_at: Option<Timestamp>,
    /// `tokenExpiresAt - expiryWarning`.
    pub expiry_warning_at: Option<Timestamp>,
    /// Periodic verification interval; `None` when turned off (`0`).
    pub verify_interval: Option<Duration>,
}

/// Parse a duration such as `336h`, `1h30m`, `90s` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    // kube's parser panics on a number beyond `Duration`'s range and on a sign
    // inside the text; the schema does not stop `9999999999999999999h` (the
    // CEL rules may not run at all on older clusters), so refuse such input here.
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let too_big = unsigned
        .split(|c: char| c.is_alphabetic())
        .filter_map(|number| number.parse::<f64>().ok())
        .any(|number| number >= 1e12);
    // kube's parser also reads "" as zero, which would silently turn checks off.
    if text.is_empty() {
        return Err("an empty string is not a duration".into());
    }
    if text.len() > 64 || unsigned.contains(['-', '+']) || too_big {
        return Err(format!("{text:?} is not a duration of a sensible size"));
    }
    let parsed: kube::core::Duration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration: {e}"))?;
    let std: Duration = parsed.into();
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    Ok(std)
}

/// The instant a token dated `date` (YYYY-MM-DD) stops working: 00:00:00 UTC that day.
pub fn token_expiry_instant(date: &str) -> Result<Timestamp, String> {
    let day: jiff::civil::Date = date
        .parse()
        .map_err(|_| format!("tokenExpiresOn {date:?} is not a calendar date (YYYY-MM-DD)"))?;
    if date.len() != 10 {
        return Err(format!(
            "tokenExpiresOn {date:?} is not a calendar date (YYYY-MM-DD)"
        ));
    }
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("tokenExpiresOn {date:?}: {e}"))
}

/// A lower-case DNS name with an optional port from 1 to 65535, and nothing else.
pub fn valid_host_port(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    valid_dns_subdomain(name) && port_ok
}

/// A lower-case DNS subdomain: labels of 1 to 63 letters, digits and inner
/// hyphens, at most 253 characters in all.
fn valid_dns_subdomain(name: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

fn valid_name_part(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A Kubernetes qualified name: `[prefix/]name`.
fn valid_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => valid_dns_subdomain(prefix) && valid_name_part(name),
        None => valid_name_part(key),
    }
}

fn valid_label_value(value: &str) -> bool {
    value.is_empty() || valid_name_part(value)
}

/// Parse and check what the schema cannot (real dates, sizes of durations).
pub fn parse_spec(spec: &TrackViaConnectionSpec) -> Result<ParsedSpec, String> {
    let host = spec.host.trim().to_ascii_lowercase();
    if !valid_host_port(&host) {
        return Err(format!(
            "host {:?} must be host[:port]: a DNS name without scheme, userinfo or path, and a port from 1 to 65535",
            spec.host
        ));
    }
    let keys = &spec.target.keys;
    let names = [
        &keys.api_key,
        &keys.auth_token,
        &keys.host,
        &keys.account_id,
        &keys.base_url,
    ];
    if names
        .iter()
        .enumerate()
        .any(|(i, a)| names[..i].contains(a))
    {
        return Err("target.keys must all be different".to_string());
    }
    for key in names {
        if key.is_empty()
            || key == "."
            || key == ".."
            || key.len() > 253
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(format!("target.keys: {key:?} is not a valid Secret key"));
        }
    }
    for (key, value) in &spec.target.labels {
        if !valid_qualified_name(key) || !valid_label_value(value) {
            return Err(format!(
                "target.labels: {key:?}={value:?} is not a valid label"
            ));
        }
    }
    for key in spec.target.annotations.keys() {
        if !valid_qualified_name(key) {
            return Err(format!(
                "target.annotations: {key:?} is not a valid annotation key"
            ));
        }
    }
    if spec
        .target
        .labels
        .contains_key(crate::crd::MANAGED_BY_LABEL)
    {
        return Err(format!(
            "target.labels must not set {}",
            crate::crd::MANAGED_BY_LABEL
        ));
    }
    let token_expires_at = spec
        .token_expires_on
        .as_deref()
        .map(token_expiry_instant)
        .transpose()?;
    let warning =
        parse_duration(&spec.expiry_warning).map_err(|e| format!("expiryWarning: {e}"))?;
    let warning =
        SignedDuration::try_from(warning).map_err(|_| "expiryWarning is too long".to_string())?;
    let expiry_warning_at = match token_expires_at {
        Some(at) => Some(
            at.checked_sub(warning)
                .map_err(|_| "expiryWarning is too long".to_string())?,
        ),
        None => None,
    };
    let interval =
        parse_duration(&spec.verify_interval).map_err(|e| format!("verifyInterval: {e}"))?;
    let verify_interval = if interval.is_zero() {
        None
    } else if interval < Duration::from_secs(60) {
        return Err(format!(
            "verifyInterval {:?} is below the minimum of 1m",
            spec.verify_interval
        ));
    } else {
        Some(interval.min(Duration::from_secs(366 * 24 * 3600)))
    };
    Ok(ParsedSpec {
        host,
        token_expires_at,
        expiry_warning_at,
        verify_interval,
    })
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
        c.status == "Unknown"
            && c.reason != reason::TRANSIENT_FAILURE
            && c.reason != reason::RATE_LIMITED
    });
    let new_credentials = old.credentials_fingerprint.as_deref() != Some(fingerprint);
    let scheduled = old
        .next_verification_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
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
    let changed = new_credentials || old.observed_generation != generation;
    (never_answered || changed || scheduled, false)
}

/// The status after the verification step (SecretSynced is filled in by [`finish`]).
pub fn desired_status(input: &Input<'_>) -> TrackViaConnectionStatus {
    let mut next = checked_status(input);
    // Set once, after the answer: whether the date is stale depends on it.
    expiry::set_expiring(&mut next, input.spec, input.generation, input.now);
    next
}

/// Everything but `Expiring`.
fn checked_status(input: &Input<'_>) -> TrackViaConnectionStatus {
    let now = input.now;
    let old = input.old.cloned().unwrap_or_default();
    let mut next = TrackViaConnectionStatus {
        observed_generation: input.generation,
        conditions: old.conditions.clone(),
        token_expires_at: input.spec.and_then(|s| s.token_expires_at).map(fmt_time),
        expiry_warning_at: input.spec.and_then(|s| s.expiry_warning_at).map(fmt_time),
        last_verified_time: old.last_verified_time.clone(),
        last_successful_verification_time: old.last_successful_verification_time.clone(),
        next_verification_time: old.next_verification_time.clone(),
        last_http_status: old.last_http_status,
        consecutive_failures: old.consecutive_failures,
        failing_since: old.failing_since.clone(),
        // Moves to a new target name only once that Secret is written (see the controller).
        secret_name: old
            .secret_name
            .clone()
            .or_else(|| Some(input.secret_name.to_string())),
        credentials_fingerprint: old.credentials_fingerprint.clone(),
        verified_fingerprint: old.verified_fingerprint.clone(),
        published_hash: old.published_hash.clone(),
        verify_requested_at: input
            .verify_requested
            .map(str::to_string)
            .or(old.verify_requested_at.clone()),
        pending_restart_since: old.pending_restart_since.clone(),
    };
    let generation = input.generation;
    let set = |next: &mut TrackViaConnectionStatus,
               type_: &str,
               status: &str,
               reason: &str,
               message: String| {
        set_condition(
            &mut next.conditions,
            type_,
            status,
            reason,
            &message,
            generation,
            now,
        );
    };

    let (fingerprint, verification, awaiting) = match input.observation {
        Observation::InvalidSpec(msg) => {
            return blocked(next, reason::INVALID_SPEC, msg.clone(), generation, now);
        }
        Observation::HostNotAllowed(msg) => {
            return blocked(next, reason::HOST_NOT_ALLOWED, msg.clone(), generation, now);
        }
        Observation::CredentialsNotFound(msg) => {
            return blocked(
                next,
                reason::CREDENTIALS_NOT_FOUND,
                msg.clone(),
                generation,
                now,
            );
        }
        Observation::CredentialsUnreadable(msg) => {
            return blocked(
                next,
                reason::CREDENTIALS_UNREADABLE,
                msg.clone(),
                generation,
                now,
            );
        }
        Observation::Credentials {
            fingerprint,
            verification,
            awaiting,
        } => (fingerprint.as_str(), verification.as_ref(), *awaiting),
    };
    let Some(spec) = input.spec else {
        return blocked(
            next,
            reason::INVALID_SPEC,
            "the spec could not be parsed".into(),
            generation,
            now,
        );
    };
    let same_credentials = old.credentials_fingerprint.as_deref() == Some(fingerprint);
    next.credentials_fingerprint = Some(fingerprint.to_string());
    if !same_credentials {
        // A new credential starts with a clean slate.
        next.consecutive_failures = 0;
        next.failing_since = None;
        if verification.is_none() {
            set(
                &mut next,
                condition::VERIFIED,
                "Unknown",
                reason::VERIFICATION_PENDING,
                "the credentials have not been checked yet".into(),
            );
        }
    }

    if let Some(v) = verification {
        next.last_verified_time = Some(fmt_time(v.at));
        next.last_http_status = v.outcome.http_status().or(next.last_http_status);
        match &v.outcome {
            VerificationOutcome::Verified { http_status } => {
                next.consecutive_failures = 0;
                next.failing_since = None;
                next.last_successful_verification_time = Some(fmt_time(v.at));
                next.verified_fingerprint = Some(fingerprint.to_string());
                set(
                    &mut next,
                    condition::VERIFIED,
                    "True",
                    reason::VERIFIED,
                    format!("TrackVia accepted the credentials (HTTP {http_status})"),
                );
                next.next_verification_time = spec
                    .verify_interval
                    .map(|i| fmt_time(add(v.at, jittered(i, input.jitter, 0.1))));
            }
            VerificationOutcome::Rejected {
                rejection,
                http_status,
                detail,
            } => {
                next.consecutive_failures = 0;
                next.failing_since = None;
                let reason = rejection_reason(*rejection);
                let mut message = format!("TrackVia refused the credentials (HTTP {http_status})");
                if !detail.is_empty() {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                set(&mut next, condition::VERIFIED, "False", reason, message);
                next.next_verification_time = spec
                    .verify_interval
                    .map(|i| fmt_time(add(v.at, jittered(i, input.jitter, 0.1))));
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
                let reason = if *kind == TransientKind::RateLimited {
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
                set(&mut next, condition::VERIFIED, "Unknown", reason, message);
                let mut delay = retry_delay(
                    next.consecutive_failures,
                    *retry_after,
                    spec.verify_interval,
                    input.jitter,
                    input.settings,
                );
                // Check again right when the grace period ends, so Unreachable is
                // reported on time rather than at the next (exponential) retry.
                let since = next
                    .failing_since
                    .as_deref()
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .unwrap_or(v.at);
                let grace_end = add(since, input.settings.failure_grace);
                if grace_end > v.at {
                    let until =
                        grace_end.duration_since(v.at).unsigned_abs() + Duration::from_secs(1);
                    if retry_after.is_none_or(|r| r <= until) {
                        delay = delay.min(until);
                    }
                }
                next.next_verification_time = Some(fmt_time(add(v.at, delay)));
            }
        }
    }

    // Ready: the token's date first (unless TrackVia accepted the credentials
    // after it), then the latest answer, damped for transient failures.
    let stale = expiry::date_stale(Some(spec), &next, now);
    if let Some(expires) = spec.token_expires_at.filter(|at| now >= *at && !stale) {
        set(
            &mut next,
            condition::READY,
            "False",
            reason::EXPIRED,
            format!(
                "the token expired at {} (spec.tokenExpiresOn)",
                fmt_time(expires)
            ),
        );
        // Credentials whose check is asked for and not answered yet, or still
        // waiting for a real answer (rotated during an outage), keep their
        // check; anything else is not asked again.
        let verified = next.condition(condition::VERIFIED);
        let waiting = awaiting || verified.is_some_and(awaits_answer);
        // A refusal stays as TrackVia gave it.
        let refused = verified.is_some_and(|v| v.status == "False");
        if !waiting {
            if verification.is_none() && !refused {
                set(
                    &mut next,
                    condition::VERIFIED,
                    "False",
                    reason::EXPIRED,
                    "the token is past its expiry date; TrackVia is not asked".into(),
                );
            }
            // A check left in the past would make `next_wakeup` requeue every second.
            next.next_verification_time = None;
        }
        return next;
    }
    let verified = next.condition(condition::VERIFIED).cloned();
    match verified {
        Some(c) if c.status == "True" => {
            // A target conflict or an unwritable Secret stays until `finish`
            // knows whether it is still there, so Ready does not flip True and
            // back on every pass (which would move lastTransitionTime and patch
            // the status each time).
            let held = old.condition(condition::READY).is_some_and(|r| {
                r.status == "False" && HELD_BY_SECRET.contains(&r.reason.as_str())
            });
            if !held {
                let (why, message) = if stale {
                    (reason::EXPIRY_DATE_STALE, expiry::STALE_READY_MESSAGE)
                } else {
                    (reason::VERIFIED, expiry::READY_MESSAGE)
                };
                set(&mut next, condition::READY, "True", why, message.into());
            }
        }
        Some(c) if c.status == "False" => {
            let mut message = c.message.clone();
            if next.verified_fingerprint.is_some()
                && next.verified_fingerprint.as_deref() != Some(fingerprint)
            {
                message.push_str("; the output Secret keeps the last verified credentials");
            }
            set(&mut next, condition::READY, "False", &c.reason, message);
        }
        Some(c) if c.reason == reason::TRANSIENT_FAILURE || c.reason == reason::RATE_LIMITED => {
            let since = next
                .failing_since
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .or_else(|| c.last_transition_time.parse::<Timestamp>().ok())
                .unwrap_or(now);
            let outage = now.duration_since(since).unsigned_abs();
            let failures = next.consecutive_failures;
            if failures >= input.settings.failure_threshold
                && outage >= input.settings.failure_grace
            {
                set(
                    &mut next,
                    condition::READY,
                    "False",
                    reason::UNREACHABLE,
                    format!(
                        "TrackVia unreachable for {failures} checks since {}: {}",
                        fmt_time(since),
                        c.message
                    ),
                );
            } else {
                let keep = same_credentials
                    && old.condition(condition::READY).is_some_and(|r| {
                        [
                            reason::VERIFIED,
                            reason::UNAUTHORIZED,
                            reason::FORBIDDEN,
                            reason::EXPIRED,
                            reason::UNREACHABLE,
                            reason::TARGET_CONFLICT,
                            reason::SECRET_SYNC_FAILED,
                            reason::EXPIRY_DATE_STALE,
                        ]
                        .contains(&r.reason.as_str())
                    });
                if !keep {
                    set(
                        &mut next,
                        condition::READY,
                        "Unknown",
                        reason::VERIFICATION_PENDING,
                        "waiting for an answer from TrackVia".into(),
                    );
                } else if let Some(r) = old.condition(condition::READY) {
                    // Keep the last answer, with its reason and message, until the grace period ends.
                    let (status, reason, message) =
                        (r.status.clone(), r.reason.clone(), r.message.clone());
                    set(&mut next, condition::READY, &status, &reason, message);
                }
            }
        }
        _ => {
            set(
                &mut next,
                condition::READY,
                "Unknown",
                reason::VERIFICATION_PENDING,
                "waiting for an answer from TrackVia".into(),
            );
        }
    }
    next
}

/// Ready reasons that stand for "the credentials work, but the output Secret
/// could not be written"; `finish` decides each pass whether they still hold.
const HELD_BY_SECRET: [&str; 2] = [reason::TARGET_CONFLICT, reason::SECRET_SYNC_FAILED];

/// Verified says a check of the current credentials got no definite answer
/// yet (an outage, a 429): it is to be retried.
fn awaits_answer(verified: &Condition) -> bool {
    verified.status == "Unknown"
        && (verified.reason == reason::TRANSIENT_FAILURE || verified.reason == reason::RATE_LIMITED)
}

/// Verified says the current credentials' check was asked for and is not
/// answered yet (set only when it was: see the past-date branch of
/// [`desired_status`]).
fn asked_for(verified: &Condition) -> bool {
    verified.status == "Unknown" && verified.reason == reason::VERIFICATION_PENDING
}

fn blocked(
    mut next: TrackViaConnectionStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> TrackViaConnectionStatus {
    // Whatever failed before is moot until the connection can be checked again.
    next.consecutive_failures = 0;
    next.failing_since = None;
    set_condition(
        &mut next.conditions,
        condition::READY,
        "False",
        reason,
        &message,
        generation,
        now,
    );
    set_condition(
        &mut next.conditions,
        condition::VERIFIED,
        "Unknown",
        reason,
        "not checked: see Ready",
        generation,
        now,
    );
    next.next_verification_time = None;
    next
}

/// Condition reason for a rejection.
pub fn rejection_reason(rejection: Rejection) -> &'static str {
    match rejection {
        Rejection::Unauthorized => reason::UNAUTHORIZED,
        Rejection::Expired => reason::EXPIRED,
        Rejection::Forbidden => reason::FORBIDDEN,
    }
}

/// Should the current credentials be written to the output Secret?
pub fn should_publish(publish: Publish, status: &TrackViaConnectionStatus) -> bool {
    let Some(fingerprint) = status.credentials_fingerprint.as_deref() else {
        return false;
    };
    let ready_blocked = status.condition(condition::READY).is_some_and(|r| {
        [
            reason::INVALID_SPEC,
            reason::HOST_NOT_ALLOWED,
            reason::CREDENTIALS_NOT_FOUND,
            reason::CREDENTIALS_UNREADABLE,
        ]
        .contains(&r.reason.as_str())
    });
    if ready_blocked {
        return false;
    }
    match publish {
        Publish::Always => true,
        Publish::Verified => status.verified_fingerprint.as_deref() == Some(fingerprint),
    }
}

/// What happened to the output Secret this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretOutcome {
    /// Written or already up to date, with this content hash.
    Synced {
        /// Content hash of the Secret.
        hash: String,
    },
    /// Not written: the credentials are not verified (publish: Verified).
    NotPublished,
    /// Not written: a Secret the operator does not own is at the name.
    Conflict(String),
    /// Writing failed.
    Error(String),
}

/// Fill in `SecretSynced` and let a Secret problem override a True `Ready`.
pub fn finish(
    mut status: TrackViaConnectionStatus,
    secret: &SecretOutcome,
    publish: Publish,
    generation: Option<i64>,
    now: Timestamp,
) -> TrackViaConnectionStatus {
    let secret_name = status.secret_name.clone().unwrap_or_default();
    // `desired_status` carries a conflict or an unwritable Secret over only
    // where Ready would otherwise be True (verified, or inside the grace period
    // of an outage).
    let held = status
        .condition(condition::READY)
        .is_some_and(|r| HELD_BY_SECRET.contains(&r.reason.as_str()));
    let ready_true = held
        || status
            .condition(condition::READY)
            .is_some_and(|r| r.status == "True");
    if held && !matches!(secret, SecretOutcome::Conflict(_) | SecretOutcome::Error(_)) {
        let (why, message) = expiry::working(&status);
        set_condition(
            &mut status.conditions,
            condition::READY,
            "True",
            why,
            message,
            generation,
            now,
        );
    }
    match secret {
        SecretOutcome::Synced { hash } => {
            let still_old = publish == Publish::Verified
                && status.verified_fingerprint.is_some()
                && status.verified_fingerprint != status.credentials_fingerprint;
            let message = if still_old {
                format!("Secret {secret_name} holds the last verified credentials")
            } else {
                format!("Secret {secret_name} is up to date")
            };
            status.published_hash = Some(hash.clone());
            set_condition(
                &mut status.conditions,
                condition::SECRET_SYNCED,
                "True",
                reason::SYNCED,
                &message,
                generation,
                now,
            );
            if publish == Publish::Always && ready_true {
                // nothing more to say
            }
        }
        SecretOutcome::NotPublished => {
            let message = if status.published_hash.is_some() {
                format!(
                    "the current credentials are not verified: Secret {secret_name} keeps the last verified ones"
                )
            } else {
                format!(
                    "Secret {secret_name} is written once TrackVia accepts the credentials (publish: Verified)"
                )
            };
            set_condition(
                &mut status.conditions,
                condition::SECRET_SYNCED,
                "False",
                reason::NOT_PUBLISHED,
                &message,
                generation,
                now,
            );
        }
        SecretOutcome::Conflict(msg) | SecretOutcome::Error(msg) => {
            let (synced_reason, ready_reason) = match secret {
                SecretOutcome::Conflict(_) => (reason::TARGET_CONFLICT, reason::TARGET_CONFLICT),
                // Applications cannot get working credentials: say so in the summary.
                _ => (reason::ERROR, reason::SECRET_SYNC_FAILED),
            };
            set_condition(
                &mut status.conditions,
                condition::SECRET_SYNCED,
                "False",
                synced_reason,
                msg,
                generation,
                now,
            );
            if ready_true {
                set_condition(
                    &mut status.conditions,
                    condition::READY,
                    "False",
                    ready_reason,
                    msg,
                    generation,
                    now,
                );
            }
        }
    }
    status
}

/// Set a condition, keeping `lastTransitionTime` unless `status` flips. The
/// list stays in a fixed order: Ready, Verified, SecretSynced, Expiring, others.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message: String = message.chars().take(1024).collect();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.last_transition_time = fmt_time(now);
        }
        existing.status = status.to_string();
        existing.reason = reason.to_string();
        existing.message = message;
        existing.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: fmt_time(now),
            observed_generation: generation,
        });
    }
    let rank = |t: &str| {
        [
            condition::READY,
            condition::VERIFIED,
            condition::SECRET_SYNCED,
            condition::EXPIRING,
        ]
        .iter()
        .position(|x| *x == t)
        .unwrap_or(99)
    };
    conditions.sort_by_key(|c| rank(&c.type_));
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
    let mut delay = jittered(exp, jitter, 0.2);
    if let Some(wait) = retry_after {
        delay = delay.max(wait);
    }
    let cap = interval.unwrap_or(Duration::from_secs(3600));
    delay.min(cap).max(Duration::from_secs(1))
}

fn jittered(base: Duration, jitter: f64, spread: f64) -> Duration {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + spread * jitter)).unwrap_or(base)
}

fn add(at: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// How long to wait before the next pass: the next check, or the warning or
/// expiry instant, whichever comes first. `None`: nothing is scheduled.
pub fn next_wakeup(status: &TrackViaConnectionStatus, now: Timestamp) -> Option<Duration> {
    [
        &status.next_verification_time,
        &status.expiry_warning_at,
        &status.token_expires_at,
    ]
    .into_iter()
    .filter_map(|t| t.as_deref().and_then(|t| t.parse::<Timestamp>().ok()))
    .filter(|t| *t > now)
    .min()
    .map(|t| t.duration_since(now).unsigned_abs())
    .or_else(|| {
        // A check already due (e.g. the next verification time passed while down).
        status
            .next_verification_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .filter(|t| *t <= now)
            .map(|_| Duration::from_secs(1))
    })
}

/// RFC 3339 with seconds precision, UTC.
pub fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Does a status differ in anything a reader cares about? Timestamps move only
/// with real events here, so a plain comparison is the right test.
pub fn changed(old: Option<&TrackViaConnectionStatus>, new: &TrackViaConnectionStatus) -> bool {
    old != Some(new)
}

/// A transition worth an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Normal or Warning.
    pub warning: bool,
    /// Event reason.
    pub reason: String,
    /// Event note.
    pub message: String,
}

/// Events for what changed between two statuses: a new Ready reason, Expiring turning True.
pub fn transitions(
    old: Option<&TrackViaConnectionStatus>,
    new: &TrackViaConnectionStatus,
) -> Vec<Transition> {
    let mut out = Vec::new();
    let old_ready = old.and_then(|o| o.condition(condition::READY));
    if let Some(ready) = new.condition(condition::READY) {
        let moved = old_ready.is_none_or(|o| o.status != ready.status || o.reason != ready.reason);
        // A new connection that is Ready at its first answer records no event
        // (its status says so): creating a thousand writes no thousand Events.
        // A new connection has no status until that answer; one that had a
        // status before (missing credentials, an invalid spec…) and passed
        // through a pending check has recovered, which is recorded.
        let first_answer = old_ready.is_none();
        let quiet = first_answer && ready.status == "True" && ready.reason == reason::VERIFIED;
        if moved && ready.reason != reason::VERIFICATION_PENDING && !quiet {
            out.push(Transition {
                warning: ready.status != "True" || ready.reason == reason::EXPIRY_DATE_STALE,
                reason: ready.reason.clone(),
                message: ready.message.clone(),
            });
        }
    }
    let was_expiring = old
        .and_then(|o| o.condition(condition::EXPIRING))
        .is_some_and(|c| c.status == "True");
    if let Some(exp) = new.condition(condition::EXPIRING)
        && exp.status == "True"
        && !was_expiring
    {
        let event_reason = if exp.reason == reason::EXPIRY_DATE_STALE {
            reason::EXPIRY_DATE_STALE
        } else {
            "Expiring"
        };
        // A stale date also moves Ready's reason: one event says it.
        out.retain(|t| t.reason != event_reason);
        out.push(Transition {
            warning: true,
            reason: event_reason.into(),
            message: exp.message.clone(),
        });
    }
    let old_hash = old.and_then(|o| o.published_hash.as_deref());
    if let Some(hash) = new.published_hash.as_deref()
        && old_hash.is_some_and(|h| h != hash)
    {
        out.push(Transition {
            warning: false,
            reason: "SecretUpdated".into(),
            message: format!(
                "Secret {} now holds new credentials",
                new.secret_name.as_deref().unwrap_or("")
            ),
        });
    }
    out
}

mod expiry;
#[cfg(test)]
mod tests;
