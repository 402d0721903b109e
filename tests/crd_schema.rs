//! The CRD as shipped: the committed copies match the generated one, and every
//! CEL rule (`x-kubernetes-validations`) accepts what it should and refuses what
//! it should. Rules are evaluated client-side with kube's CEL interpreter, so no
//! cluster is needed. What the operator catches beyond the rules is in
//! crd_schema_operator.rs, the OpenAPI patterns in crd_schema_patterns.rs.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::schema::*;
use kube::core::cel::{ErrorKind, Validator};
use trackvia_operator::crd;
use trackvia_testsupport::fixtures::merged;

const CRD_FILE: &str = "crds/trackviaconnections.trackvia.io.yaml";
/// The chart's copy, rendered by its `templates/crds.yaml`.
const CHART_CRD_DIR: &str = "charts/trackvia-operator/files/crds";
const REGENERATE: &str = "cargo run -- crd > crds/trackviaconnections.trackvia.io.yaml";

fn repo_path(relative: &str) -> PathBuf {
    trackvia_testsupport::tools::repo_root().join(relative)
}

/// Where two texts part, for a failure message that says more than "differs".
fn first_difference(committed: &str, generated: &str) -> String {
    let mut committed_lines = committed.lines();
    let mut generated_lines = generated.lines();
    for line in 1.. {
        match (committed_lines.next(), generated_lines.next()) {
            (None, None) => return "only line endings differ".into(),
            (a, b) if a == b => continue,
            (a, b) => {
                return format!(
                    "first difference at line {line}: committed {:?}, generated {:?}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                );
            }
        }
    }
    unreachable!()
}

fn assert_same_as_generated(relative: &str, how_to_fix: &str) {
    let generated = crd::crd_yaml();
    let committed = std::fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}; run `{how_to_fix}`"));
    assert!(
        committed == generated,
        "{relative} is not the CRD the code generates ({}); run `{how_to_fix}` and commit the result",
        first_difference(&committed, &generated)
    );
}

#[test]
fn committed_crd_matches_the_generated_one() {
    assert_same_as_generated(CRD_FILE, REGENERATE);
}

#[test]
fn chart_crd_matches_the_generated_one() {
    let relative = format!("{CHART_CRD_DIR}/trackviaconnections.trackvia.io.yaml");
    let how_to_fix = format!("{REGENERATE} && cp {CRD_FILE} {CHART_CRD_DIR}/");
    assert_same_as_generated(&relative, &how_to_fix);
}

#[test]
fn cel_rules_accept_and_refuse_what_they_should() {
    let schema = schema();
    let rules = rules_in(&schema);
    let validator = Validator::new();
    let mut problems = Vec::new();
    for case in cases() {
        let spec = merged(valid_spec(), &case.patch);
        let got = failures(&validator, &schema, &rules, spec);
        let got_messages: BTreeSet<&str> = got.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = case.refused_by.iter().copied().collect();
        if got_messages != want {
            problems.push(format!(
                "{}: expected refusals {want:?}, got {got:?}",
                case.what
            ));
            continue;
        }
        for (message, (kind, field_path)) in &got {
            // A refusal must be a clean `false` carrying the rule's own message,
            // not an evaluation error, so a user sees what to fix.
            if *kind != ErrorKind::ValidationFailure {
                problems.push(format!("{}: {message:?} failed with {kind:?}", case.what));
            }
            let rule_path = rules
                .values()
                .find(|r| &r.message == message)
                .map(|r| r.path.as_str());
            if rule_path != Some(field_path.as_str()) {
                problems.push(format!(
                    "{}: reported at {field_path:?}, rule sits at {rule_path:?}",
                    case.what
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_rule_is_refused_by_some_case() {
    let schema = schema();
    let rules = rules_in(&schema);
    assert!(!rules.is_empty(), "the schema has no CEL rules at all");
    let validator = Validator::new();
    let mut refused_messages = BTreeSet::new();
    for case in cases() {
        let spec = merged(valid_spec(), &case.patch);
        refused_messages.extend(failures(&validator, &schema, &rules, spec).into_keys());
    }
    let untested: Vec<String> = rules
        .iter()
        .filter(|(_, rule)| !refused_messages.contains(&rule.message))
        .map(|(text, rule)| format!("{} ({:?}): {text}", rule.path, rule.message))
        .collect();
    assert!(
        untested.is_empty(),
        "CEL rules that no case in cases() refuses; add a rejecting case for each:\n{}",
        untested.join("\n")
    );
    // The names the tables use are the rules' real messages.
    let messages: BTreeSet<&str> = rules.values().map(|r| r.message.as_str()).collect();
    for named in [
        HOST_SHAPE,
        HOST_DNS,
        DATE,
        WARNING,
        INTERVAL,
        LABELS,
        KEYS,
        TARGET_SOURCE,
        TOKEN_NAME,
        API_USER,
    ] {
        assert!(
            messages.contains(named),
            "no rule has the message {named:?}"
        );
    }
}

#[test]
fn every_rule_compiles_in_the_interpreter() {
    let schema = schema();
    let compiled = kube::core::cel::compile_schema(&schema);
    let errors: Vec<String> = compiled
        .compilation_errors()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    assert!(
        errors.is_empty(),
        "rules that do not compile:\n{}",
        errors.join("\n")
    );
}
