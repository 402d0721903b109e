//! Tests of the status decisions, through the paths the controller uses.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::schedule::add;
use super::verification::awaits_answer;
use super::*;
use crate::crd::{
    Condition, Publish, TrackViaConnectionSpec, TrackViaConnectionStatus, condition, reason,
};
use crate::names::valid_host_port;
use crate::trackvia::{TransientKind, VerificationOutcome};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::json;

use crate::trackvia::classify_response;

/// The fingerprint of the credentials the source Secret holds in most tests.
const FP: &str = "fp-current";
/// The generation of the connection in most tests.
const GEN: Option<i64> = Some(1);
/// The output Secret's name.
const SECRET: &str = "crm-trackvia";
/// `tokenExpiresOn` of the default spec.
const EXPIRES_ON: &str = "2027-03-31";

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A quiet day long before the warning window opens.
fn t0() -> Timestamp {
    ts("2027-01-10T12:00:00Z")
}

/// 00:00:00 UTC on `EXPIRES_ON`.
fn expiry() -> Timestamp {
    ts("2027-03-31T00:00:00Z")
}

/// `expiry()` minus the default 336h warning.
fn warning() -> Timestamp {
    ts("2027-03-17T00:00:00Z")
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

/// A spec as a user would apply it, with `overrides` merged in (`null` removes a field).
fn spec_with(overrides: serde_json::Value) -> TrackViaConnectionSpec {
    let mut base = json!({
        "host": "acme.trackvia.com",
        "credentialsSecretRef": { "name": "trackvia-api-user" },
        "tokenExpiresOn": EXPIRES_ON,
    });
    let fields = base.as_object_mut().expect("object");
    for (key, value) in overrides.as_object().expect("overrides are an object") {
        if value.is_null() {
            fields.remove(key);
        } else {
            fields.insert(key.clone(), value.clone());
        }
    }
    serde_json::from_value(base).expect("a valid spec")
}

fn parsed_with(overrides: serde_json::Value) -> ParsedSpec {
    parse_spec(&spec_with(overrides)).expect("spec parses")
}

/// The default spec: expires on `EXPIRES_ON`, warning 336h, interval 1h.
fn parsed() -> ParsedSpec {
    parsed_with(json!({}))
}

fn input<'a>(
    spec: &'a ParsedSpec,
    old: Option<&'a TrackViaConnectionStatus>,
    observation: &'a Observation,
    now: Timestamp,
) -> Input<'a> {
    Input {
        spec: Some(spec),
        generation: GEN,
        old,
        observation,
        jitter: 0.0,
        verify_requested: None,
        secret_name: SECRET,
        now,
        settings: Settings::default(),
    }
}

/// One status computation with the default knobs.
fn step(
    spec: &ParsedSpec,
    old: Option<&TrackViaConnectionStatus>,
    observation: Observation,
    now: Timestamp,
) -> TrackViaConnectionStatus {
    desired_status(&input(spec, old, &observation, now))
}

/// A whole pass as the controller runs it: status, publish decision, Secret outcome.
fn pass(
    spec: &ParsedSpec,
    old: Option<&TrackViaConnectionStatus>,
    observation: Observation,
    now: Timestamp,
    secret: &SecretOutcome,
) -> TrackViaConnectionStatus {
    let next = step(spec, old, observation, now);
    finish(next, secret, GEN, now)
}

fn synced(hash: &str) -> SecretOutcome {
    SecretOutcome::Synced {
        hash: hash.to_string(),
        published: Some(format!("7/{hash}").into()),
    }
}

fn answer(outcome: VerificationOutcome, at: Timestamp) -> Option<Verification> {
    Some(Verification { outcome, at })
}

/// Credentials `FP` were read and checked, with this outcome.
fn checked(outcome: VerificationOutcome, at: Timestamp) -> Observation {
    checked_fp(FP, outcome, at)
}

fn checked_fp(fingerprint: &str, outcome: VerificationOutcome, at: Timestamp) -> Observation {
    Observation::Credentials {
        fingerprint: fingerprint.to_string(),
        verification: answer(outcome, at),
        awaiting: false,
    }
}

/// Credentials `FP` were read; no check was due.
fn unchecked() -> Observation {
    unchecked_fp(FP)
}

