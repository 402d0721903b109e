//! Definite answers from TrackVia: accepted and refused credentials.

use super::*;

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
