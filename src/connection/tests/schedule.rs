//! When to check: due checks, retry delays, wake-ups.

use super::*;

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

/// `(nextVerificationTime, expiryWarningAt, tokenExpiresAt, wake-up in seconds
/// from `t0()`, why)`.
type WakeupCase = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<u64>,
    &'static str,
);

const WAKEUPS: [WakeupCase; 9] = [
    (
        Some("2027-01-10T13:00:00Z"),
        Some("2027-03-17T00:00:00Z"),
        Some("2027-03-31T00:00:00Z"),
        Some(3600),
        "the check first",
    ),
    (
        Some("2027-01-10T15:00:00Z"),
        Some("2027-01-10T14:00:00Z"),
        Some("2027-01-10T16:00:00Z"),
        Some(2 * 3600),
        "the warning first",
    ),
    (
        Some("2027-01-10T17:00:00Z"),
        Some("2027-01-10T11:00:00Z"),
        Some("2027-01-10T16:00:00Z"),
        Some(4 * 3600),
        "a passed warning is skipped",
    ),
    (
        None,
        None,
        Some("2027-01-10T12:00:01Z"),
        Some(1),
        "the expiry in a second",
    ),
    (
        None,
        Some("2027-01-10T12:00:00Z"),
        Some("2027-01-10T18:00:00Z"),
        Some(6 * 3600),
        "an instant equal to now is not in the future",
    ),
    (None, None, None, None, "nothing scheduled"),
    (
        None,
        Some("2027-01-01T00:00:00Z"),
        Some("2027-01-02T00:00:00Z"),
        None,
        "all passed",
    ),
    (
        Some("2027-01-10T11:00:00Z"),
        Some("2026-01-01T00:00:00Z"),
        None,
        Some(1),
        "a check that became due while nobody looked: right away",
    ),
    (
        Some("soon"),
        Some(""),
        Some("2027-13-01"),
        None,
        "garbage is ignored",
    ),
];

#[test]
fn next_wakeup_picks_the_earliest_future_instant() {
    let now = t0();
    let hours = |h: u64| Some(Duration::from_secs(h * 3600));
    for (next, warn, expires, want, why) in WAKEUPS {
        let s = TrackViaConnectionStatus {
            next_verification_time: next.map(Into::into),
            expiry_warning_at: warn.map(Into::into),
            token_expires_at: expires.map(Into::into),
            ..TrackViaConnectionStatus::default()
        };
        assert_eq!(next_wakeup(&s, now), want.map(Duration::from_secs), "{why}");
    }

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