fn unchecked_fp(fingerprint: &str) -> Observation {
    Observation::Credentials {
        fingerprint: fingerprint.to_string(),
        verification: None,
        awaiting: false,
    }
}

/// Credentials `fingerprint` were read; their check is asked for and not answered yet.
fn awaiting_fp(fingerprint: &str) -> Observation {
    Observation::Credentials {
        fingerprint: fingerprint.to_string(),
        verification: None,
        awaiting: true,
    }
}

fn ok() -> VerificationOutcome {
    classify_response(200, None, br#"[{"id":52,"name":"Default View"}]"#)
}

fn http(code: u16, body: &str) -> VerificationOutcome {
    classify_response(code, None, body.as_bytes())
}

fn unauthorized() -> VerificationOutcome {
    http(
        401,
        r#"{"error":"invalid_token","error_description":"Invalid access token: 2a1f"}"#,
    )
}

fn server_error() -> VerificationOutcome {
    http(503, "Service Unavailable")
}

fn timeout() -> VerificationOutcome {
    VerificationOutcome::Transient {
        kind: TransientKind::Timeout,
        http_status: None,
        retry_after: None,
        detail: "request timed out".into(),
    }
}

fn rate_limited(retry_after_secs: u64) -> VerificationOutcome {
    classify_response(429, Some(&retry_after_secs.to_string()), b"")
}

fn cond<'a>(status: &'a TrackViaConnectionStatus, type_: &str) -> &'a Condition {
    status
        .condition(type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#?}"))
}

/// `(status, reason)` of a condition.
fn state<'a>(status: &'a TrackViaConnectionStatus, type_: &str) -> (&'a str, &'a str) {
    let c = cond(status, type_);
    (c.status.as_str(), c.reason.as_str())
}

fn ltt(status: &TrackViaConnectionStatus, type_: &str) -> Timestamp {
    ts(&cond(status, type_).last_transition_time)
}

/// A connection verified at `at` and published, as the controller leaves it.
fn verified_at(at: Timestamp) -> TrackViaConnectionStatus {
    pass(&parsed(), None, checked(ok(), at), at, &synced("hash-1"))
}

/// When [`rotated`] checks the new credentials: five minutes after `t0()`.
fn rotated_at() -> Timestamp {
    t0() + mins(5)
}

/// A connection verified at `t0()` whose credentials were rotated to
/// `fp-rotated`, checked at [`rotated_at`] with `outcome`.
fn rotated(outcome: VerificationOutcome) -> TrackViaConnectionStatus {
    let old = verified_at(t0());
    let now = rotated_at();
    step(
        &parsed(),
        Some(&old),
        checked_fp("fp-rotated", outcome, now),
        now,
    )
}

fn all_reasons() -> Vec<&'static str> {
    vec![
        reason::VERIFIED,
        reason::EXPIRED,
        reason::UNAUTHORIZED,
        reason::FORBIDDEN,
        reason::CREDENTIALS_NOT_FOUND,
        reason::CREDENTIALS_UNREADABLE,
        reason::EXPIRY_DATE_STALE,
        reason::INVALID_SPEC,
        reason::HOST_NOT_ALLOWED,
        reason::TARGET_CONFLICT,
        reason::UNREACHABLE,
        reason::VERIFICATION_PENDING,
        reason::TRANSIENT_FAILURE,
        reason::RATE_LIMITED,
        reason::SYNCED,
        reason::NOT_PUBLISHED,
        reason::ERROR,
        reason::SECRET_SYNC_FAILED,
        reason::EXPIRING,
        reason::NOT_EXPIRING,
        reason::NO_EXPIRY_DATE,
    ]
}

/// Recomputing a status from itself, with nothing new, gives the same status.
fn assert_fixed_point(
    spec: &ParsedSpec,
    status: &TrackViaConnectionStatus,
    observation: Observation,
    now: Timestamp,
) {
    let again = step(spec, Some(status), observation, now);
    assert_eq!(&again, status, "recomputing changed the status");
    assert!(!changed(Some(status), &again));
    assert!(transitions(Some(status), &again).is_empty());
}

mod answers;
mod blocked;
mod conditions;
mod events;
mod expiry;
mod fixed_point;
mod outage;
mod properties;
mod publish;
mod schedule;
mod spec;
mod stale_date;
mod strategies;
mod stuck;
