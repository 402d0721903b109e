//! Observations that stop before TrackVia is asked.

use super::*;

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
