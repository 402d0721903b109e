//! Rotation and publishing: what reaches the output Secret, and `SecretSynced`.

use super::*;

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

    let done = finish(s, &SecretOutcome::NotPublished, GEN, now);
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
    let fixed = finish(fixed, &synced("hash-2"), GEN, later);
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
    let (s, now) = (rotated(unauthorized()), rotated_at());
    assert!(should_publish(Publish::Always, &s));
    let done = finish(s, &synced("hash-2"), GEN, now);
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

    let s = finish(fresh.clone(), &synced("h"), GEN, now);
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
    let s = finish(pending, &SecretOutcome::NotPublished, GEN, now);
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("False", reason::NOT_PUBLISHED)
    );
    assert!(
        cond(&s, condition::SECRET_SYNCED)
            .message
            .contains("is written once TrackVia accepts")
    );
}

#[test]
fn a_target_conflict_overrides_ready_true_only() {
    let p = parsed();
    let now = t0();
    let conflict = SecretOutcome::Conflict(
        "Secret crm-trackvia exists and is not managed by trackvia-operator".into(),
    );
    let s = finish(step(&p, None, checked(ok(), now), now), &conflict, GEN, now);
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
