//! Recomputing a status with nothing new changes nothing.

use super::*;

#[test]
fn recomputing_without_news_changes_nothing() {
    let p = parsed();
    let t1 = t0() + SignedDuration::from_hours(1);

    let verified = step(&p, None, checked(ok(), t0()), t0());
    assert_fixed_point(&p, &verified, unchecked(), t0());
    assert_fixed_point(&p, &verified, unchecked(), t0() + mins(30));

    let refused = step(&p, Some(&verified), checked(unauthorized(), t1), t1);
    assert_fixed_point(&p, &refused, unchecked(), t1);
    assert_fixed_point(&p, &refused, unchecked(), t1 + mins(30));

    let failing = step(&p, Some(&verified), checked(server_error(), t1), t1);
    assert_fixed_point(&p, &failing, unchecked(), t1);
    assert_fixed_point(&p, &failing, unchecked(), t1 + mins(14));

    let new_failing = step(&p, None, checked(timeout(), t0()), t0());
    assert_fixed_point(&p, &new_failing, unchecked(), t0() + mins(1));

    let pending = step(&p, Some(&verified), unchecked_fp("fp-rotated"), t1);
    assert_fixed_point(&p, &pending, unchecked_fp("fp-rotated"), t1 + mins(1));

    let rotated = step(
        &p,
        Some(&verified),
        checked_fp("fp-rotated", unauthorized(), t1),
        t1,
    );
    assert_fixed_point(&p, &rotated, unchecked_fp("fp-rotated"), t1 + mins(1));

    let missing = Observation::CredentialsNotFound("Secret trackvia-api-user not found".into());
    let blocked = step(&p, Some(&verified), missing.clone(), t1);
    assert_fixed_point(&p, &blocked, missing, t1 + mins(30));

    let expired = step(&p, Some(&verified), unchecked(), expiry());
    assert_fixed_point(
        &p,
        &expired,
        unchecked(),
        expiry() + SignedDuration::from_hours(24 * 30),
    );

    let expiring = step(&p, Some(&verified), unchecked(), warning());
    assert_fixed_point(
        &p,
        &expiring,
        unchecked(),
        warning() + SignedDuration::from_hours(1),
    );

    assert!(changed(None, &verified));
    assert!(changed(Some(&verified), &refused));
}

#[test]
fn whole_passes_without_news_change_nothing() {
    let p = parsed();
    let first = verified_at(t0());
    for minutes in [0, 1, 30, 59] {
        let now = t0() + mins(minutes);
        let again = pass(&p, Some(&first), unchecked(), now, &synced("hash-1"));
        assert!(
            !changed(Some(&first), &again),
            "{minutes} min: {first:#?} vs {again:#?}"
        );
    }
}
