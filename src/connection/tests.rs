//! Tests of the status decisions, through the paths the controller uses.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::schedule::add;
use super::verification::awaits_answer;
use crate::crd::{
    Condition, Publish, TrackViaConnectionSpec, TrackViaConnectionStatus, condition, reason,
};
use crate::status::*;
use crate::trackvia::{TransientKind, VerificationOutcome};

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::json;

use crate::trackvia::classify_response;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

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
    finish(next, secret, Publish::Verified, GEN, now)
}

fn synced(hash: &str) -> SecretOutcome {
    SecretOutcome::Synced {
        hash: hash.to_string(),
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

// ---------------------------------------------------------------------------
// parse_spec and token_expiry_instant
// ---------------------------------------------------------------------------

#[test]
fn token_expires_at_is_midnight_utc_of_the_date() {
    assert_eq!(token_expiry_instant(EXPIRES_ON).unwrap(), expiry());
    assert_eq!(
        token_expiry_instant("2028-02-29").unwrap(),
        ts("2028-02-29T00:00:00Z")
    );
    assert_eq!(
        token_expiry_instant("2000-01-01").unwrap(),
        ts("2000-01-01T00:00:00Z")
    );

    let p = parsed();
    assert_eq!(p.token_expires_at, Some(expiry()));
    assert_eq!(p.host, "acme.trackvia.com");
    assert_eq!(p.verify_interval, Some(Duration::from_secs(3600)));

    let s = step(&p, None, unchecked(), t0());
    assert_eq!(s.token_expires_at.as_deref(), Some("2027-03-31T00:00:00Z"));
    assert_eq!(s.expiry_warning_at.as_deref(), Some("2027-03-17T00:00:00Z"));
}

#[test]
fn expiry_warning_at_is_expiry_minus_expiry_warning() {
    assert_eq!(parsed().expiry_warning_at, Some(warning()));
    let custom = parsed_with(json!({ "expiryWarning": "1h30m" }));
    assert_eq!(custom.expiry_warning_at, Some(ts("2027-03-30T22:30:00Z")));
    let seconds = parsed_with(json!({ "expiryWarning": "90s" }));
    assert_eq!(seconds.expiry_warning_at, Some(ts("2027-03-30T23:58:30Z")));
    let zero = parsed_with(json!({ "expiryWarning": "0" }));
    assert_eq!(zero.expiry_warning_at, zero.token_expires_at);
}

#[test]
fn no_expiry_date_means_no_instants() {
    let p = parsed_with(json!({ "tokenExpiresOn": null }));
    assert_eq!(p.token_expires_at, None);
    assert_eq!(p.expiry_warning_at, None);
    let s = step(&p, None, checked(ok(), t0()), t0());
    assert_eq!(s.token_expires_at, None);
    assert_eq!(s.expiry_warning_at, None);
    assert_eq!(
        state(&s, condition::EXPIRING),
        ("False", reason::NO_EXPIRY_DATE)
    );
    assert_eq!(state(&s, condition::READY), ("True", reason::VERIFIED));
}

#[test]
fn malformed_or_impossible_dates_are_rejected() {
    for bad in [
        "2027-02-30",
        "2027-02-29",
        "2027-04-31",
        "2027-13-01",
        "2027-00-10",
        "2027-01-00",
        "2027/01/01",
        "2027-1-1",
        "27-01-01",
        "tomorrow",
        "",
        " 2027-01-01",
        "2027-01-01 ",
        "2027-01-01T00:00:00Z",
        "+002027-01-01",
        "20270101",
    ] {
        assert!(token_expiry_instant(bad).is_err(), "{bad:?} was accepted");
        let err = parse_spec(&spec_with(json!({ "tokenExpiresOn": bad }))).expect_err(bad);
        assert!(err.contains("tokenExpiresOn"), "{bad:?}: {err}");
    }
    // The very last days of the calendar cannot be represented; no panic either way.
    let _ = token_expiry_instant("9999-12-31");
}

#[test]
fn parse_spec_normalises_and_checks_the_host() {
    let p = parsed_with(json!({ "host": " ACME.TrackVia.com:8443 " }));
    assert_eq!(p.host, "acme.trackvia.com:8443");
    assert_eq!(
        parsed_with(json!({ "host": "localhost:1" })).host,
        "localhost:1"
    );
    assert_eq!(
        parse_spec(&spec_with(json!({ "host": null })))
            .unwrap()
            .host,
        "go.trackvia.com"
    );
    for bad in [
        "https://acme.trackvia.com",
        "acme.trackvia.com/openapi",
        "user@acme.trackvia.com",
        "acme.trackvia.com:",
        "acme.trackvia.com:0",
        "acme.trackvia.com:65536",
        "acme.trackvia.com:http",
        "",
        "   ",
    ] {
        assert!(
            parse_spec(&spec_with(json!({ "host": bad }))).is_err(),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn parse_spec_checks_durations() {
    let interval = |text: &str| {
        parse_spec(&spec_with(json!({ "verifyInterval": text }))).map(|p| p.verify_interval)
    };
    assert_eq!(interval("0"), Ok(None));
    assert_eq!(interval("0s"), Ok(None));
    assert_eq!(interval("1m"), Ok(Some(Duration::from_secs(60))));
    assert_eq!(interval("1h30m"), Ok(Some(Duration::from_secs(5400))));
    // Absurdly long intervals are capped at a year.
    assert_eq!(
        interval("100000h"),
        Ok(Some(Duration::from_secs(366 * 24 * 3600)))
    );
    assert!(interval("30s").unwrap_err().contains("minimum"));
    assert!(interval("59s").is_err());
    assert!(interval("-1h").is_err());
    assert!(interval("often").is_err());

    let warning = |text: &str| {
        parse_spec(&spec_with(json!({ "expiryWarning": text }))).map(|p| p.expiry_warning_at)
    };
    assert!(warning("-1h").unwrap_err().contains("expiryWarning"));
    assert!(warning("soon").is_err());
    // A warning reaching before the start of time is refused, not a panic.
    assert!(warning("99999999999h").is_err());
}

#[test]
fn parse_duration_refuses_what_would_overflow() {
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("336h"), Ok(Duration::from_secs(336 * 3600)));
    assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration("999999999999s"),
        Ok(Duration::from_secs(999_999_999_999))
    );
    // Each of these passes the schema's pattern and length (or comes from a
    // cluster without CEL) and used to panic inside the parser.
    for huge in [
        "9999999999999999999999999999999h",
        "99999999999999999999s",
        "1000000000000h",
        "1h-2m",
        "1h+2m",
        "",
        &"1h".repeat(40),
    ] {
        assert!(parse_duration(huge).is_err(), "{huge:?}");
        let spec = spec_with(json!({ "verifyInterval": huge }));
        assert!(parse_spec(&spec).is_err(), "{huge:?}");
        let spec = spec_with(json!({ "expiryWarning": huge }));
        assert!(parse_spec(&spec).is_err(), "{huge:?}");
    }
}

// ---------------------------------------------------------------------------
// Expiring and the token's date
// ---------------------------------------------------------------------------

#[test]
fn expiring_turns_true_exactly_at_the_warning_instant() {
    let p = parsed();
    let at = |now: Timestamp| step(&p, None, unchecked(), now);
    assert_eq!(
        state(&at(warning() - secs(1)), condition::EXPIRING),
        ("False", reason::NOT_EXPIRING)
    );
    assert_eq!(
        state(&at(warning()), condition::EXPIRING),
        ("True", reason::EXPIRING)
    );
    assert_eq!(
        state(&at(expiry() - secs(1)), condition::EXPIRING),
        ("True", reason::EXPIRING)
    );
    assert_eq!(
        state(&at(expiry()), condition::EXPIRING),
        ("False", reason::EXPIRED)
    );
    assert!(
        cond(&at(warning()), condition::EXPIRING)
            .message
            .contains("2027-03-31T00:00:00Z")
    );
}

#[test]
fn ready_turns_expired_exactly_at_the_expiry_instant_without_asking_trackvia() {
    let p = parsed();
    // Last verified half an hour before expiry; the next check would be after it.
    let old = verified_at(expiry() - mins(30));
    assert_eq!(
        old.next_verification_time.as_deref(),
        Some("2027-03-31T00:30:00Z")
    );

    let before = step(&p, Some(&old), unchecked(), expiry() - secs(1));
    assert_eq!(state(&before, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(
        verification_due(&p, GEN, Some(&old), FP, None, expiry() - secs(1)),
        (false, false)
    );

    let s = step(&p, Some(&old), unchecked(), expiry());
    assert_eq!(state(&s, condition::READY), ("False", reason::EXPIRED));
    assert_eq!(state(&s, condition::VERIFIED), ("False", reason::EXPIRED));
    assert_eq!(state(&s, condition::EXPIRING), ("False", reason::EXPIRED));
    assert_eq!(ltt(&s, condition::READY), expiry());
    assert!(
        cond(&s, condition::READY)
            .message
            .contains("2027-03-31T00:00:00Z")
    );
    // No verification happened: the answer-related fields are unchanged.
    assert_eq!(s.last_verified_time, old.last_verified_time);
    assert_eq!(s.last_http_status, Some(200));
    // Nothing is left to check, so nothing is scheduled: no wake-up loop after expiry.
    assert_eq!(s.next_verification_time, None);
    assert_eq!(next_wakeup(&s, expiry()), None);
    assert_eq!(next_wakeup(&s, expiry() + mins(45)), None);

    // Once the date has passed, an unchanged token is never checked again;
    // new credentials and forced checks are.
    for now in [
        expiry(),
        expiry() + mins(45),
        expiry() + SignedDuration::from_hours(24 * 400),
    ] {
        assert_eq!(
            verification_due(&p, GEN, Some(&s), FP, None, now),
            (false, false)
        );
        assert_eq!(
            verification_due(&p, Some(9), Some(&s), FP, None, now),
            (false, false)
        );
        assert_eq!(
            verification_due(&p, GEN, Some(&s), "fp-rotated", None, now),
            (true, false)
        );
        assert_eq!(
            verification_due(&p, GEN, Some(&s), FP, Some("force"), now),
            (true, true)
        );
        assert_eq!(
            verification_due(&p, GEN, None, FP, None, now),
            (false, false)
        );
    }
}

#[test]
fn a_brand_new_connection_past_its_date_is_expired() {
    let p = parsed();
    let now = expiry() + mins(1);
    assert_eq!(
        verification_due(&p, GEN, None, FP, None, now),
        (false, false)
    );
    let s = step(&p, None, unchecked(), now);
    assert_eq!(state(&s, condition::READY), ("False", reason::EXPIRED));
    assert_eq!(state(&s, condition::VERIFIED), ("False", reason::EXPIRED));
    assert_eq!(s.next_verification_time, None);
    assert!(!should_publish(Publish::Verified, &s));
    assert!(!verification_due(&p, GEN, Some(&s), FP, None, now + mins(90)).0);
}

// ---------------------------------------------------------------------------
// Definite answers
// ---------------------------------------------------------------------------

#[test]
fn a_200_makes_the_connection_ready_and_schedules_the_next_check() {
    let p = parsed();
    let s = step(&p, None, checked(ok(), t0()), t0());
    assert_eq!(state(&s, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(state(&s, condition::VERIFIED), ("True", reason::VERIFIED));
    assert!(cond(&s, condition::VERIFIED).message.contains("HTTP 200"));
    assert_eq!(
        state(&s, condition::EXPIRING),
        ("False", reason::NOT_EXPIRING)
    );
    assert_eq!(
        s.last_successful_verification_time.as_deref(),
        Some("2027-01-10T12:00:00Z")
    );
    assert_eq!(
        s.last_verified_time.as_deref(),
        Some("2027-01-10T12:00:00Z")
    );
    assert_eq!(
        s.next_verification_time.as_deref(),
        Some("2027-01-10T13:00:00Z")
    );
    assert_eq!(s.last_http_status, Some(200));
    assert_eq!(s.consecutive_failures, 0);
    assert_eq!(s.credentials_fingerprint.as_deref(), Some(FP));
    assert_eq!(s.verified_fingerprint.as_deref(), Some(FP));
    assert_eq!(s.secret_name.as_deref(), Some(SECRET));
    assert_eq!(s.observed_generation, GEN);
    assert!(should_publish(Publish::Verified, &s));
    assert!(should_publish(Publish::Always, &s));
}

#[test]
fn the_next_check_is_jittered_by_at_most_a_tenth_of_the_interval() {
    let p = parsed();
    let observation = checked(ok(), t0());
    let next_for = |jitter: f64| {
        let s = desired_status(&Input {
            jitter,
            ..input(&p, None, &observation, t0())
        });
        ts(s.next_verification_time.as_deref().expect("scheduled"))
    };
    assert_eq!(
        next_for(0.5),
        t0() + SignedDuration::from_hours(1) + mins(3)
    );
    let mut seen = std::collections::BTreeSet::new();
    for jitter in [
        0.0,
        0.1,
        0.25,
        0.5,
        0.75,
        0.9999,
        1.0,
        -3.0,
        7.0,
        f64::NAN,
        f64::INFINITY,
    ] {
        let next = next_for(jitter);
        assert!(
            next >= t0() + SignedDuration::from_hours(1),
            "{jitter}: {next}"
        );
        assert!(
            next <= t0() + SignedDuration::from_hours(1) + mins(6),
            "{jitter}: {next}"
        );
        seen.insert(next);
    }
    assert!(seen.len() > 3, "jitter spreads the checks: {seen:?}");
}

#[test]
fn a_shared_answer_keeps_its_own_time() {
    // Another connection with the same credentials asked ten minutes ago.
    let s = step(&parsed(), None, checked(ok(), t0() - mins(10)), t0());
    assert_eq!(
        s.last_verified_time.as_deref(),
        Some("2027-01-10T11:50:00Z")
    );
    assert_eq!(
        s.next_verification_time.as_deref(),
        Some("2027-01-10T12:50:00Z")
    );
}

#[test]
fn periodic_checks_can_be_turned_off() {
    let p = parsed_with(json!({ "verifyInterval": "0" }));
    let s = step(&p, None, checked(ok(), t0()), t0());
    assert_eq!(state(&s, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(s.next_verification_time, None);
    assert_eq!(
        verification_due(
            &p,
            GEN,
            Some(&s),
            FP,
            None,
            t0() + SignedDuration::from_hours(24 * 30)
        ),
        (false, false)
    );
    // Only the dates wake the controller up.
    assert_eq!(
        next_wakeup(&s, t0()),
        Some(warning().duration_since(t0()).unsigned_abs())
    );
}

#[test]
fn rejections_set_ready_false_with_their_reason() {
    let p = parsed();
    let expired_body =
        r#"{"error":"invalid_token","error_description":"Access token expired: 2027-01-01"}"#;
    let cases = [
        (unauthorized(), reason::UNAUTHORIZED, 401),
        (
            http(
                401,
                r#"{"message":"Inactive user","name":"accessDenied","code":"401"}"#,
            ),
            reason::UNAUTHORIZED,
            401,
        ),
        (http(401, expired_body), reason::EXPIRED, 401),
        (
            http(403, r#"{"message":"Forbidden"}"#),
            reason::FORBIDDEN,
            403,
        ),
    ];
    let mut old = verified_at(t0());
    old.consecutive_failures = 2;
    for (outcome, why, code) in cases {
        let detail = match &outcome {
            VerificationOutcome::Rejected { detail, .. } => detail.clone(),
            other => panic!("not a rejection: {other:?}"),
        };
        let now = t0() + mins(5);
        let s = step(&p, Some(&old), checked(outcome, now), now);
        assert_eq!(
            state(&s, condition::READY),
            ("False", why),
            "{code} {detail}"
        );
        assert_eq!(state(&s, condition::VERIFIED), ("False", why));
        let message = &cond(&s, condition::VERIFIED).message;
        assert!(message.contains(&format!("HTTP {code}")), "{message}");
        assert!(message.contains(&detail), "{message}");
        assert!(cond(&s, condition::READY).message.contains(&detail));
        assert_eq!(s.last_http_status, Some(code));
        assert_eq!(s.consecutive_failures, 0);
        // A refusal is a result: the next check is a full interval away.
        assert_eq!(
            s.next_verification_time.as_deref(),
            Some("2027-01-10T13:05:00Z")
        );
        assert_eq!(
            s.last_successful_verification_time,
            old.last_successful_verification_time
        );
        assert_eq!(ltt(&s, condition::READY), now);
    }
}

// ---------------------------------------------------------------------------
// Transient failures and the grace period
// ---------------------------------------------------------------------------

#[test]
fn transient_failures_keep_ready_until_three_failures_and_fifteen_minutes() {
    let p = parsed();
    let verified = verified_at(t0());
    let t1 = t0() + SignedDuration::from_hours(1);
    assert_eq!(
        verification_due(&p, GEN, Some(&verified), FP, None, t1),
        (true, false)
    );

    // 1: a 503.
    let s1 = step(&p, Some(&verified), checked(server_error(), t1), t1);
    assert_eq!(
        state(&s1, condition::VERIFIED),
        ("Unknown", reason::TRANSIENT_FAILURE)
    );
    assert!(cond(&s1, condition::VERIFIED).message.contains("503"));
    assert_eq!(ltt(&s1, condition::VERIFIED), t1);
    assert_eq!(state(&s1, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(ltt(&s1, condition::READY), t0());
    assert_eq!(s1.consecutive_failures, 1);
    assert_eq!(s1.last_http_status, Some(503));
    assert_eq!(
        s1.next_verification_time.as_deref(),
        Some("2027-01-10T13:00:10Z")
    );
    assert_eq!(
        s1.last_successful_verification_time,
        verified.last_successful_verification_time
    );
    assert!(should_publish(Publish::Verified, &s1));
    assert_eq!(
        verification_due(&p, GEN, Some(&s1), FP, None, t1 + secs(9)),
        (false, false)
    );
    assert_eq!(
        verification_due(&p, GEN, Some(&s1), FP, None, t1 + secs(10)),
        (true, false)
    );

    // 2: a timeout (no HTTP status: the last one is kept).
    let s2 = step(
        &p,
        Some(&s1),
        checked(timeout(), t1 + mins(1)),
        t1 + mins(1),
    );
    assert_eq!(s2.consecutive_failures, 2);
    assert_eq!(s2.last_http_status, Some(503));
    assert_eq!(state(&s2, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(
        s2.next_verification_time.as_deref(),
        Some("2027-01-10T13:01:20Z")
    );

    // 3: rate limited with Retry-After; three failures, but only two minutes.
    let s3 = step(
        &p,
        Some(&s2),
        checked(rate_limited(120), t1 + mins(2)),
        t1 + mins(2),
    );
    assert_eq!(
        state(&s3, condition::VERIFIED),
        ("Unknown", reason::RATE_LIMITED)
    );
    assert_eq!(
        ltt(&s3, condition::VERIFIED),
        t1,
        "still Unknown: no transition"
    );
    assert_eq!(s3.consecutive_failures, 3);
    assert_eq!(s3.last_http_status, Some(429));
    assert_eq!(state(&s3, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(
        s3.next_verification_time.as_deref(),
        Some("2027-01-10T13:04:00Z")
    );

    // 4: one second short of the grace period.
    let now = t1 + mins(15) - secs(1);
    let s4 = step(&p, Some(&s3), checked(server_error(), now), now);
    assert_eq!(s4.consecutive_failures, 4);
    assert_eq!(state(&s4, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(ltt(&s4, condition::READY), t0());

    // 5: both limits reached.
    let now = t1 + mins(15);
    let s5 = step(&p, Some(&s4), checked(server_error(), now), now);
    assert_eq!(s5.consecutive_failures, 5);
    assert_eq!(state(&s5, condition::READY), ("False", reason::UNREACHABLE));
    assert_eq!(ltt(&s5, condition::READY), now);
    let message = &cond(&s5, condition::READY).message;
    assert!(
        message.contains("unreachable") && message.contains("2027-01-10T13:00:00Z"),
        "{message}"
    );
    let events = transitions(Some(&s4), &s5);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].warning);
    assert_eq!(events[0].reason, reason::UNREACHABLE);

    // Recovery: the next 200 resets the count and Ready.
    let now = t1 + mins(16);
    let s6 = step(&p, Some(&s5), checked(ok(), now), now);
    assert_eq!(s6.consecutive_failures, 0);
    assert_eq!(state(&s6, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(state(&s6, condition::VERIFIED), ("True", reason::VERIFIED));
    assert_eq!(ltt(&s6, condition::READY), now);
    assert_eq!(ltt(&s6, condition::VERIFIED), now);
    assert_eq!(s6.last_http_status, Some(200));
    assert_eq!(
        s6.last_successful_verification_time.as_deref(),
        Some("2027-01-10T13:16:00Z")
    );
    let events = transitions(Some(&s5), &s6);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::VERIFIED]
    );
    assert!(!events[0].warning);
}

#[test]
fn fifteen_minutes_with_fewer_than_three_failures_is_not_unreachable() {
    let p = parsed();
    let t1 = t0() + SignedDuration::from_hours(1);
    let s1 = step(
        &p,
        Some(&verified_at(t0())),
        checked(server_error(), t1),
        t1,
    );
    let s2 = step(
        &p,
        Some(&s1),
        checked(timeout(), t1 + mins(20)),
        t1 + mins(20),
    );
    assert_eq!(s2.consecutive_failures, 2);
    assert_eq!(state(&s2, condition::READY), ("True", reason::VERIFIED));
    let s3 = step(
        &p,
        Some(&s2),
        checked(timeout(), t1 + mins(21)),
        t1 + mins(21),
    );
    assert_eq!(state(&s3, condition::READY), ("False", reason::UNREACHABLE));
}

#[test]
fn a_pass_without_a_check_can_end_the_grace_period() {
    // The clock alone moves an outage past the grace period once the count is reached.
    let p = parsed();
    let t1 = t0() + SignedDuration::from_hours(1);
    let mut s = verified_at(t0());
    for i in 0..3 {
        let now = t1 + mins(i);
        s = step(&p, Some(&s), checked(server_error(), now), now);
    }
    assert_eq!(
        state(
            &step(&p, Some(&s), unchecked(), t1 + mins(14)),
            condition::READY
        ),
        ("True", reason::VERIFIED)
    );
    assert_eq!(
        state(
            &step(&p, Some(&s), unchecked(), t1 + mins(15)),
            condition::READY
        ),
        ("False", reason::UNREACHABLE)
    );
}

#[test]
fn a_transient_failure_keeps_a_previous_refusal() {
    let p = parsed();
    let refused = step(&p, None, checked(unauthorized(), t0()), t0());
    let now = t0() + SignedDuration::from_hours(1);
    let s = step(&p, Some(&refused), checked(server_error(), now), now);
    assert_eq!(state(&s, condition::READY), ("False", reason::UNAUTHORIZED));
    assert_eq!(
        cond(&s, condition::READY).message,
        cond(&refused, condition::READY).message
    );
    assert_eq!(ltt(&s, condition::READY), t0());
    assert!(transitions(Some(&refused), &s).is_empty());
}

#[test]
fn a_transient_failure_on_a_new_connection_is_pending() {
    let p = parsed();
    for outcome in [server_error(), timeout(), rate_limited(30), http(404, "")] {
        let s = step(&p, None, checked(outcome.clone(), t0()), t0());
        assert_eq!(
            state(&s, condition::READY),
            ("Unknown", reason::VERIFICATION_PENDING),
            "{outcome:?}"
        );
        assert_eq!(cond(&s, condition::VERIFIED).status, "Unknown");
        assert_eq!(s.consecutive_failures, 1);
        assert_eq!(s.last_successful_verification_time, None);
        assert!(!should_publish(Publish::Verified, &s));
        assert!(should_publish(Publish::Always, &s));
        assert!(transitions(None, &s).is_empty(), "no event while pending");
    }
}

#[test]
fn transient_failures_on_new_credentials_do_not_keep_the_old_answer() {
    let p = parsed();
    let old = verified_at(t0());
    let now = t0() + mins(5);
    let s = step(
        &p,
        Some(&old),
        checked_fp("fp-rotated", server_error(), now),
        now,
    );
    assert_eq!(
        state(&s, condition::READY),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert_eq!(s.consecutive_failures, 1);
    assert!(!should_publish(Publish::Verified, &s));
}

// ---------------------------------------------------------------------------
// lastTransitionTime and observedGeneration
// ---------------------------------------------------------------------------

#[test]
fn last_transition_time_moves_only_when_status_flips() {
    let p = parsed();
    let s1 = verified_at(t0());
    for c in &s1.conditions {
        assert_eq!(ts(&c.last_transition_time), t0(), "{c:?}");
    }

    // Another 200 an hour later: timestamps of the answer move, transitions do not.
    let t1 = t0() + SignedDuration::from_hours(1);
    let s2 = pass(&p, Some(&s1), checked(ok(), t1), t1, &synced("hash-1"));
    assert_eq!(
        s2.last_verified_time.as_deref(),
        Some("2027-01-10T13:00:00Z")
    );
    for c in &s2.conditions {
        assert_eq!(ts(&c.last_transition_time), t0(), "{c:?}");
    }

    // A refusal flips Ready and Verified, not Expiring.
    let t2 = t1 + SignedDuration::from_hours(1);
    let s3 = step(&p, Some(&s2), checked(unauthorized(), t2), t2);
    assert_eq!(ltt(&s3, condition::READY), t2);
    assert_eq!(ltt(&s3, condition::VERIFIED), t2);
    assert_eq!(ltt(&s3, condition::EXPIRING), t0());

    // A different refusal keeps the status False: reason changes, time does not.
    let t3 = t2 + SignedDuration::from_hours(1);
    let s4 = step(&p, Some(&s3), checked(http(403, "{}"), t3), t3);
    assert_eq!(state(&s4, condition::READY), ("False", reason::FORBIDDEN));
    assert_eq!(ltt(&s4, condition::READY), t2);
}

#[test]
fn every_condition_carries_the_observed_generation() {
    let p = parsed();
    let s1 = verified_at(t0());
    assert_eq!(s1.conditions.len(), 4);
    assert!(
        s1.conditions.iter().all(|c| c.observed_generation == GEN),
        "{s1:#?}"
    );

    let t1 = t0() + mins(1);
    let observation = checked(ok(), t1);
    let next = desired_status(&Input {
        generation: Some(7),
        ..input(&p, Some(&s1), &observation, t1)
    });
    let next = finish(next, &synced("hash-1"), Publish::Verified, Some(7), t1);
    assert_eq!(next.observed_generation, Some(7));
    assert_eq!(next.conditions.len(), 4);
    assert!(
        next.conditions
            .iter()
            .all(|c| c.observed_generation == Some(7)),
        "{next:#?}"
    );
    for c in &next.conditions {
        assert_eq!(
            ts(&c.last_transition_time),
            t0(),
            "a new generation is not a transition: {c:?}"
        );
    }

    // Blocked passes too.
    let observation = Observation::CredentialsNotFound("Secret trackvia-api-user not found".into());
    let blocked = desired_status(&Input {
        generation: Some(8),
        ..input(&p, Some(&next), &observation, t1)
    });
    let blocked = finish(
        blocked,
        &SecretOutcome::NotPublished,
        Publish::Verified,
        Some(8),
        t1,
    );
    assert!(
        blocked
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(8)),
        "{blocked:#?}"
    );
}

// ---------------------------------------------------------------------------
// Observations that stop before TrackVia
// ---------------------------------------------------------------------------

#[test]
fn blocked_observations_set_ready_false_with_their_reason() {
    let p = parsed();
    let old = verified_at(t0());
    let cases = [
        (
            Observation::InvalidSpec("tokenExpiresOn \"2027-02-30\" is not a calendar date".into()),
            reason::INVALID_SPEC,
        ),
        (
            Observation::HostNotAllowed("host evil.example.com is not allowed".into()),
            reason::HOST_NOT_ALLOWED,
        ),
        (
            Observation::CredentialsNotFound(
                "Secret trackvia-api-user has no key \"authToken\"".into(),
            ),
            reason::CREDENTIALS_NOT_FOUND,
        ),
        (
            Observation::CredentialsUnreadable(
                "reading Secret ns/trackvia-api-user: secrets \"trackvia-api-user\" is forbidden (403)"
                    .into(),
            ),
            reason::CREDENTIALS_UNREADABLE,
        ),
    ];
    for (observation, why) in cases {
        let message = match &observation {
            Observation::InvalidSpec(m)
            | Observation::HostNotAllowed(m)
            | Observation::CredentialsNotFound(m)
            | Observation::CredentialsUnreadable(m) => m.clone(),
            Observation::Credentials { .. } => unreachable!(),
        };
        for previous in [None, Some(&old)] {
            let now = t0() + mins(5);
            let s = step(&p, previous, observation.clone(), now);
            assert_eq!(state(&s, condition::READY), ("False", why));
            assert_eq!(cond(&s, condition::READY).message, message);
            assert_eq!(state(&s, condition::VERIFIED), ("Unknown", why));
            assert_eq!(s.next_verification_time, None);
            assert!(!should_publish(Publish::Verified, &s));
            assert!(!should_publish(Publish::Always, &s));
            // Only the dates are left to wake up for.
            assert_eq!(
                next_wakeup(&s, now),
                Some(warning().duration_since(now).unsigned_abs())
            );
            let events = transitions(previous, &s);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].reason, why);
            assert!(events[0].warning);
        }
    }
}

#[test]
fn credentials_without_a_parsed_spec_are_an_invalid_spec() {
    let observation = unchecked();
    let s = desired_status(&Input {
        spec: None,
        ..input(&parsed(), None, &observation, t0())
    });
    assert_eq!(state(&s, condition::READY), ("False", reason::INVALID_SPEC));
    assert_eq!(
        state(&s, condition::EXPIRING),
        ("False", reason::NO_EXPIRY_DATE)
    );
    assert_eq!(s.token_expires_at, None);
}

#[test]
fn credentials_coming_back_are_checked_again() {
    let p = parsed();
    let old = verified_at(t0());
    let missing = step(
        &p,
        Some(&old),
        Observation::CredentialsNotFound("gone".into()),
        t0() + mins(1),
    );
    // Same credentials as before they went missing: still checked, not trusted.
    assert_eq!(
        verification_due(&p, GEN, Some(&missing), FP, None, t0() + mins(2)),
        (true, false)
    );
    let back = step(
        &p,
        Some(&missing),
        checked(ok(), t0() + mins(2)),
        t0() + mins(2),
    );
    assert_eq!(state(&back, condition::READY), ("True", reason::VERIFIED));
}

// ---------------------------------------------------------------------------
// Rotation and publishing
// ---------------------------------------------------------------------------

#[test]
fn a_rejected_rotation_keeps_the_last_verified_credentials_published() {
    let p = parsed();
    let old = verified_at(t0());
    assert_eq!(old.published_hash.as_deref(), Some("hash-1"));
    let now = t0() + mins(5);
    assert_eq!(
        verification_due(&p, GEN, Some(&old), "fp-rotated", None, now),
        (true, false)
    );

    let s = step(
        &p,
        Some(&old),
        checked_fp("fp-rotated", unauthorized(), now),
        now,
    );
    assert_eq!(state(&s, condition::READY), ("False", reason::UNAUTHORIZED));
    let message = &cond(&s, condition::READY).message;
    assert!(
        message.contains("the output Secret keeps the last verified credentials"),
        "{message}"
    );
    assert_eq!(s.credentials_fingerprint.as_deref(), Some("fp-rotated"));
    assert_eq!(s.verified_fingerprint.as_deref(), Some(FP));
    assert!(!should_publish(Publish::Verified, &s));
    assert!(should_publish(Publish::Always, &s));

    let done = finish(s, &SecretOutcome::NotPublished, Publish::Verified, GEN, now);
    assert_eq!(
        state(&done, condition::SECRET_SYNCED),
        ("False", reason::NOT_PUBLISHED)
    );
    assert!(
        cond(&done, condition::SECRET_SYNCED)
            .message
            .contains("keeps the last verified")
    );
    assert_eq!(done.published_hash.as_deref(), Some("hash-1"));
    let events = transitions(Some(&old), &done);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::UNAUTHORIZED]
    );

    // The fixed token is accepted and published.
    let later = now + mins(10);
    let fixed = step(
        &p,
        Some(&done),
        checked_fp("fp-rotated", ok(), later),
        later,
    );
    assert!(should_publish(Publish::Verified, &fixed));
    let fixed = finish(fixed, &synced("hash-2"), Publish::Verified, GEN, later);
    assert_eq!(state(&fixed, condition::READY), ("True", reason::VERIFIED));
    assert!(
        cond(&fixed, condition::SECRET_SYNCED)
            .message
            .contains("up to date")
    );
    let events = transitions(Some(&done), &fixed);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::VERIFIED, "SecretUpdated"]
    );
}

#[test]
fn new_credentials_start_pending_with_a_clean_slate() {
    let p = parsed();
    let mut old = verified_at(t0());
    old.consecutive_failures = 2;
    let s = step(&p, Some(&old), unchecked_fp("fp-rotated"), t0() + mins(1));
    assert_eq!(
        state(&s, condition::VERIFIED),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert_eq!(
        state(&s, condition::READY),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert_eq!(s.consecutive_failures, 0);
    assert!(!should_publish(Publish::Verified, &s));
    assert!(should_publish(Publish::Always, &s));
    assert_eq!(
        verification_due(&p, GEN, Some(&s), "fp-rotated", None, t0() + mins(2)),
        (true, false)
    );
}

#[test]
fn publish_always_writes_whatever_the_secret_holds() {
    let p = parsed();
    let old = verified_at(t0());
    let now = t0() + mins(5);
    let s = step(
        &p,
        Some(&old),
        checked_fp("fp-rotated", unauthorized(), now),
        now,
    );
    assert!(should_publish(Publish::Always, &s));
    let done = finish(s, &synced("hash-2"), Publish::Always, GEN, now);
    assert_eq!(
        state(&done, condition::SECRET_SYNCED),
        ("True", reason::SYNCED)
    );
    assert!(
        cond(&done, condition::SECRET_SYNCED)
            .message
            .contains("up to date")
    );
    assert_eq!(done.published_hash.as_deref(), Some("hash-2"));
    // Nothing is published without credentials.
    assert!(!should_publish(
        Publish::Always,
        &TrackViaConnectionStatus::default()
    ));
}

#[test]
fn finish_reports_the_secret() {
    let p = parsed();
    let now = t0();
    let fresh = step(&p, None, checked(ok(), now), now);

    let s = finish(fresh.clone(), &synced("h"), Publish::Verified, GEN, now);
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("True", reason::SYNCED)
    );
    assert_eq!(
        cond(&s, condition::SECRET_SYNCED).message,
        format!("Secret {SECRET} is up to date")
    );
    assert_eq!(s.published_hash.as_deref(), Some("h"));

    let s = finish(
        fresh.clone(),
        &SecretOutcome::Error("patch failed: 500".into()),
        Publish::Verified,
        GEN,
        now,
    );
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("False", reason::ERROR)
    );
    assert_eq!(
        state(&s, condition::READY),
        ("False", reason::SECRET_SYNC_FAILED)
    );
    assert_eq!(s.published_hash, None);

    let pending = step(&p, None, unchecked(), now);
    let s = finish(
        pending,
        &SecretOutcome::NotPublished,
        Publish::Verified,
        GEN,
        now,
    );
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("False", reason::NOT_PUBLISHED)
    );
    assert!(
        cond(&s, condition::SECRET_SYNCED)
            .message
            .contains("is written once TrackVia accepts")
    );

    // The rotated-but-unverified Secret under publish: Verified still holds the old credentials.
    let mut rotated = fresh.clone();
    rotated.credentials_fingerprint = Some("fp-rotated".into());
    let s = finish(rotated, &synced("h"), Publish::Verified, GEN, now);
    assert!(
        cond(&s, condition::SECRET_SYNCED)
            .message
            .contains("holds the last verified credentials")
    );
}

#[test]
fn a_target_conflict_overrides_ready_true_only() {
    let p = parsed();
    let now = t0();
    let conflict = SecretOutcome::Conflict(
        "Secret crm-trackvia exists and is not managed by trackvia-operator".into(),
    );
    let s = finish(
        step(&p, None, checked(ok(), now), now),
        &conflict,
        Publish::Verified,
        GEN,
        now,
    );
    assert_eq!(
        state(&s, condition::READY),
        ("False", reason::TARGET_CONFLICT)
    );
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("False", reason::TARGET_CONFLICT)
    );
    assert_eq!(state(&s, condition::VERIFIED), ("True", reason::VERIFIED));

    let s = finish(
        step(&p, None, checked(unauthorized(), now), now),
        &conflict,
        Publish::Always,
        GEN,
        now,
    );
    assert_eq!(state(&s, condition::READY), ("False", reason::UNAUTHORIZED));
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("False", reason::TARGET_CONFLICT)
    );
}

#[test]
fn a_lasting_target_conflict_does_not_rewrite_the_status() {
    let p = parsed();
    let conflict = SecretOutcome::Conflict(
        "Secret crm-trackvia exists and is not managed by trackvia-operator".into(),
    );
    let first = pass(&p, None, checked(ok(), t0()), t0(), &conflict);
    assert_eq!(
        state(&first, condition::READY),
        ("False", reason::TARGET_CONFLICT)
    );

    // Later passes with the conflict still there, with or without a check.
    let mut previous = first.clone();
    for minutes in [1, 5, 59] {
        let now = t0() + mins(minutes);
        let again = pass(&p, Some(&previous), unchecked(), now, &conflict);
        assert_eq!(
            again, previous,
            "a pass {minutes} min later changed the status"
        );
        assert!(!changed(Some(&previous), &again));
        assert!(transitions(Some(&previous), &again).is_empty());
        previous = again;
    }
    let t1 = t0() + SignedDuration::from_hours(1);
    let checked_again = pass(&p, Some(&previous), checked(ok(), t1), t1, &conflict);
    assert_eq!(
        state(&checked_again, condition::READY),
        ("False", reason::TARGET_CONFLICT)
    );
    assert_eq!(ltt(&checked_again, condition::READY), t0());

    // The conflict is resolved: Ready turns True at that moment.
    let t2 = t1 + mins(1);
    let resolved = pass(&p, Some(&checked_again), unchecked(), t2, &synced("hash-1"));
    assert_eq!(
        state(&resolved, condition::READY),
        ("True", reason::VERIFIED)
    );
    assert_eq!(ltt(&resolved, condition::READY), t2);
    assert_eq!(
        state(&resolved, condition::SECRET_SYNCED),
        ("True", reason::SYNCED)
    );
    let events = transitions(Some(&checked_again), &resolved);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::VERIFIED]
    );

    // A refusal during the conflict still wins over it.
    let t3 = t1 + mins(2);
    let refused = pass(
        &p,
        Some(&checked_again),
        checked(unauthorized(), t3),
        t3,
        &conflict,
    );
    assert_eq!(
        state(&refused, condition::READY),
        ("False", reason::UNAUTHORIZED)
    );
}

// ---------------------------------------------------------------------------
// verification_due
// ---------------------------------------------------------------------------

#[test]
fn verification_is_due_at_the_scheduled_time() {
    let p = parsed();
    let old = verified_at(t0());
    let next = t0() + SignedDuration::from_hours(1);
    assert_eq!(
        verification_due(&p, GEN, Some(&old), FP, None, t0()),
        (false, false)
    );
    assert_eq!(
        verification_due(&p, GEN, Some(&old), FP, None, next - secs(1)),
        (false, false)
    );
    assert_eq!(
        verification_due(&p, GEN, Some(&old), FP, None, next),
        (true, false)
    );
    assert_eq!(
        verification_due(&p, GEN, Some(&old), FP, None, next + mins(90)),
        (true, false)
    );
}

#[test]
fn verification_is_due_on_changes() {
    let p = parsed();
    let old = verified_at(t0());
    let now = t0() + mins(1);
    assert_eq!(
        verification_due(&p, GEN, None, FP, None, now),
        (true, false),
        "first pass"
    );
    assert_eq!(
        verification_due(&p, GEN, Some(&old), "fp-rotated", None, now),
        (true, false),
        "new credentials"
    );
    assert_eq!(
        verification_due(&p, Some(2), Some(&old), FP, None, now),
        (true, false),
        "new generation"
    );

    let pending = step(&p, None, unchecked(), now);
    assert_eq!(
        verification_due(&p, GEN, Some(&pending), FP, None, now),
        (true, false),
        "never answered"
    );
}

#[test]
fn verify_requested_at_forces_one_check_per_value() {
    let p = parsed();
    let old = verified_at(t0());
    let now = t0() + mins(5);
    let request = Some("2027-01-10T12:05:00Z");
    assert_eq!(
        verification_due(&p, GEN, Some(&old), FP, request, now),
        (true, true)
    );

    // The forced check is done and recorded.
    let observation = checked(ok(), now);
    let s = desired_status(&Input {
        verify_requested: request,
        ..input(&p, Some(&old), &observation, now)
    });
    assert_eq!(s.verify_requested_at.as_deref(), request);
    assert_eq!(
        verification_due(&p, GEN, Some(&s), FP, request, now + mins(1)),
        (false, false)
    );
    // Removing the annotation keeps the record and forces nothing.
    assert_eq!(
        verification_due(&p, GEN, Some(&s), FP, None, now + mins(1)),
        (false, false)
    );
    let observation = unchecked();
    let kept = desired_status(&input(&p, Some(&s), &observation, now + mins(1)));
    assert_eq!(kept.verify_requested_at.as_deref(), request);
    // A new value forces again.
    assert_eq!(
        verification_due(&p, GEN, Some(&s), FP, Some("again"), now + mins(1)),
        (true, true)
    );
    // On the very first pass the request is honoured too.
    assert_eq!(
        verification_due(&p, GEN, None, FP, request, now),
        (true, true)
    );
}

// ---------------------------------------------------------------------------
// retry_delay and next_wakeup
// ---------------------------------------------------------------------------

#[test]
fn retry_delay_grows_exponentially_and_is_jittered() {
    let settings = Settings::default();
    let hour = Some(Duration::from_secs(3600));
    let delays: Vec<u64> = (1..=6)
        .map(|n| retry_delay(n, None, hour, 0.0, settings).as_secs())
        .collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 320]);
    assert_eq!(
        retry_delay(0, None, hour, 0.0, settings),
        Duration::from_secs(10)
    );
    assert_eq!(
        retry_delay(1, None, hour, 0.5, settings),
        Duration::from_secs(11)
    );
    assert_eq!(
        retry_delay(3, None, hour, 0.5, settings),
        Duration::from_secs(44)
    );
    for jitter in [0.0, 0.3, 0.9999] {
        let d = retry_delay(2, None, hour, jitter, settings);
        assert!(
            d >= Duration::from_secs(20) && d <= Duration::from_secs(24),
            "{d:?}"
        );
    }
}

#[test]
fn retry_delay_honours_retry_after_and_never_exceeds_the_interval() {
    let settings = Settings::default();
    let hour = Some(Duration::from_secs(3600));
    assert_eq!(
        retry_delay(1, Some(Duration::from_secs(120)), hour, 0.0, settings),
        Duration::from_secs(120)
    );
    // A shorter Retry-After does not shorten the back-off.
    assert_eq!(
        retry_delay(4, Some(Duration::from_secs(5)), hour, 0.0, settings),
        Duration::from_secs(80)
    );
    // Capped by the interval, whatever Retry-After or the count say.
    assert_eq!(
        retry_delay(1, Some(Duration::from_secs(86_400)), hour, 0.0, settings),
        Duration::from_secs(3600)
    );
    assert_eq!(
        retry_delay(30, None, hour, 0.9, settings),
        Duration::from_secs(3600)
    );
    assert_eq!(
        retry_delay(
            u32::MAX,
            None,
            Some(Duration::from_secs(300)),
            0.5,
            settings
        ),
        Duration::from_secs(300)
    );
    assert_eq!(
        retry_delay(30, None, None, 0.0, settings),
        Duration::from_secs(3600)
    );
    // Never zero.
    let instant = Settings {
        retry_base: Duration::ZERO,
        ..settings
    };
    assert_eq!(
        retry_delay(1, None, hour, 0.0, instant),
        Duration::from_secs(1)
    );
    // Never a panic on absurd knobs.
    let huge = Settings {
        retry_base: Duration::MAX,
        ..settings
    };
    assert_eq!(
        retry_delay(20, None, hour, 0.7, huge),
        Duration::from_secs(3600)
    );
    assert_eq!(
        retry_delay(1, None, hour, f64::NAN, settings),
        Duration::from_secs(10)
    );

    let p = parsed_with(json!({ "verifyInterval": "1m" }));
    let mut s = verified_at(t0());
    for i in 0..12 {
        let now = t0() + mins(10 * (i + 1));
        s = step(&p, Some(&s), checked(rate_limited(600), now), now);
        let next = ts(s.next_verification_time.as_deref().unwrap());
        assert!(
            next.duration_since(now) <= SignedDuration::from_secs(60),
            "{i}: {next}"
        );
    }
}

#[test]
fn next_wakeup_picks_the_earliest_future_instant() {
    let now = t0();
    let with =
        |next: Option<&str>, warn: Option<&str>, expires: Option<&str>| TrackViaConnectionStatus {
            next_verification_time: next.map(str::to_string),
            expiry_warning_at: warn.map(str::to_string),
            token_expires_at: expires.map(str::to_string),
            ..TrackViaConnectionStatus::default()
        };
    let hours = |h: u64| Some(Duration::from_secs(h * 3600));

    let s = with(
        Some("2027-01-10T13:00:00Z"),
        Some("2027-03-17T00:00:00Z"),
        Some("2027-03-31T00:00:00Z"),
    );
    assert_eq!(next_wakeup(&s, now), hours(1));
    let s = with(
        Some("2027-01-10T15:00:00Z"),
        Some("2027-01-10T14:00:00Z"),
        Some("2027-01-10T16:00:00Z"),
    );
    assert_eq!(next_wakeup(&s, now), hours(2));
    let s = with(
        Some("2027-01-10T17:00:00Z"),
        Some("2027-01-10T11:00:00Z"),
        Some("2027-01-10T16:00:00Z"),
    );
    assert_eq!(
        next_wakeup(&s, now),
        hours(4),
        "a passed warning is skipped"
    );
    let s = with(None, None, Some("2027-01-10T12:00:01Z"));
    assert_eq!(next_wakeup(&s, now), Some(Duration::from_secs(1)));
    // An instant equal to now is not in the future.
    let s = with(
        None,
        Some("2027-01-10T12:00:00Z"),
        Some("2027-01-10T18:00:00Z"),
    );
    assert_eq!(next_wakeup(&s, now), hours(6));
    assert_eq!(next_wakeup(&with(None, None, None), now), None);
    assert_eq!(
        next_wakeup(
            &with(
                None,
                Some("2027-01-01T00:00:00Z"),
                Some("2027-01-02T00:00:00Z")
            ),
            now
        ),
        None
    );
    // A check that became due while nobody looked: right away.
    let s = with(
        Some("2027-01-10T11:00:00Z"),
        Some("2026-01-01T00:00:00Z"),
        None,
    );
    assert_eq!(next_wakeup(&s, now), Some(Duration::from_secs(1)));
    // Garbage is ignored.
    assert_eq!(
        next_wakeup(&with(Some("soon"), Some(""), Some("2027-13-01")), now),
        None
    );

    // From real statuses: the check after a 200, the warning when periodic checks are off.
    assert_eq!(next_wakeup(&verified_at(now), now), hours(1));
    let off = step(
        &parsed_with(json!({ "verifyInterval": "0" })),
        None,
        checked(ok(), now),
        now,
    );
    assert_eq!(
        next_wakeup(&off, now),
        Some(warning().duration_since(now).unsigned_abs())
    );
    let in_window = step(
        &parsed_with(json!({ "verifyInterval": "0" })),
        None,
        checked(ok(), warning()),
        warning(),
    );
    assert_eq!(
        next_wakeup(&in_window, warning()),
        Some(expiry().duration_since(warning()).unsigned_abs())
    );
}

// ---------------------------------------------------------------------------
// transitions
// ---------------------------------------------------------------------------

#[test]
fn events_only_on_a_new_ready_reason() {
    let p = parsed();
    let s1 = verified_at(t0());
    // A new connection Ready at its first answer: its status says so, no event.
    assert!(transitions(None, &s1).is_empty());
    // Missing credentials, then found and checked through a pending pass: a
    // recovery, recorded, although TrackVia never answered before.
    let missing = step(
        &p,
        None,
        Observation::CredentialsNotFound("Secret trackvia-api-user not found".into()),
        t0(),
    );
    let pending = step(&p, Some(&missing), awaiting_fp(FP), t0() + secs(5));
    assert_eq!(
        state(&pending, condition::READY),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert!(transitions(Some(&missing), &pending).is_empty());
    let recovered = pass(
        &p,
        Some(&pending),
        checked(ok(), t0() + secs(6)),
        t0() + secs(6),
        &synced("hash-1"),
    );
    assert_eq!(
        transitions(Some(&pending), &recovered)
            .iter()
            .map(|e| (e.reason.as_str(), e.warning))
            .collect::<Vec<_>>(),
        [(reason::VERIFIED, false)]
    );
    // Refused at its first answer: a warning at once.
    let refused = pass(
        &p,
        None,
        checked(unauthorized(), t0()),
        t0(),
        &SecretOutcome::NotPublished,
    );
    assert_eq!(
        transitions(None, &refused)
            .iter()
            .map(|e| (e.reason.as_str(), e.warning))
            .collect::<Vec<_>>(),
        [(reason::UNAUTHORIZED, true)]
    );

    // Same answer again: nothing.
    let t1 = t0() + SignedDuration::from_hours(1);
    let s2 = pass(&p, Some(&s1), checked(ok(), t1), t1, &synced("hash-1"));
    assert!(transitions(Some(&s1), &s2).is_empty());

    // Refused: one warning.
    let s3 = pass(
        &p,
        Some(&s2),
        checked(unauthorized(), t1 + mins(1)),
        t1 + mins(1),
        &SecretOutcome::NotPublished,
    );
    let events = transitions(Some(&s2), &s3);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, reason::UNAUTHORIZED);
    assert!(events[0].warning);
    assert_eq!(events[0].message, cond(&s3, condition::READY).message);

    // Refused again with another message: same reason, no event.
    let other = http(401, r#"{"message":"Inactive user"}"#);
    let s4 = pass(
        &p,
        Some(&s3),
        checked(other, t1 + mins(2)),
        t1 + mins(2),
        &SecretOutcome::NotPublished,
    );
    assert_ne!(
        cond(&s4, condition::READY).message,
        cond(&s3, condition::READY).message
    );
    assert!(transitions(Some(&s3), &s4).is_empty());

    // Forbidden: a new reason, a new event.
    let s5 = pass(
        &p,
        Some(&s4),
        checked(http(403, "{}"), t1 + mins(3)),
        t1 + mins(3),
        &SecretOutcome::NotPublished,
    );
    assert_eq!(
        transitions(Some(&s4), &s5)
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        [reason::FORBIDDEN]
    );

    // Going back to pending is not an event.
    let s6 = step(&p, Some(&s5), unchecked_fp("fp-rotated"), t1 + mins(4));
    assert_eq!(
        state(&s6, condition::READY),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert!(transitions(Some(&s5), &s6).is_empty());

    // Pending again after a refusal (new credentials), then accepted: that is a
    // recovery, not a first answer, so it is recorded.
    let t = t1 + mins(5);
    let s6b = step(&p, Some(&s5), unchecked_fp("fp-new-token"), t);
    assert_eq!(
        state(&s6b, condition::READY),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    let recovered = pass(&p, Some(&s6b), checked(ok(), t), t, &synced("hash-3"));
    assert!(
        transitions(Some(&s6b), &recovered)
            .iter()
            .any(|e| e.reason == reason::VERIFIED && !e.warning)
    );

    // Accepted after a refusal: a Verified event, not a warning.
    let s7 = pass(
        &p,
        Some(&s5),
        checked(ok(), t1 + mins(5)),
        t1 + mins(5),
        &synced("hash-2"),
    );
    let events = transitions(Some(&s5), &s7);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.reason.as_str(), e.warning))
            .collect::<Vec<_>>(),
        [(reason::VERIFIED, false), ("SecretUpdated", false)]
    );
}

#[test]
fn expiring_is_announced_once() {
    let p = parsed();
    let s1 = verified_at(warning() - SignedDuration::from_hours(2));
    let s2 = pass(
        &p,
        Some(&s1),
        unchecked(),
        warning() - secs(1),
        &synced("hash-1"),
    );
    assert!(transitions(Some(&s1), &s2).is_empty());
    let s3 = pass(&p, Some(&s2), unchecked(), warning(), &synced("hash-1"));
    let events = transitions(Some(&s2), &s3);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, "Expiring");
    assert!(events[0].warning);
    assert!(events[0].message.contains("2027-03-31T00:00:00Z"));
    // Ready stays True inside the window.
    assert_eq!(state(&s3, condition::READY), ("True", reason::VERIFIED));

    let s4 = pass(
        &p,
        Some(&s3),
        checked(ok(), warning() + mins(60)),
        warning() + mins(60),
        &synced("hash-1"),
    );
    assert!(transitions(Some(&s3), &s4).is_empty());

    // At expiry: Expired, not a second Expiring.
    let s5 = pass(
        &p,
        Some(&s4),
        unchecked(),
        expiry(),
        &SecretOutcome::NotPublished,
    );
    let reasons: Vec<_> = transitions(Some(&s4), &s5)
        .into_iter()
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, [reason::EXPIRED]);

    // A connection created inside the window is announced on its first pass.
    let fresh = step(&p, None, unchecked(), warning() + mins(1));
    assert!(
        transitions(None, &fresh)
            .iter()
            .any(|e| e.reason == "Expiring")
    );
}

#[test]
fn secret_updated_only_when_the_published_hash_changes() {
    let p = parsed();
    let s1 = verified_at(t0());
    assert!(
        !transitions(None, &s1)
            .iter()
            .any(|e| e.reason == "SecretUpdated"),
        "first publish"
    );
    let t1 = t0() + mins(1);
    let same = pass(&p, Some(&s1), unchecked(), t1, &synced("hash-1"));
    assert!(transitions(Some(&s1), &same).is_empty());
    let not_published = pass(&p, Some(&s1), unchecked(), t1, &SecretOutcome::NotPublished);
    assert!(transitions(Some(&s1), &not_published).is_empty());
    let updated = pass(&p, Some(&s1), unchecked(), t1, &synced("hash-2"));
    let events = transitions(Some(&s1), &updated);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "SecretUpdated");
    assert!(!events[0].warning);
    assert!(events[0].message.contains(SECRET));
}

