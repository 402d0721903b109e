//! `Expiring`, and `Ready` at the token's date.

use super::*;

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
