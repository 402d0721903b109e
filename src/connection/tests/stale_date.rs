//! A rotated token is always checked, whatever `tokenExpiresOn` says; a token
//! TrackVia accepts after that date is published and the date reported stale.

use super::*;

/// The connection after its date passed without a check: Expired.
fn expired() -> TrackViaConnectionStatus {
    let old = verified_at(expiry() - SignedDuration::from_hours(2));
    pass(
        &parsed(),
        Some(&old),
        unchecked(),
        expiry(),
        &synced("hash-1"),
    )
}

#[test]
fn a_rotated_token_past_its_date_is_checked_published_and_its_date_flagged_stale() {
    let p = parsed();
    let before = expired();
    assert_eq!(state(&before, condition::READY), ("False", reason::EXPIRED));

    // A week later the user puts a new token in the Secret and forgets the date.
    let now = expiry() + SignedDuration::from_hours(24 * 7);
    assert_eq!(
        verification_due(&p, GEN, Some(&before), "fp-rotated", None, now),
        (true, false)
    );
    let next = step(&p, Some(&before), checked_fp("fp-rotated", ok(), now), now);
    assert!(should_publish(Publish::Verified, &next));
    let s = finish(next, &synced("hash-2"), GEN, now);
    assert_eq!(
        state(&s, condition::READY),
        ("True", reason::EXPIRY_DATE_STALE)
    );
    assert!(cond(&s, condition::READY).message.contains("stale"));
    assert_eq!(state(&s, condition::VERIFIED), ("True", reason::VERIFIED));
    assert_eq!(
        state(&s, condition::EXPIRING),
        ("True", reason::EXPIRY_DATE_STALE)
    );
    let expiring = &cond(&s, condition::EXPIRING).message;
    assert!(
        expiring.contains("stale") && expiring.contains("2027-03-31T00:00:00Z"),
        "{expiring}"
    );
    assert_eq!(
        state(&s, condition::SECRET_SYNCED),
        ("True", reason::SYNCED)
    );

    // One loud event says so (plus the Secret update); none says Expired.
    let events = transitions(Some(&before), &s);
    let stale: Vec<_> = events
        .iter()
        .filter(|e| e.reason == reason::EXPIRY_DATE_STALE)
        .collect();
    assert_eq!(stale.len(), 1, "{events:?}");
    assert!(stale[0].warning);
    assert!(stale[0].message.contains("tokenExpiresOn"));
    assert!(events.iter().all(|e| e.reason != reason::EXPIRED));

    let again = checked_on_schedule(&p, &s, now);
    a_fixed_date_is_plainly_verified(&again, now + SignedDuration::from_hours(1));
}

/// Checked on schedule from then on; quiet in between.
fn checked_on_schedule(
    p: &ParsedSpec,
    s: &TrackViaConnectionStatus,
    now: Timestamp,
) -> TrackViaConnectionStatus {
    let next_check = ts(s.next_verification_time.as_deref().expect("scheduled"));
    assert_eq!(next_check, now + SignedDuration::from_hours(1));
    assert_eq!(
        next_wakeup(s, now),
        Some(std::time::Duration::from_secs(3600))
    );
    assert_fixed_point(p, s, unchecked_fp("fp-rotated"), now + mins(30));
    assert!(!verification_due(p, GEN, Some(s), "fp-rotated", None, now + mins(59)).0);
    assert_eq!(
        verification_due(p, GEN, Some(s), "fp-rotated", None, next_check),
        (true, false)
    );
    let again = pass(
        p,
        Some(s),
        checked_fp("fp-rotated", ok(), next_check),
        next_check,
        &synced("hash-2"),
    );
    assert!(transitions(Some(s), &again).is_empty());
    assert_eq!(ltt(&again, condition::READY), now);
    again
}

