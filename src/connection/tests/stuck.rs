//! Stuck connections cost nothing: a state that only a change can end is
//! written once, then left alone however often the controller passes by.

use super::*;

/// A Secret write the API server refuses (a ResourceQuota on Secrets).
fn quota_refused() -> SecretOutcome {
    SecretOutcome::Error(
        "writing Secret crm-trackvia: secrets \"crm-trackvia\" is forbidden: exceeded quota: secrets, requested: secrets=1, used: secrets=1, limited: secrets=1 (403)"
            .into(),
    )
}

/// Passes every `step` until `until` without a check, each compared with the first.
fn assert_idle(
    spec: &ParsedSpec,
    first: &TrackViaConnectionStatus,
    observation: &Observation,
    secret: &SecretOutcome,
    from: Timestamp,
    until: Timestamp,
    what: &str,
) {
    let mut now = from;
    while now < until {
        let quiet = match observation {
            Observation::Credentials { fingerprint, .. } => {
                assert!(
                    !verification_due(spec, GEN, Some(first), fingerprint, None, now).0,
                    "{what}: a check is due at {now}"
                );
                unchecked_fp(fingerprint)
            }
            other => other.clone(),
        };
        let again = pass(spec, Some(first), quiet, now, secret);
        assert!(
            !changed(Some(first), &again),
            "{what}: the pass at {now} rewrites the status:\n{first:#?}\n{again:#?}"
        );
        assert!(transitions(Some(first), &again).is_empty(), "{what}");
        now += secs(15);
    }
}

#[test]
fn an_unwritable_secret_is_reported_once_then_left_alone() {
    let p = parsed();
    let first = pass(&p, None, checked(ok(), t0()), t0(), &quota_refused());
    assert_eq!(
        state(&first, condition::READY),
        ("False", reason::SECRET_SYNC_FAILED)
    );
    assert!(
        cond(&first, condition::READY)
            .message
            .contains("exceeded quota")
    );
    assert_eq!(
        state(&first, condition::SECRET_SYNCED),
        ("False", reason::ERROR)
    );
    // The controller retries the Secret every 15 s: none of these passes
    // writes the status, up to the next scheduled check.
    let next_check = ts(first.next_verification_time.as_deref().expect("scheduled"));
    assert_idle(
        &p,
        &first,
        &unchecked(),
        &quota_refused(),
        t0() + secs(15),
        next_check,
        "unwritable Secret",
    );
    // The scheduled check changes only the check's own fields.
    let checked_again = pass(
        &p,
        Some(&first),
        checked(ok(), next_check),
        next_check,
        &quota_refused(),
    );
    assert_eq!(
        state(&checked_again, condition::READY),
        ("False", reason::SECRET_SYNC_FAILED)
    );
    assert_eq!(ltt(&checked_again, condition::READY), t0());
    assert!(transitions(Some(&first), &checked_again).is_empty());

    // The quota is raised: Ready turns True at that pass, with one event.
    let fixed_at = next_check + mins(3);
    let fixed = pass(
        &p,
        Some(&checked_again),
        unchecked(),
        fixed_at,
        &synced("hash-1"),
    );
    assert_eq!(state(&fixed, condition::READY), ("True", reason::VERIFIED));
    assert_eq!(ltt(&fixed, condition::READY), fixed_at);
    let events = transitions(Some(&checked_again), &fixed);
    assert_eq!(
        events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        [reason::VERIFIED]
    );
    // A different refusal is news: written once more.
    let other = SecretOutcome::Error(
        "writing Secret crm-trackvia: metadata.annotations: Too long (422)".into(),
    );
    let moved = pass(&p, Some(&first), unchecked(), t0() + mins(1), &other);
    assert!(changed(Some(&first), &moved));
    assert_eq!(ltt(&moved, condition::READY), t0());
}

