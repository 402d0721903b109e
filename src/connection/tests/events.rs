//! Events on transitions only.

use super::*;

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