/// The user fixes the date: Ready is plainly Verified again.
fn a_fixed_date_is_plainly_verified(again: &TrackViaConnectionStatus, next_check: Timestamp) {
    let fixed = parsed_with(json!({"tokenExpiresOn": "2028-03-31"}));
    let later = next_check + mins(5);
    let s2 = pass(
        &fixed,
        Some(again),
        unchecked_fp("fp-rotated"),
        later,
        &synced("hash-2"),
    );
    assert_eq!(state(&s2, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(
        state(&s2, condition::EXPIRING),
        ("False", reason::NOT_EXPIRING)
    );
}

/// The check is made by the verifier's scheduler: the pass that asks for it
/// records the rotated credentials as waiting for their answer, and the pass
/// the answer wakes still asks for it.
#[test]
fn a_rotated_token_past_its_date_still_waits_for_its_check_after_a_pass_without_the_answer() {
    let p = parsed();
    let before = expired();
    let now = expiry() + SignedDuration::from_hours(24 * 7);
    assert_eq!(
        verification_due(&p, GEN, Some(&before), "fp-rotated", None, now),
        (true, false)
    );
    let waiting = pass(
        &p,
        Some(&before),
        awaiting_fp("fp-rotated"),
        now,
        &SecretOutcome::NotPublished,
    );
    assert_eq!(
        state(&waiting, condition::VERIFIED),
        ("Unknown", reason::VERIFICATION_PENDING)
    );
    assert_eq!(
        state(&waiting, condition::READY),
        ("False", reason::EXPIRED)
    );
    assert!(!should_publish(Publish::Verified, &waiting));
    assert!(transitions(Some(&before), &waiting).is_empty());
    // Asked for still, on the pass the answer wakes or after a restart.
    for later in [now + secs(2), now + mins(10)] {
        assert_eq!(
            verification_due(&p, GEN, Some(&waiting), "fp-rotated", None, later),
            (true, false)
        );
    }
    let later = now + secs(2);
    let answered = pass(
        &p,
        Some(&waiting),
        checked_fp("fp-rotated", ok(), later),
        later,
        &synced("hash-2"),
    );
    assert_eq!(
        state(&answered, condition::READY),
        ("True", reason::EXPIRY_DATE_STALE)
    );
    assert!(
        !verification_due(
            &p,
            GEN,
            Some(&answered),
            "fp-rotated",
            None,
            later + mins(30)
        )
        .0
    );
}

#[test]
fn a_rotated_token_refused_past_its_date_is_expired() {
    let p = parsed();
    let now = expiry() + SignedDuration::from_hours(3);
    let s = pass(
        &p,
        Some(&expired()),
        checked_fp("fp-rotated", unauthorized(), now),
        now,
        &SecretOutcome::NotPublished,
    );
    assert_eq!(state(&s, condition::READY), ("False", reason::EXPIRED));
    assert_eq!(
        state(&s, condition::VERIFIED),
        ("False", reason::UNAUTHORIZED)
    );
    assert_eq!(state(&s, condition::EXPIRING), ("False", reason::EXPIRED));
    assert!(!should_publish(Publish::Verified, &s));
    assert_eq!(s.next_verification_time, None);
    assert!(!verification_due(&p, GEN, Some(&s), "fp-rotated", None, now + mins(90)).0);
}

#[test]
fn a_rotation_past_its_date_during_an_outage_is_retried_until_answered() {
    let p = parsed();
    let now = expiry() + SignedDuration::from_hours(3);
    let failing = pass(
        &p,
        Some(&expired()),
        checked_fp("fp-rotated", server_error(), now),
        now,
        &SecretOutcome::NotPublished,
    );
    assert_eq!(
        state(&failing, condition::READY),
        ("False", reason::EXPIRED)
    );
    let retry = ts(failing.next_verification_time.as_deref().expect("a retry"));
    assert!(retry > now && retry <= now + mins(1), "{retry}");
    assert!(!verification_due(&p, GEN, Some(&failing), "fp-rotated", None, retry - secs(1)).0);
    assert_fixed_point(&p, &failing, unchecked_fp("fp-rotated"), retry - secs(1));
    assert_eq!(
        verification_due(&p, GEN, Some(&failing), "fp-rotated", None, retry),
        (true, false)
    );
    let answered = pass(
        &p,
        Some(&failing),
        checked_fp("fp-rotated", ok(), retry),
        retry,
        &synced("hash-2"),
    );
    assert_eq!(
        state(&answered, condition::READY),
        ("True", reason::EXPIRY_DATE_STALE)
    );
}

#[test]
fn a_forced_check_past_the_date_that_trackvia_accepts_is_flagged_not_hidden() {
    let p = parsed();
    let now = expiry() + SignedDuration::from_hours(24 * 30);
    let s = expired();
    assert_eq!(
        verification_due(&p, GEN, Some(&s), FP, Some("r1"), now),
        (true, true)
    );
    let observation = checked(ok(), now);
    let next = desired_status(&Input {
        verify_requested: Some("r1"),
        ..input(&p, Some(&s), &observation, now)
    });
    let checked = finish(next, &synced("hash-1"), GEN, now);
    assert_eq!(
        state(&checked, condition::READY),
        ("True", reason::EXPIRY_DATE_STALE)
    );
    let events = transitions(Some(&s), &checked);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.reason.as_str(), e.warning))
            .collect::<Vec<_>>(),
        [(reason::EXPIRY_DATE_STALE, true)]
    );
}

#[test]
fn an_unchanged_token_past_its_date_is_not_checked_even_when_trackvia_said_yes_before() {
    let p = parsed();
    // Accepted before the date: that says nothing about after it.
    let s = expired();
    assert!(!verification_due(&p, GEN, Some(&s), FP, None, expiry() + mins(90)).0);
    assert_eq!(state(&s, condition::READY), ("False", reason::EXPIRED));
    assert_eq!(state(&s, condition::VERIFIED), ("False", reason::EXPIRED));
}

/// Past the date, an answer given before it (a check asked before the date,
/// its answer taken by the first pass after): Expired at once, not Verified
/// for one pass and Expired on the next, which would write the status twice.
/// (The verifier no longer hands out a remembered answer from before the date:
/// `Freshness::not_before`.)
#[test]
fn an_answer_from_before_the_date_does_not_outlive_it() {
    let p = parsed();
    let before = expired();
    let now = expiry() + SignedDuration::from_hours(1);
    let remembered = checked_fp("fp-rotated", ok(), expiry() - mins(10));
    let next = step(&p, Some(&before), remembered, now);
    assert_eq!(state(&next, condition::READY), ("False", reason::EXPIRED));
    assert_eq!(
        state(&next, condition::VERIFIED),
        ("False", reason::EXPIRED)
    );
    assert_fixed_point(&p, &next, unchecked_fp("fp-rotated"), now + mins(1));
}