// ---------------------------------------------------------------------------
// set_condition
// ---------------------------------------------------------------------------

#[test]
fn set_condition_keeps_order_time_and_size_in_check() {
    let mut conditions = Vec::new();
    set_condition(&mut conditions, "Custom", "True", "Because", "x", GEN, t0());
    set_condition(
        &mut conditions,
        condition::EXPIRING,
        "False",
        reason::NOT_EXPIRING,
        "x",
        GEN,
        t0(),
    );
    set_condition(
        &mut conditions,
        condition::SECRET_SYNCED,
        "True",
        reason::SYNCED,
        "x",
        GEN,
        t0(),
    );
    set_condition(
        &mut conditions,
        condition::VERIFIED,
        "True",
        reason::VERIFIED,
        "x",
        GEN,
        t0(),
    );
    set_condition(
        &mut conditions,
        condition::READY,
        "True",
        reason::VERIFIED,
        "x",
        GEN,
        t0(),
    );
    let order: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        order,
        [
            condition::READY,
            condition::VERIFIED,
            condition::SECRET_SYNCED,
            condition::EXPIRING,
            "Custom"
        ]
    );

    let t1 = t0() + mins(1);
    set_condition(
        &mut conditions,
        condition::READY,
        "True",
        "StillFine",
        "y",
        Some(2),
        t1,
    );
    let ready = &conditions[0];
    assert_eq!(
        (ready.reason.as_str(), ready.message.as_str()),
        ("StillFine", "y")
    );
    assert_eq!(ts(&ready.last_transition_time), t0());
    assert_eq!(ready.observed_generation, Some(2));

    set_condition(
        &mut conditions,
        condition::READY,
        "False",
        reason::UNAUTHORIZED,
        "z",
        Some(2),
        t1,
    );
    assert_eq!(ts(&conditions[0].last_transition_time), t1);
    assert_eq!(conditions.len(), 5);

    let long = "é".repeat(5000);
    set_condition(
        &mut conditions,
        condition::READY,
        "False",
        reason::UNAUTHORIZED,
        &long,
        Some(2),
        t1,
    );
    assert_eq!(conditions[0].message.chars().count(), 1024);
}

