//! Transient failures: the grace period before `Unreachable`, and retries.

use super::*;

#[test]
fn transient_failures_keep_ready_until_three_failures_and_fifteen_minutes() {
    let p = parsed();
    let verified = verified_at(t0());
    let t1 = t0() + SignedDuration::from_hours(1);
    assert_eq!(
        verification_due(&p, GEN, Some(&verified), FP, None, t1),
        (true, false)
    );
    let s1 = first_failure(&p, &verified, t1);
    let s3 = more_failures_within_the_grace_period(&p, &s1, t1);
    let s5 = unreachable_when_both_limits_are_reached(&p, &s3, t1);
    recovery_resets_the_count(&p, &s5, t1);
}

/// A 503 an hour after the last success: Verified turns Unknown, Ready stays.
fn first_failure(
    p: &ParsedSpec,
    verified: &TrackViaConnectionStatus,
    t1: Timestamp,
) -> TrackViaConnectionStatus {
    // 1: a 503.
    let s1 = step(p, Some(verified), checked(server_error(), t1), t1);
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
        verification_due(p, GEN, Some(&s1), FP, None, t1 + secs(9)),
        (false, false)
    );
    assert_eq!(
        verification_due(p, GEN, Some(&s1), FP, None, t1 + secs(10)),
        (true, false)
    );

    s1
}

/// A timeout, then a 429: three failures in two minutes, Ready stays.
fn more_failures_within_the_grace_period(
    p: &ParsedSpec,
    s1: &TrackViaConnectionStatus,
    t1: Timestamp,
) -> TrackViaConnectionStatus {
    // 2: a timeout (no HTTP status: the last one is kept).
    let s2 = step(p, Some(s1), checked(timeout(), t1 + mins(1)), t1 + mins(1));
    assert_eq!(s2.consecutive_failures, 2);
    assert_eq!(s2.last_http_status, Some(503));
    assert_eq!(state(&s2, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(
        s2.next_verification_time.as_deref(),
        Some("2027-01-10T13:01:20Z")
    );

    // 3: rate limited with Retry-After; three failures, but only two minutes.
    let s3 = step(
        p,
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

    s3
}

/// Ready turns Unreachable only with three failures and fifteen minutes.
fn unreachable_when_both_limits_are_reached(
    p: &ParsedSpec,
    s3: &TrackViaConnectionStatus,
    t1: Timestamp,
) -> TrackViaConnectionStatus {
    // 4: one second short of the grace period.
    let now = t1 + mins(15) - secs(1);
    let s4 = step(p, Some(s3), checked(server_error(), now), now);
    assert_eq!(s4.consecutive_failures, 4);
    assert_eq!(state(&s4, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(ltt(&s4, condition::READY), t0());

    // 5: both limits reached.
    let now = t1 + mins(15);
    let s5 = step(p, Some(&s4), checked(server_error(), now), now);
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

    s5
}

/// The next 200 resets the count and Ready, with one Verified event.
fn recovery_resets_the_count(p: &ParsedSpec, s5: &TrackViaConnectionStatus, t1: Timestamp) {
    // Recovery: the next 200 resets the count and Ready.
    let now = t1 + mins(16);
    let s6 = step(p, Some(s5), checked(ok(), now), now);
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
    let events = transitions(Some(s5), &s6);
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
    let s = rotated(server_error());
    assert_eq!(
        state(&s, condition::READY),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert_eq!(s.consecutive_failures, 1);
    assert!(!should_publish(Publish::Verified, &s));
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
