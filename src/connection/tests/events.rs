//! Events on transitions only.

use super::*;

/// One pass of a connection's story: from the status after pass `from` (none:
/// a new connection), observe `observe` at `at`; with a Secret outcome, a
/// whole pass, else the status step alone. `events`: what it must announce.
struct Pass {
    name: &'static str,
    from: Option<&'static str>,
    observe: Observation,
    at: Timestamp,
    secret: Option<SecretOutcome>,
    events: &'static [(&'static str, bool)],
}

/// The events between two statuses, as (reason, warning).
fn events(
    old: Option<&TrackViaConnectionStatus>,
    new: &TrackViaConnectionStatus,
) -> Vec<(String, bool)> {
    transitions(old, new)
        .into_iter()
        .map(|e| (e.reason, e.warning))
        .collect()
}

/// The passes of [`events_only_on_a_new_ready_reason`], in order.
fn story() -> Vec<Pass> {
    let t1 = t0() + SignedDuration::from_hours(1);
    let not_published = || Some(SecretOutcome::NotPublished);
    let pass = |name, from, observe, at, secret, events| Pass {
        name,
        from,
        observe,
        at,
        secret,
        events,
    };
    let missing = Observation::CredentialsNotFound("Secret trackvia-api-user not found".into());
    let inactive = http(401, r#"{"message":"Inactive user"}"#);
    vec![
        // A new connection Ready at its first answer: its status says so, no event.
        pass(
            "s1",
            None,
            checked(ok(), t0()),
            t0(),
            Some(synced("hash-1")),
            &[],
        ),
        // Missing credentials, then found and checked through a pending pass: a
        // recovery, recorded, although TrackVia never answered before.
        pass(
            "missing",
            None,
            missing,
            t0(),
            None,
            &[(reason::CREDENTIALS_NOT_FOUND, true)],
        ),
        pass(
            "pending",
            Some("missing"),
            awaiting_fp(FP),
            t0() + secs(5),
            None,
            &[],
        ),
        pass(
            "recovered",
            Some("pending"),
            checked(ok(), t0() + secs(6)),
            t0() + secs(6),
            Some(synced("hash-1")),
            &[(reason::VERIFIED, false)],
        ),
        // Refused at its first answer: a warning at once.
        pass(
            "refused",
            None,
            checked(unauthorized(), t0()),
            t0(),
            not_published(),
            &[(reason::UNAUTHORIZED, true)],
        ),
        // Same answer again: nothing.
        pass(
            "s2",
            Some("s1"),
            checked(ok(), t1),
            t1,
            Some(synced("hash-1")),
            &[],
        ),
        // Refused: one warning.
        pass(
            "s3",
            Some("s2"),
            checked(unauthorized(), t1 + mins(1)),
            t1 + mins(1),
            not_published(),
            &[(reason::UNAUTHORIZED, true)],
        ),
        // Refused again with another message: same reason, no event.
        pass(
            "s4",
            Some("s3"),
            checked(inactive, t1 + mins(2)),
            t1 + mins(2),
            not_published(),
            &[],
        ),
        // Forbidden: a new reason, a new event.
        pass(
            "s5",
            Some("s4"),
            checked(http(403, "{}"), t1 + mins(3)),
            t1 + mins(3),
            not_published(),
            &[(reason::FORBIDDEN, true)],
        ),
        // Going back to pending is not an event.
        pass(
            "s6",
            Some("s5"),
            unchecked_fp("fp-rotated"),
            t1 + mins(4),
            None,
            &[],
        ),
        // Pending again after a refusal (new credentials), then accepted: that is a
        // recovery, not a first answer, so it is recorded.
        pass(
            "s6b",
            Some("s5"),
            unchecked_fp("fp-new-token"),
            t1 + mins(5),
            None,
            &[],
        ),
        pass(
            "recovered-b",
            Some("s6b"),
            checked(ok(), t1 + mins(5)),
            t1 + mins(5),
            Some(synced("hash-3")),
            &[(reason::VERIFIED, false), ("SecretUpdated", false)],
        ),
        // Accepted after a refusal: a Verified event, not a warning.
        pass(
            "s7",
            Some("s5"),
            checked(ok(), t1 + mins(5)),
            t1 + mins(5),
            Some(synced("hash-2")),
            &[(reason::VERIFIED, false), ("SecretUpdated", false)],
        ),
    ]
}

#[test]
fn events_only_on_a_new_ready_reason() {
    let p = parsed();
    let mut after: std::collections::BTreeMap<&str, TrackViaConnectionStatus> = Default::default();
    for case in story() {
        let old = case.from.map(|name| &after[name]);
        let new = match &case.secret {
            Some(secret) => pass(&p, old, case.observe, case.at, secret),
            None => step(&p, old, case.observe, case.at),
        };
        let want: Vec<(String, bool)> = case
            .events
            .iter()
            .map(|(r, w)| (r.to_string(), *w))
            .collect();
        assert_eq!(events(old, &new), want, "{}", case.name);
        after.insert(case.name, new);
    }
    for pending in ["pending", "s6", "s6b"] {
        assert_eq!(
            state(&after[pending], condition::READY),
            ("Unknown", reason::VERIFICATION_PENDING),
            "{pending}"
        );
    }
    // An event says what Ready says.
    let s3_events = transitions(Some(&after["s2"]), &after["s3"]);
    assert_eq!(
        s3_events[0].message,
        cond(&after["s3"], condition::READY).message
    );
    // The second refusal's message differs, yet it was no event (above).
    assert_ne!(
        cond(&after["s4"], condition::READY).message,
        cond(&after["s3"], condition::READY).message
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

#[test]
fn a_new_version_of_the_same_credentials_alone_is_not_a_change() {
    let old = TrackViaConnectionStatus {
        credentials_fingerprint: Some("fp-1".into()),
        credentials_version: Some("41".into()),
        ..TrackViaConnectionStatus::default()
    };
    let relabelled = TrackViaConnectionStatus {
        credentials_version: Some("42".into()),
        ..old.clone()
    };
    assert!(!changed(Some(&old), &relabelled));
    // With anything else that changed, the version goes along.
    let rotated = TrackViaConnectionStatus {
        credentials_fingerprint: Some("fp-2".into()),
        ..relabelled.clone()
    };
    assert!(changed(Some(&old), &rotated));
    assert!(changed(None, &relabelled));
    assert!(!changed(Some(&old), &old.clone()));
}
