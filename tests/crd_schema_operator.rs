//! What the CRD's schema lets through is still caught by the operator: specs the CEL rules
//! accept parse (but for what only the operator can tell), and dates, durations and targets
//! the rules refuse are refused by the operator too, for clusters that do not enforce them.

mod common;

use common::schema::*;
use kube::core::cel::Validator;
use serde_json::Value;
use trackvia_operator::connection;
use trackvia_operator::crd::{TrackViaConnection, TrackViaConnectionSpec};
use trackvia_testsupport::fixtures::merged;

fn typed(spec: &Value) -> TrackViaConnectionSpec {
    serde_json::from_value(spec.clone()).expect("the spec deserialises")
}

#[test]
fn accepted_specs_parse_except_what_only_the_operator_can_tell() {
    let schema = schema();
    let rules = rules_in(&schema);
    let validator = Validator::new();
    // Accepted by the schema, refused by `parse_spec` (Ready=False, InvalidSpec).
    let operator_only = [
        ("a port beyond 65535", host("acme.trackvia.com:99999")),
        ("port 0", host("acme.trackvia.com:0")),
        (
            "a date past the last representable instant",
            date("9999-12-31"),
        ),
    ];
    for (what, patch) in &operator_only {
        let spec = merged(valid_spec(), patch);
        assert!(
            failures(&validator, &schema, &rules, spec.clone()).is_empty(),
            "{what}: refused by the schema"
        );
        let err = connection::parse_spec(&typed(&spec)).expect_err(what);
        assert!(!err.to_string().is_empty());
    }
    for case in cases().into_iter().filter(|c| c.refused_by.is_empty()) {
        let spec = merged(valid_spec(), &case.patch);
        if operator_only
            .iter()
            .any(|(_, patch)| merged(valid_spec(), patch) == spec)
        {
            continue;
        }
        if let Err(e) = connection::parse_spec(&typed(&spec)) {
            panic!(
                "{}: accepted by the schema but parse_spec says {e}",
                case.what
            );
        }
    }
}

#[test]
fn refused_dates_and_durations_are_refused_by_the_operator_too() {
    // Clusters that do not evaluate CEL rules (before Kubernetes 1.25 by default)
    // let these through; the operator must still call them InvalidSpec.
    let long_ago: jiff::Timestamp = "2000-01-01T00:00:00Z".parse().expect("a timestamp");
    for case in cases() {
        let refused_here = |message: &str| case.refused_by.contains(&message);
        if !(refused_here(DATE) || refused_here(WARNING) || refused_here(INTERVAL)) {
            continue;
        }
        let spec = merged(valid_spec(), &case.patch);
        match connection::parse_spec(&typed(&spec)) {
            Err(_) => {}
            // A real date before 2000 is only a token that expired long ago
            // (Ready=False, Expired): just as safe.
            Ok(parsed) if parsed.token_expires_at.is_some_and(|at| at < long_ago) => {}
            Ok(parsed) => panic!("{}: parse_spec accepts it as {parsed:?}", case.what),
        }
    }
}

#[test]
fn a_target_refused_by_the_rule_is_refused_by_the_operator_too() {
    // Before Kubernetes 1.25 the rule is not enforced; the operator must still
    // refuse to write its source Secret (Ready=False, InvalidSpec).
    let mut checked = 0;
    for case in cases() {
        let spec = merged(valid_spec(), &case.patch);
        let tvc: TrackViaConnection =
            serde_json::from_value(object(spec)).expect("the object deserialises");
        let operator = trackvia_operator::controller::adoption::check_target(&tvc);
        if case.refused_by.contains(&TARGET_SOURCE) {
            checked += 1;
            assert!(operator.is_err(), "{}: the operator accepts it", case.what);
        } else {
            assert_eq!(operator, Ok(()), "{}: the operator refuses it", case.what);
        }
    }
    assert_eq!(checked, 2, "the cases of the rule");
}
