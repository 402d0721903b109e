//! Conditions: `lastTransitionTime`, `observedGeneration`, order and size.

use super::*;

#[test]
fn last_transition_time_moves_only_when_status_flips() {
    let p = parsed();
    let s1 = verified_at(t0());
    for c in &s1.conditions {
        assert_eq!(ts(&c.last_transition_time), t0(), "{c:?}");
    }

    // Another 200 an hour later: timestamps of the answer move, transitions do not.
    let t1 = t0() + SignedDuration::from_hours(1);
    let s2 = pass(&p, Some(&s1), checked(ok(), t1), t1, &synced("hash-1"));
    assert_eq!(
        s2.last_verified_time.as_deref(),
        Some("2027-01-10T13:00:00Z")
    );
    for c in &s2.conditions {
        assert_eq!(ts(&c.last_transition_time), t0(), "{c:?}");
    }

    // A refusal flips Ready and Verified, not Expiring.
    let t2 = t1 + SignedDuration::from_hours(1);
    let s3 = step(&p, Some(&s2), checked(unauthorized(), t2), t2);
    assert_eq!(ltt(&s3, condition::READY), t2);
    assert_eq!(ltt(&s3, condition::VERIFIED), t2);
    assert_eq!(ltt(&s3, condition::EXPIRING), t0());

    // A different refusal keeps the status False: reason changes, time does not.
    let t3 = t2 + SignedDuration::from_hours(1);
    let s4 = step(&p, Some(&s3), checked(http(403, "{}"), t3), t3);
    assert_eq!(state(&s4, condition::READY), ("False", reason::FORBIDDEN));
    assert_eq!(ltt(&s4, condition::READY), t2);
}

#[test]
fn every_condition_carries_the_observed_generation() {
    let p = parsed();
    let s1 = verified_at(t0());
    assert_eq!(s1.conditions.len(), 4);
    assert!(
        s1.conditions.iter().all(|c| c.observed_generation == GEN),
        "{s1:#?}"
    );

    let t1 = t0() + mins(1);
    let observation = checked(ok(), t1);
    let next = desired_status(&Input {
        generation: Some(7),
        ..input(&p, Some(&s1), &observation, t1)
    });
    let next = finish(next, &synced("hash-1"), Some(7), t1);
    assert_eq!(next.observed_generation, Some(7));
    assert_eq!(next.conditions.len(), 4);
    assert!(
        next.conditions
            .iter()
            .all(|c| c.observed_generation == Some(7)),
        "{next:#?}"
    );
    for c in &next.conditions {
        assert_eq!(
            ts(&c.last_transition_time),
            t0(),
            "a new generation is not a transition: {c:?}"
        );
    }

    // Blocked passes too.
    let observation = Observation::CredentialsNotFound("Secret trackvia-api-user not found".into());
    let blocked = desired_status(&Input {
        generation: Some(8),
        ..input(&p, Some(&next), &observation, t1)
    });
    let blocked = finish(blocked, &SecretOutcome::NotPublished, Some(8), t1);
    assert!(
        blocked
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(8)),
        "{blocked:#?}"
    );
}

#[test]
fn set_condition_keeps_order_time_and_size_in_check() {
    let mut conditions = Vec::new();
    // Set in the reverse of the fixed order, a custom type first.
    for (type_, status, why) in [
        ("Custom", ConditionStatus::True, "Because"),
        (
            condition::EXPIRING,
            ConditionStatus::False,
            reason::NOT_EXPIRING,
        ),
        (
            condition::SECRET_SYNCED,
            ConditionStatus::True,
            reason::SYNCED,
        ),
        (condition::VERIFIED, ConditionStatus::True, reason::VERIFIED),
        (condition::READY, ConditionStatus::True, reason::VERIFIED),
    ] {
        set_condition(&mut conditions, type_, status, why, "x", GEN, t0());
    }
    let order: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        order,
        [
            condition::READY,
            condition::VERIFIED,
            condition::SECRET_SYNCED,
            condition::EXPIRING,
            "Custom"
        ]
    );

    let t1 = t0() + mins(1);
    set_condition(
        &mut conditions,
        condition::READY,
        ConditionStatus::True,
        "StillFine",
        "y",
        Some(2),
        t1,
    );
    let ready = &conditions[0];
    assert_eq!(
        (ready.reason.as_str(), ready.message.as_str()),
        ("StillFine", "y")
    );
    assert_eq!(ts(&ready.last_transition_time), t0());
    assert_eq!(ready.observed_generation, Some(2));

    set_condition(
        &mut conditions,
        condition::READY,
        ConditionStatus::False,
        reason::UNAUTHORIZED,
        "z",
        Some(2),
        t1,
    );
    assert_eq!(ts(&conditions[0].last_transition_time), t1);
    assert_eq!(conditions.len(), 5);

    let long = "é".repeat(5000);
    set_condition(
        &mut conditions,
        condition::READY,
        ConditionStatus::False,
        reason::UNAUTHORIZED,
        &long,
        Some(2),
        t1,
    );
    assert_eq!(conditions[0].message.chars().count(), 1024);
}

#[test]
fn condition_status_reads_and_writes_the_api_text() {
    let read = |status: &str| -> Condition {
        serde_json::from_value(json!({
            "type": "Ready", "status": status, "reason": "R", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }))
        .expect("a condition")
    };
    for (text, typed) in [
        ("True", ConditionStatus::True),
        ("False", ConditionStatus::False),
        ("Unknown", ConditionStatus::Unknown),
    ] {
        let c = read(text);
        assert_eq!(c.status, typed);
        assert_eq!(serde_json::to_value(&c).expect("json")["status"], text);
    }
    // A value the schema refuses reads as Unknown instead of failing the whole object.
    assert_eq!(read("Maybe").status, ConditionStatus::Unknown);
}