#[test]
fn an_unwritable_secret_during_an_outage_keeps_its_reason() {
    let p = parsed();
    let first = pass(&p, None, checked(ok(), t0()), t0(), &quota_refused());
    let t1 = t0() + SignedDuration::from_hours(1);
    let failing = pass(
        &p,
        Some(&first),
        checked(server_error(), t1),
        t1,
        &quota_refused(),
    );
    assert_eq!(
        state(&failing, condition::READY),
        ("False", reason::SECRET_SYNC_FAILED)
    );
    assert_eq!(ltt(&failing, condition::READY), t0());
    let again = pass(
        &p,
        Some(&failing),
        unchecked(),
        t1 + secs(15),
        &quota_refused(),
    );
    assert!(!changed(Some(&failing), &again));
}

#[test]
fn every_stuck_state_is_quiet_until_its_next_check() {
    let p = parsed();
    let conflict = SecretOutcome::Conflict(
        "Secret crm-trackvia exists and is not managed by trackvia-operator".into(),
    );
    let refused = http(403, r#"{"message":"Access denied"}"#);
    let cases: Vec<(&str, Observation, SecretOutcome, &str)> = vec![
        (
            "unauthorized",
            checked(unauthorized(), t0()),
            SecretOutcome::NotPublished,
            reason::UNAUTHORIZED,
        ),
        (
            "forbidden",
            checked(refused, t0()),
            SecretOutcome::NotPublished,
            reason::FORBIDDEN,
        ),
        (
            "conflict",
            checked(ok(), t0()),
            conflict,
            reason::TARGET_CONFLICT,
        ),
        (
            "unwritable",
            checked(ok(), t0()),
            quota_refused(),
            reason::SECRET_SYNC_FAILED,
        ),
        (
            "missing",
            Observation::CredentialsNotFound("Secret trackvia-api-user not found".into()),
            SecretOutcome::NotPublished,
            reason::CREDENTIALS_NOT_FOUND,
        ),
        (
            "unreadable",
            Observation::CredentialsUnreadable(
                "reading Secret ns/trackvia-api-user: forbidden (403)".into(),
            ),
            SecretOutcome::NotPublished,
            reason::CREDENTIALS_UNREADABLE,
        ),
    ];
    for (what, observation, secret, why) in cases {
        let first = pass(&p, None, observation.clone(), t0(), &secret);
        assert_eq!(state(&first, condition::READY), ("False", why), "{what}");
        let until = first
            .next_verification_time
            .as_deref()
            .map(ts)
            .unwrap_or(t0() + SignedDuration::from_hours(6));
        assert_idle(
            &p,
            &first,
            &observation,
            &secret,
            t0() + secs(1),
            until,
            what,
        );
    }
    an_invalid_spec_is_quiet(&p);
    an_expired_token_is_quiet(&p);
}

/// An invalid spec: nothing to parse, nothing scheduled.
fn an_invalid_spec_is_quiet(p: &ParsedSpec) {
    let invalid =
        Observation::InvalidSpec("tokenExpiresOn \"2027-02-30\" is not a calendar date".into());
    let first = desired_status(&Input {
        spec: None,
        ..input(p, None, &invalid, t0())
    });
    for minutes in [1, 17, 60, 600] {
        let now = t0() + mins(minutes);
        let again = desired_status(&Input {
            spec: None,
            ..input(p, Some(&first), &invalid, now)
        });
        assert_eq!(again, first, "invalid spec, {minutes} min later");
    }
}

/// Expired: a day, a month later.
fn an_expired_token_is_quiet(p: &ParsedSpec) {
    let expired = pass(
        p,
        Some(&verified_at(t0())),
        unchecked(),
        expiry(),
        &synced("hash-1"),
    );
    assert_eq!(
        state(&expired, condition::READY),
        ("False", reason::EXPIRED)
    );
    assert_eq!(next_wakeup(&expired, expiry()), None);
    for hours in [1, 24, 24 * 30] {
        let now = expiry() + SignedDuration::from_hours(hours);
        assert!(!verification_due(p, GEN, Some(&expired), FP, None, now).0);
        let again = pass(p, Some(&expired), unchecked(), now, &synced("hash-1"));
        assert!(!changed(Some(&expired), &again), "expired, {hours} h later");
    }
}