// ---------------------------------------------------------------------------
// changed() and fixed points
// ---------------------------------------------------------------------------

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

#[test]
fn recomputing_without_news_changes_nothing() {
    let p = parsed();
    let t1 = t0() + SignedDuration::from_hours(1);

    let verified = step(&p, None, checked(ok(), t0()), t0());
    assert_fixed_point(&p, &verified, unchecked(), t0());
    assert_fixed_point(&p, &verified, unchecked(), t0() + mins(30));

    let refused = step(&p, Some(&verified), checked(unauthorized(), t1), t1);
    assert_fixed_point(&p, &refused, unchecked(), t1);
    assert_fixed_point(&p, &refused, unchecked(), t1 + mins(30));

    let failing = step(&p, Some(&verified), checked(server_error(), t1), t1);
    assert_fixed_point(&p, &failing, unchecked(), t1);
    assert_fixed_point(&p, &failing, unchecked(), t1 + mins(14));

    let new_failing = step(&p, None, checked(timeout(), t0()), t0());
    assert_fixed_point(&p, &new_failing, unchecked(), t0() + mins(1));

    let pending = step(&p, Some(&verified), unchecked_fp("fp-rotated"), t1);
    assert_fixed_point(&p, &pending, unchecked_fp("fp-rotated"), t1 + mins(1));

    let rotated = step(
        &p,
        Some(&verified),
        checked_fp("fp-rotated", unauthorized(), t1),
        t1,
    );
    assert_fixed_point(&p, &rotated, unchecked_fp("fp-rotated"), t1 + mins(1));

    let missing = Observation::CredentialsNotFound("Secret trackvia-api-user not found".into());
    let blocked = step(&p, Some(&verified), missing.clone(), t1);
    assert_fixed_point(&p, &blocked, missing, t1 + mins(30));

    let expired = step(&p, Some(&verified), unchecked(), expiry());
    assert_fixed_point(
        &p,
        &expired,
        unchecked(),
        expiry() + SignedDuration::from_hours(24 * 30),
    );

    let expiring = step(&p, Some(&verified), unchecked(), warning());
    assert_fixed_point(
        &p,
        &expiring,
        unchecked(),
        warning() + SignedDuration::from_hours(1),
    );

    assert!(changed(None, &verified));
    assert!(changed(Some(&verified), &refused));
}

#[test]
fn whole_passes_without_news_change_nothing() {
    let p = parsed();
    let first = verified_at(t0());
    for minutes in [0, 1, 30, 59] {
        let now = t0() + mins(minutes);
        let again = pass(&p, Some(&first), unchecked(), now, &synced("hash-1"));
        assert!(
            !changed(Some(&first), &again),
            "{minutes} min: {first:#?} vs {again:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x7ac0_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any instant jiff can represent, biased towards the months around the fixtures.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let near = (-400 * 86_400i64..=400 * 86_400).prop_map(|s| t0() + secs(s));
    let anywhere = (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
        .prop_map(|s| Timestamp::from_second(s).expect("in range"));
    prop_oneof![3 => near, 1 => anywhere, 1 => Just(Timestamp::MIN), 1 => Just(Timestamp::MAX)]
}

fn any_time_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any_instant().prop_map(|t| Some(fmt_time(t))),
        ".{0,24}".prop_map(Some),
    ]
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        ".{0,120}".prop_map(String::into_bytes),
        "[a-zA-Z :]{0,40}"
            .prop_map(
                |m| format!(r#"{{"error_description":"Access token expired: {m}"}}"#).into_bytes()
            ),
        "[a-zA-Z ]{0,40}".prop_map(|m| format!(r#"{{"message":"{m}","code":"401"}}"#).into_bytes()),
        Just(b"[]".to_vec()),
        Just(br#"[{"id":1}]"#.to_vec()),
        Just(b"{}".to_vec()),
        Just(b"null".to_vec()),
    ]
}

fn any_outcome() -> impl Strategy<Value = VerificationOutcome> {
    let answered = (
        any::<u16>(),
        proptest::option::of("[0-9]{0,7}|.{0,10}"),
        any_body(),
    )
        .prop_map(|(code, retry, body)| classify_response(code, retry.as_deref(), &body));
    let common = (
        prop::sample::select(vec![200u16, 401, 403, 429, 500, 502, 503, 504]),
        any_body(),
    )
        .prop_map(|(code, body)| classify_response(code, Some("30"), &body));
    let accepted = Just(classify_response(200, None, br#"[{"id":1}]"#));
    prop_oneof![answered, common, transient_outcome(), accepted]
}

fn transient_outcome() -> impl Strategy<Value = VerificationOutcome> {
    let kinds = prop::sample::select(vec![
        TransientKind::Timeout,
        TransientKind::Dns,
        TransientKind::Tls,
        TransientKind::Connection,
    ]);
    let network = kinds.prop_map(|kind| VerificationOutcome::Transient {
        kind,
        http_status: None,
        retry_after: None,
        detail: format!("{} failure", kind.as_str()),
    });
    let server = (500u16..600, proptest::option::of(0u64..100_000), any_body()).prop_map(
        |(code, retry, body)| {
            classify_response(code, retry.map(|r| r.to_string()).as_deref(), &body)
        },
    );
    let limited = proptest::option::of(0u64..200_000)
        .prop_map(|retry| classify_response(429, retry.map(|r| r.to_string()).as_deref(), b""));
    let odd = prop::sample::select(vec![301u16, 302, 400, 404, 410, 418])
        .prop_map(|code| classify_response(code, None, b"nope"));
    let not_trackvia = Just(classify_response(200, None, b"<html>login</html>"));
    prop_oneof![network, server, limited, odd, not_trackvia]
}

fn any_condition() -> impl Strategy<Value = Condition> {
    let types = prop::sample::select(vec![
        condition::READY,
        condition::VERIFIED,
        condition::SECRET_SYNCED,
        condition::EXPIRING,
        "Other",
    ]);
    let statuses = prop::sample::select(vec!["True", "False", "Unknown", "Maybe"]);
    let mut reasons = all_reasons();
    reasons.push("SomethingElse");
    let reasons = prop::sample::select(reasons);
    (
        types,
        statuses,
        reasons,
        ".{0,30}",
        any_time_text(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(type_, status, reason, message, time, observed_generation)| Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                last_transition_time: time.unwrap_or_default(),
                observed_generation,
            },
        )
}

fn any_fingerprint() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop::sample::select(vec![
        FP.to_string(),
        "fp-other".to_string(),
    ]))
}

prop_compose! {
    fn any_status()(
        observed_generation in proptest::option::of(any::<i64>()),
        conditions in proptest::collection::vec(any_condition(), 0..7),
        times in proptest::collection::vec(any_time_text(), 5),
        last_http_status in proptest::option::of(any::<u16>()),
        consecutive_failures in prop_oneof![0u32..6, any::<u32>()],
        credentials_fingerprint in any_fingerprint(),
        verified_fingerprint in any_fingerprint(),
        published_hash in proptest::option::of("h[12]"),
        verify_requested_at in proptest::option::of("r[12]"),
    ) -> TrackViaConnectionStatus {
        TrackViaConnectionStatus {
            observed_generation,
            conditions,
            token_expires_at: times[0].clone(),
            expiry_warning_at: times[1].clone(),
            last_verified_time: times[2].clone(),
            last_successful_verification_time: times[3].clone(),
            next_verification_time: times[4].clone(),
            last_http_status,
            consecutive_failures,
            failing_since: None,
            secret_name: Some(SECRET.into()),
            credentials_fingerprint,
            verified_fingerprint,
            published_hash,
            verify_requested_at,
            pending_restart_since: None,
        }
    }
}

/// Specs as the schema lets them through, and a few it does not.
fn any_spec() -> impl Strategy<Value = Result<ParsedSpec, String>> {
    let date = prop_oneof![
        Just(None),
        (0u32..=9999, 1u32..=12, 1u32..=31)
            .prop_map(|(y, m, d)| Some(format!("{y:04}-{m:02}-{d:02}"))),
        Just(Some(EXPIRES_ON.to_string())),
        ".{0,12}".prop_map(Some),
    ];
    let duration = prop_oneof![
        prop::sample::select(vec![
            "0", "1m", "90s", "1h", "336h", "1h30m", "8784h", "-1h", "soon"
        ])
        .prop_map(str::to_string),
        (0u64..100_000_000).prop_map(|h| format!("{h}h")),
        "[0-9]{1,31}(ms|s|m|h)",
        "-?[0-9]{1,3}(h|m)[-+]?[0-9]{1,3}(s|m)",
    ];
    (date, duration.clone(), duration).prop_map(|(date, warning, interval)| {
        let spec = spec_with(json!({
            "tokenExpiresOn": date,
            "expiryWarning": warning,
            "verifyInterval": interval,
        }));
        parse_spec(&spec)
    })
}

fn any_secret_outcome() -> impl Strategy<Value = SecretOutcome> {
    prop_oneof![
        "h[123]".prop_map(|hash| SecretOutcome::Synced { hash }),
        Just(SecretOutcome::NotPublished),
        Just(SecretOutcome::Conflict(
            "Secret crm-trackvia is not managed by trackvia-operator".into()
        )),
        Just(SecretOutcome::Error("patch failed".into())),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Only a 200 with a JSON list is ever "Verified", and only that can make a new
    /// connection Ready.
    #[test]
    fn only_a_200_with_a_list_verifies(
        code in any::<u16>(),
        retry_after in proptest::option::of(".{0,10}"),
        body in any_body(),
    ) {
        let outcome = classify_response(code, retry_after.as_deref(), &body);
        let is_list = serde_json::from_slice::<Vec<serde_json::Value>>(&body).is_ok();
        let verified = matches!(outcome, VerificationOutcome::Verified { .. });
        prop_assert_eq!(verified, code == 200 && is_list, "{} {:?}", code, outcome);
        prop_assert_eq!(outcome.http_status(), Some(code));

        let s = step(&parsed(), None, checked(outcome, t0()), t0());
        if code != 200 {
            prop_assert_ne!(cond(&s, condition::VERIFIED).status.as_str(), "True");
            prop_assert_ne!(cond(&s, condition::READY).status.as_str(), "True");
            prop_assert_eq!(s.verified_fingerprint, None);
            prop_assert_eq!(s.last_successful_verification_time, None);
        }
    }

    /// However transient failures arrive, Ready True holds for the whole grace window.
    #[test]
    fn transient_failures_within_the_grace_window_keep_ready_true(
        failures in proptest::collection::vec((transient_outcome(), 0i64..300), 1..40),
        jitter in 0.0f64..1.0,
    ) {
        let p = parsed();
        let verified = verified_at(t0());
        let first = t0() + SignedDuration::from_hours(1);
        let mut status = verified.clone();
        let mut offset = 0;
        for (i, (outcome, gap)) in failures.into_iter().enumerate() {
            if i > 0 {
                offset += gap;
            }
            if offset >= 15 * 60 {
                break;
            }
            let now = first + secs(offset);
            let observation = checked(outcome, now);
            status = desired_status(&Input { jitter, ..input(&p, Some(&status), &observation, now) });
            prop_assert_eq!(state(&status, condition::READY), ("True", reason::VERIFIED));
            prop_assert_eq!(ltt(&status, condition::READY), t0());
            prop_assert_eq!(cond(&status, condition::VERIFIED).status.as_str(), "Unknown");
            prop_assert_eq!(status.consecutive_failures, i as u32 + 1);
            prop_assert!(should_publish(Publish::Verified, &status));
            prop_assert!(transitions(Some(&verified), &status).is_empty());
            let next = ts(status.next_verification_time.as_deref().expect("a retry is scheduled"));
            prop_assert!(next > now && next <= now + SignedDuration::from_hours(1), "{} -> {}", now, next);
        }
    }

    /// The computation never panics, whatever the clock and the stored status say,
    /// and recomputing its own output with nothing new is a fixed point.
    #[test]
    fn status_computation_is_total_and_settles(
        spec in any_spec(),
        old in proptest::option::of(any_status()),
        now in any_instant(),
        at in any_instant(),
        // Most answers arrive just before the pass, some at any time.
        age in proptest::option::of(0i64..600),
        outcome in any_outcome(),
        which in 0u8..6,
        idle in 1i64..7200,
        fingerprint in prop::sample::select(vec![FP, "fp-other"]),
        generation in proptest::option::of(-2i64..4),
        jitter in any::<f64>(),
        verify_requested in proptest::option::of("r[123]"),
        secret in any_secret_outcome(),
        publish in prop::sample::select(vec![Publish::Verified, Publish::Always]),
    ) {
        let spec = spec.ok();
        let old = old.as_ref();
        let at = age.and_then(|a| now.checked_sub(secs(a)).ok()).unwrap_or(at);
        // A check happens only when it is due, as in the controller.
        let due = spec
            .as_ref()
            .is_some_and(|p| verification_due(p, generation, old, fingerprint, verify_requested.as_deref(), now).0);
        let observation = match which {
            0 => Observation::InvalidSpec("bad".into()),
            1 => Observation::HostNotAllowed("no".into()),
            2 => Observation::CredentialsNotFound("missing".into()),
            3 => Observation::CredentialsUnreadable("forbidden (403)".into()),
            _ => Observation::Credentials {
                fingerprint: fingerprint.to_string(),
                verification: if due { answer(outcome, at) } else { None },
                awaiting: false,
            },
        };
        let base = Input {
            spec: spec.as_ref(),
            generation,
            old,
            observation: &observation,
            jitter,
            verify_requested: verify_requested.as_deref(),
            secret_name: SECRET,
            now,
            settings: Settings::default(),
        };
        let next = desired_status(&base);
        let _ = should_publish(Publish::Verified, &next);
        let _ = should_publish(Publish::Always, &next);
        let done = finish(next.clone(), &secret, publish, generation, now);
        let _ = next_wakeup(&done, now);
        let _ = transitions(old, &done);
        let _ = changed(old, &done);
        // Verified keeps its generation when nothing was asked; the others are always rewritten.
        for type_ in [condition::READY, condition::SECRET_SYNCED, condition::EXPIRING] {
            prop_assert_eq!(cond(&done, type_).observed_generation, generation, "{}", type_);
        }
        let stale = cond(&next, condition::EXPIRING).reason == reason::EXPIRY_DATE_STALE;
        if !stale && spec.as_ref().is_some_and(|p| p.token_expires_at.is_some_and(|e| now >= e)) {
            prop_assert_eq!(cond(&next, condition::READY).status.as_str(), "False");
            // Only credentials still waiting for a real answer are retried.
            if !next.condition(condition::VERIFIED).is_some_and(awaits_answer) {
                prop_assert_eq!(next.next_verification_time.as_deref(), None);
            }
        }
        if stale {
            prop_assert!(next.verified_fingerprint.is_some());
            prop_assert_eq!(&next.verified_fingerprint, &next.credentials_fingerprint);
        }

        // Nothing new: the same status again, with and without the Secret step.
        let quiet = match &observation {
            Observation::Credentials { fingerprint, .. } => unchecked_fp(fingerprint),
            other => other.clone(),
        };
        let again = desired_status(&Input { old: Some(&next), observation: &quiet, ..base.clone() });
        prop_assert_eq!(&again, &next);
        let again_done = finish(
            desired_status(&Input { old: Some(&done), observation: &quiet, ..base.clone() }),
            &secret,
            publish,
            generation,
            now,
        );
        prop_assert!(!changed(Some(&done), &again_done), "{:#?}\n{:#?}", done, again_done);

        // An idle clock: no check due and no instant the status waits for
        // crossed. A stuck connection (a Secret that cannot be written, a
        // refusal, a missing Secret…) writes nothing in that time.
        let Ok(later) = now.checked_add(secs(idle)) else { return Ok(()) };
        let quiet_fp = match &quiet {
            Observation::Credentials { fingerprint, .. } => Some(fingerprint.as_str()),
            _ => None,
        };
        let due_later = spec.as_ref().zip(quiet_fp).is_some_and(|(p, fp)| {
            verification_due(p, generation, Some(&done), fp, verify_requested.as_deref(), later).0
        });
        if due_later || quiet_until(&done, now).is_some_and(|until| later >= until) {
            return Ok(());
        }
        let idle_pass = finish(
            desired_status(&Input { old: Some(&done), observation: &quiet, now: later, ..base.clone() }),
            &secret,
            publish,
            generation,
            later,
        );
        prop_assert!(!changed(Some(&done), &idle_pass), "{} s later:\n{:#?}\n{:#?}", idle, done, idle_pass);
        prop_assert!(transitions(Some(&done), &idle_pass).is_empty());
    }
}

/// The first instant after `now` at which time alone may change `status`: its
/// next wake-up, or the end of the grace period of an outage.
fn quiet_until(status: &TrackViaConnectionStatus, now: Timestamp) -> Option<Timestamp> {
    let wake = next_wakeup(status, now).map(|d| add(now, d));
    let grace_end = status
        .condition(condition::VERIFIED)
        .filter(|v| v.reason == reason::TRANSIENT_FAILURE || v.reason == reason::RATE_LIMITED)
        .and_then(|v| {
            status
                .failing_since
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .or_else(|| v.last_transition_time.parse().ok())
        })
        .map(|since| add(since, Settings::default().failure_grace));
    [wake, grace_end].into_iter().flatten().min()
}

#[test]
fn a_target_conflict_during_an_outage_stays_put() {
    let p = parsed();
    let conflict = SecretOutcome::Conflict("Secret crm-trackvia is not managed by us".into());
    let t1 = t0() + SignedDuration::from_hours(1);
    // The foreign Secret appears in the same pass as the first failure.
    let a = pass(
        &p,
        Some(&verified_at(t0())),
        checked(server_error(), t1),
        t1,
        &conflict,
    );
    assert_eq!(
        state(&a, condition::READY),
        ("False", reason::TARGET_CONFLICT)
    );
    let b = pass(&p, Some(&a), unchecked(), t1 + secs(5), &conflict);
    assert_eq!(b, a, "the next pass must not rewrite the status");
    let c = pass(
        &p,
        Some(&b),
        checked(timeout(), t1 + mins(1)),
        t1 + mins(1),
        &conflict,
    );
    assert_eq!(
        state(&c, condition::READY),
        ("False", reason::TARGET_CONFLICT)
    );
    assert_eq!(ltt(&c, condition::READY), t1);

    // Resolved while TrackVia is still unreachable: Ready is what it would have been.
    let d = pass(&p, Some(&c), unchecked(), t1 + mins(2), &synced("hash-1"));
    assert_eq!(state(&d, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(state(&d, condition::VERIFIED).0, "Unknown");

    // Past the grace period, Unreachable wins over the conflict.
    let mut s = c;
    for minutes in [5, 10, 16] {
        let now = t1 + mins(minutes);
        s = pass(&p, Some(&s), checked(server_error(), now), now, &conflict);
    }
    assert_eq!(state(&s, condition::READY), ("False", reason::UNREACHABLE));
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("False", reason::TARGET_CONFLICT)
    );
}

#[test]
fn duplicate_target_keys_are_an_invalid_spec() {
    let spec =
        spec_with(serde_json::json!({"target": {"keys": {"apiKey": "same", "authToken": "same"}}}));
    let err = parse_spec(&spec).expect_err("duplicate keys accepted");
    assert!(err.contains("target.keys"), "{err}");
}

#[test]
fn a_retry_is_scheduled_at_the_end_of_the_grace_period() {
    // Verified at t0; the outage starts one minute later.
    let spec = parsed();
    let start = t0().checked_add(mins(1)).unwrap();
    let mut status = verified_at(t0());
    let mut at = start;
    let grace_end = start.checked_add(mins(15)).unwrap();
    let mut checks = Vec::new();
    // Follow the retry schedule the status asks for.
    for _ in 0..20 {
        status = pass(
            &spec,
            Some(&status),
            checked(server_error(), at),
            at,
            &synced("hash-1"),
        );
        checks.push(at);
        if state(&status, condition::READY).1 == reason::UNREACHABLE {
            break;
        }
        at = ts(status.next_verification_time.as_deref().unwrap());
    }
    assert_eq!(
        state(&status, condition::READY),
        ("False", reason::UNREACHABLE)
    );
    let reported = *checks.last().unwrap();
    let late = reported.duration_since(grace_end).as_secs();
    assert!(
        (0..=2).contains(&late),
        "Unreachable {late} s after the grace period ended ({checks:?})"
    );
}

#[test]
fn the_grace_period_counts_from_the_first_failure_not_from_an_older_state() {
    // Credentials missing for a day, then present, then TrackVia fails.
    let spec = parsed();
    let long_ago = t0().checked_sub(mins(24 * 60)).unwrap();
    let missing = step(
        &spec,
        None,
        Observation::CredentialsNotFound("gone".into()),
        long_ago,
    );
    let mut status = missing;
    let mut at = t0();
    for _ in 0..4 {
        status = pass(
            &spec,
            Some(&status),
            checked(server_error(), at),
            at,
            &SecretOutcome::NotPublished,
        );
        at = at.checked_add(secs(20)).unwrap();
    }
    assert!(status.consecutive_failures >= 3);
    assert_ne!(
        state(&status, condition::READY).1,
        reason::UNREACHABLE,
        "Unreachable after 80 s of failures"
    );
    assert_eq!(
        status.failing_since.as_deref(),
        Some(fmt_time(t0()).as_str())
    );
}

#[test]
fn target_labels_may_not_claim_the_managed_by_label() {
    let spec = spec_with(
        serde_json::json!({"target": {"labels": {"app.kubernetes.io/managed-by": "me"}}}),
    );
    assert!(
        parse_spec(&spec)
            .expect_err("accepted")
            .contains("managed-by")
    );
}

#[test]
fn hosts_must_be_plain_dns_names_with_a_valid_port() {
    for good in [
        "go.trackvia.com",
        "acme.trackvia.com:443",
        "localhost:8443",
        "a-b.c",
    ] {
        assert!(valid_host_port(good), "{good}");
    }
    for bad in [
        "evil.example#.trackvia.com",
        "evil.example?.trackvia.com",
        "evil.example\\.trackvia.com",
        "evil.example:8443#.trackvia.com:443",
        "user@acme.trackvia.com",
        "acme.trackvia.com/openapi",
        "https://acme.trackvia.com",
        "acme..trackvia.com",
        "-acme.trackvia.com",
        "acme.trackvia.com:0",
        "acme.trackvia.com:65536",
        "acme.trackvia.com:",
        "ACME.trackvia.com",
        "[::1]:443",
        "",
    ] {
        assert!(!valid_host_port(bad), "{bad}");
        let spec = spec_with(serde_json::json!({"host": bad}));
        if bad.chars().any(|c| c.is_ascii_uppercase()) {
            continue; // parse_spec lower-cases first
        }
        assert!(parse_spec(&spec).is_err(), "parse_spec accepted {bad}");
    }
}

#[test]
fn invalid_secret_keys_labels_and_annotations_are_an_invalid_spec() {
    for target in [
        serde_json::json!({"keys": {"host": ".."}}),
        serde_json::json!({"keys": {"apiKey": "a b"}}),
        serde_json::json!({"labels": {"bad key!": "x"}}),
        serde_json::json!({"labels": {"team": "not a value"}}),
        serde_json::json!({"annotations": {"/nope": "x"}}),
    ] {
        let spec = spec_with(serde_json::json!({"target": target}));
        assert!(parse_spec(&spec).is_err(), "accepted {target}");
    }
    let ok = spec_with(
        serde_json::json!({"target": {"labels": {"example.com/team": "crm"}, "annotations": {"note": "any text at all"}}}),
    );
    assert!(parse_spec(&ok).is_ok());
}

#[test]
fn a_secret_that_cannot_be_written_turns_ready_false() {
    let status = pass(
        &parsed(),
        None,
        checked(ok(), t0()),
        t0(),
        &SecretOutcome::Error("forbidden".into()),
    );
    assert_eq!(
        state(&status, condition::READY),
        ("False", reason::SECRET_SYNC_FAILED)
    );
    assert_eq!(
        state(&status, condition::SECRET_SYNCED),
        ("False", reason::ERROR)
    );
}

mod stale_date;
mod stuck;
