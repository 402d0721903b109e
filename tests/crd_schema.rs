//! The CRD as shipped: the committed copies match the generated one, and every
//! CEL rule (`x-kubernetes-validations`) accepts what it should and refuses what
//! it should. Rules are evaluated client-side with kube's CEL interpreter, so no
//! cluster is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube::CustomResourceExt;
use kube::core::cel::{ErrorKind, Validator};
use regex::Regex;
use serde_json::{Value, json};
use trackvia_operator::connection;
use trackvia_operator::crd::{
    self, DATE_PATTERN, DURATION_PATTERN, HOST_PATTERN, NAME_PATTERN, PRINTABLE_PATTERN,
    SECRET_KEY_PATTERN, TrackViaConnection, TrackViaConnectionSpec,
};
use trackvia_testsupport::fixtures::merged;

const CRD_FILE: &str = "crds/trackviaconnections.trackvia.io.yaml";
/// The chart's copy, rendered by its `templates/crds.yaml`.
const CHART_CRD_DIR: &str = "charts/trackvia-operator/files/crds";
const REGENERATE: &str = "cargo run -- crd > crds/trackviaconnections.trackvia.io.yaml";

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
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

// ---------------------------------------------------------------------------
// The schema and its rules
// ---------------------------------------------------------------------------

fn schema() -> Value {
    let crd = TrackViaConnection::crd();
    assert_eq!(crd.spec.versions.len(), 1, "one served version");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the version has an openAPIV3Schema");
    serde_json::to_value(schema).expect("the schema serialises")
}

/// A CEL rule found in the schema.
#[derive(Clone, Debug)]
struct FoundRule {
    /// Where it sits, e.g. `spec.host`.
    path: String,
    /// Its custom message.
    message: String,
}

/// Every `x-kubernetes-validations` rule in the schema, by `path: rule text`.
fn rules_in(schema: &Value) -> BTreeMap<String, FoundRule> {
    fn walk(node: &Value, path: &str, out: &mut BTreeMap<String, FoundRule>) {
        let Some(map) = node.as_object() else { return };
        if let Some(rules) = map
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for rule in rules {
                let text = rule["rule"].as_str().expect("a rule has text").to_string();
                let message = rule["message"].as_str().expect("every rule has a message");
                // Keyed by place and text: two fields may share a rule.
                let previous = out.insert(
                    format!("{path}: {text}"),
                    FoundRule {
                        path: path.to_string(),
                        message: message.to_string(),
                    },
                );
                assert!(previous.is_none(), "rule {text:?} appears twice");
            }
        }
        if let Some(properties) = map.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(child, &child_path, out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = map.get(key) {
                walk(child, &format!("{path}[*]"), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(schema, "", &mut out);
    out
}

// Messages of the rules, as the tables below name them.
const HOST_SHAPE: &str = "host must be host[:port] without a scheme, userinfo or path";
const HOST_DNS: &str = "host must be a lower-case DNS name with an optional :port";
const DATE: &str = "tokenExpiresOn must be a calendar date YYYY-MM-DD from 2000-01-01 on";
const WARNING: &str = "expiryWarning must be a non-negative duration such as 336h";
const INTERVAL: &str = "verifyInterval must be at least 1m, or 0 to turn periodic checks off";
const LABELS: &str = "target.labels must not set app.kubernetes.io/managed-by";
const KEYS: &str = "target.keys must all be different";
const TARGET_SOURCE: &str = crd::TARGET_NOT_SOURCE_MESSAGE;
const TOKEN_NAME: &str = "tokenName must not contain control characters";
const API_USER: &str = "apiUser must not contain control characters";

/// A spec every rule accepts.
fn valid_spec() -> Value {
    json!({
        "host": "acme.trackvia.com",
        "credentialsSecretRef": { "name": "trackvia-api-user" },
        "tokenExpiresOn": "2027-03-31",
    })
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": { "name": "crm", "namespace": "integrations" },
        "spec": spec,
    })
}

/// What the interpreter said about one object: the messages of the rules that
/// failed, with how they failed.
fn failures(
    validator: &Validator,
    schema: &Value,
    rules: &BTreeMap<String, FoundRule>,
    spec: Value,
) -> BTreeMap<String, (ErrorKind, String)> {
    let mut out = BTreeMap::new();
    if let Err(errors) = validator.validate(schema, &object(spec), None) {
        for error in errors.iter() {
            let rule = rules
                .get(&format!("{}: {}", error.field_path, error.rule))
                .unwrap_or_else(|| panic!("an error that names no rule of the schema: {error:?}"));
            out.insert(
                rule.message.clone(),
                (error.kind.clone(), error.field_path.clone()),
            );
        }
    }
    out
}

/// One object and what the rules must say about it.
struct Case {
    what: &'static str,
    patch: Value,
    /// Messages of the rules that must refuse it (empty: accepted).
    refused_by: &'static [&'static str],
}

fn accepted(what: &'static str, patch: Value) -> Case {
    Case {
        what,
        patch,
        refused_by: &[],
    }
}

fn refused(what: &'static str, patch: Value, refused_by: &'static [&'static str]) -> Case {
    Case {
        what,
        patch,
        refused_by,
    }
}

fn host(value: &str) -> Value {
    json!({ "host": value })
}

fn date(value: &str) -> Value {
    json!({ "tokenExpiresOn": value })
}

fn interval(value: &str) -> Value {
    json!({ "verifyInterval": value })
}

fn warning(value: &str) -> Value {
    json!({ "expiryWarning": value })
}

fn cases() -> Vec<Case> {
    vec![
        // --- whole specs
        accepted("the minimal spec", json!({})),
        accepted(
            "only the required field",
            json!({ "host": null, "tokenExpiresOn": null }),
        ),
        accepted(
            "every field set",
            json!({
                "host": "sandbox.trackvia.com:443",
                "accountId": 12345,
                "credentialsSecretRef": { "name": "trackvia-api-user", "apiKeyKey": "key", "authTokenKey": "token" },
                "tokenName": "workato-prod",
                "apiUser": "svc-crm@acme.com",
                "expiryWarning": "168h",
                "verifyInterval": "30m",
                "target": {
                    "name": "crm-trackvia",
                    "keys": { "apiKey": "TV_KEY", "authToken": "TV_TOKEN", "host": "TV_HOST", "accountId": "TV_ACCOUNT", "baseUrl": "TV_URL" },
                    "labels": { "team": "crm", "app.kubernetes.io/name": "crm" },
                    "annotations": { "app.kubernetes.io/managed-by": "someone" },
                    "deletionPolicy": "Retain",
                },
                "publish": "Always",
                "rolloutRestartTargets": [{ "kind": "Deployment", "name": "crm-sync" }],
            }),
        ),
        // --- informational text
        accepted(
            "a token name and API user beyond ASCII",
            json!({ "tokenName": "Intégration — prod ✓", "apiUser": "svc.crm+ops@acme.com" }),
        ),
        refused(
            "an escape sequence in tokenName",
            json!({ "tokenName": "prod\u{1b}[2J" }),
            &[TOKEN_NAME],
        ),
        refused(
            "a newline in tokenName",
            json!({ "tokenName": "prod\nfake line" }),
            &[TOKEN_NAME],
        ),
        refused(
            "a bell and a C1 control in apiUser",
            json!({ "apiUser": "svc\u{7}@acme.com\u{9b}" }),
            &[API_USER],
        ),
        refused(
            "a DEL in apiUser",
            json!({ "apiUser": "svc\u{7f}@acme.com" }),
            &[API_USER],
        ),
        // --- host
        accepted("a subdomain", host("go.trackvia.com")),
        accepted("a host with a port", host("acme.trackvia.com:8443")),
        accepted("a host with port 443", host("acme.trackvia.com:443")),
        accepted("a single label with a port", host("localhost:1")),
        accepted("a single character", host("a")),
        accepted("an IPv4 address with a port", host("127.0.0.1:8443")),
        accepted("hyphens inside labels", host("my-acme.eu-1.trackvia.com")),
        accepted(
            "a 63-character label",
            host(&format!("{}.trackvia.com", "a".repeat(63))),
        ),
        refused(
            "a scheme",
            host("https://acme.trackvia.com"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "a path",
            host("acme.trackvia.com/openapi"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "a trailing slash",
            host("acme.trackvia.com/"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "userinfo",
            host("user@acme.trackvia.com"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "userinfo with a password",
            host("user:secret@acme.trackvia.com"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused("upper case", host("ACME.trackvia.com"), &[HOST_DNS]),
        refused("mixed case", host("Acme.TrackVia.com"), &[HOST_DNS]),
        refused("an empty port", host("acme.trackvia.com:"), &[HOST_DNS]),
        refused(
            "a six-digit port",
            host("acme.trackvia.com:123456"),
            &[HOST_DNS],
        ),
        refused("a named port", host("acme.trackvia.com:https"), &[HOST_DNS]),
        refused("a negative port", host("acme.trackvia.com:-1"), &[HOST_DNS]),
        refused("two ports", host("acme.trackvia.com:1:2"), &[HOST_DNS]),
        refused("a leading hyphen", host("-acme.trackvia.com"), &[HOST_DNS]),
        refused(
            "a trailing hyphen in a label",
            host("acme-.trackvia.com"),
            &[HOST_DNS],
        ),
        refused("an empty label", host("acme..trackvia.com"), &[HOST_DNS]),
        refused("a trailing dot", host("acme.trackvia.com."), &[HOST_DNS]),
        refused(
            "a 64-character label",
            host(&format!("{}.trackvia.com", "a".repeat(64))),
            &[HOST_DNS],
        ),
        refused("an empty host", host(""), &[HOST_DNS]),
        refused("a space", host("acme trackvia.com"), &[HOST_DNS]),
        refused("an underscore", host("acme_1.trackvia.com"), &[HOST_DNS]),
        refused("an IPv6 literal", host("[::1]:8443"), &[HOST_DNS]),
        // --- tokenExpiresOn
        accepted("the first accepted day", date("2000-01-01")),
        accepted("the last day of a year", date("2027-12-31")),
        accepted("a leap day", date("2028-02-29")),
        accepted("a leap day of a year divisible by 400", date("2000-02-29")),
        accepted("the 30th of April", date("2027-04-30")),
        accepted("the 31st of July", date("2027-07-31")),
        accepted("the 31st of August", date("2027-08-31")),
        accepted("far in the future", date("9999-12-31")),
        accepted("no date", json!({ "tokenExpiresOn": null })),
        refused("month 13", date("2027-13-01"), &[DATE]),
        refused("month 00", date("2027-00-10"), &[DATE]),
        refused("day 00", date("2027-01-00"), &[DATE]),
        refused("day 32", date("2027-01-32"), &[DATE]),
        refused("slashes", date("2027/01/01"), &[DATE]),
        refused("a word", date("tomorrow"), &[DATE]),
        refused("the 30th of February", date("2027-02-30"), &[DATE]),
        refused("a leap day in a common year", date("2027-02-29"), &[DATE]),
        refused("a leap day in a century year", date("2100-02-29"), &[DATE]),
        refused("the 31st of April", date("2027-04-31"), &[DATE]),
        refused("the 31st of June", date("2027-06-31"), &[DATE]),
        refused("the 31st of September", date("2027-09-31"), &[DATE]),
        refused("the 31st of November", date("2027-11-31"), &[DATE]),
        refused("before 2000", date("1999-12-31"), &[DATE]),
        refused("a two-digit year", date("27-01-01"), &[DATE]),
        refused("no leading zeros", date("2027-1-1"), &[DATE]),
        refused("a timestamp", date("2027-01-01T00:00:00Z"), &[DATE]),
        refused("a leading space", date(" 2027-01-01"), &[DATE]),
        refused("an empty date", date(""), &[DATE]),
        // --- verifyInterval
        accepted("interval 1m", interval("1m")),
        accepted("interval 1h", interval("1h")),
        accepted("interval 0", interval("0")),
        accepted("interval 0s, also off", interval("0s")),
        accepted("interval 0m, also off", interval("0m")),
        accepted("interval 60s", interval("60s")),
        accepted("interval 1h30m", interval("1h30m")),
        accepted("interval 1.5h", interval("1.5h")),
        accepted("interval a year", interval("8784h")),
        refused("interval 30s", interval("30s"), &[INTERVAL]),
        refused("interval 59s", interval("59s"), &[INTERVAL]),
        refused("interval 59.9s", interval("59.9s"), &[INTERVAL]),
        refused("interval 1ms", interval("1ms"), &[INTERVAL]),
        refused("a negative interval", interval("-1h"), &[INTERVAL]),
        refused("an interval without a unit", interval("60"), &[INTERVAL]),
        refused("an interval in days", interval("1d"), &[INTERVAL]),
        refused("an interval in words", interval("hourly"), &[INTERVAL]),
        refused("an empty interval", interval(""), &[INTERVAL]),
        // --- expiryWarning
        accepted("warning 0", warning("0")),
        accepted("warning 0s", warning("0s")),
        accepted("warning 336h", warning("336h")),
        accepted("warning 1h30m", warning("1h30m")),
        accepted("warning 1ms", warning("1ms")),
        refused("a negative warning", warning("-1h"), &[WARNING]),
        refused("a negative fraction", warning("-0.5s"), &[WARNING]),
        refused("a warning in days", warning("14d"), &[WARNING]),
        refused("a warning without a unit", warning("336"), &[WARNING]),
        refused("a warning in words", warning("two weeks"), &[WARNING]),
        // --- target.labels
        accepted(
            "ordinary labels",
            json!({ "target": { "labels": { "team": "crm" } } }),
        ),
        accepted(
            "other app.kubernetes.io labels",
            json!({ "target": { "labels": { "app.kubernetes.io/part-of": "crm" } } }),
        ),
        accepted("no labels", json!({ "target": { "labels": {} } })),
        refused(
            "managed-by in labels",
            json!({ "target": { "labels": { "app.kubernetes.io/managed-by": "helm" } } }),
            &[LABELS],
        ),
        refused(
            "managed-by in labels, even with the operator's own value",
            json!({ "target": { "labels": { "team": "crm", "app.kubernetes.io/managed-by": "trackvia-operator" } } }),
            &[LABELS],
        ),
        // --- target.keys
        accepted("default keys", json!({ "target": { "keys": {} } })),
        accepted(
            "one key renamed",
            json!({ "target": { "keys": { "host": "trackviaHost" } } }),
        ),
        accepted(
            "keys differing only in case",
            json!({ "target": { "keys": { "host": "Host", "baseUrl": "HOST" } } }),
        ),
        refused(
            "two keys the same",
            json!({ "target": { "keys": { "apiKey": "token", "authToken": "token" } } }),
            &[KEYS],
        ),
        refused(
            "a key equal to another's default",
            json!({ "target": { "keys": { "host": "apiKey" } } }),
            &[KEYS],
        ),
        refused(
            "all keys the same",
            json!({ "target": { "keys": { "apiKey": "k", "authToken": "k", "host": "k", "accountId": "k", "baseUrl": "k" } } }),
            &[KEYS],
        ),
        // --- the output Secret is never the source Secret (a rule on the whole object)
        refused(
            "target.name is the credentials Secret",
            json!({ "target": { "name": "trackvia-api-user" } }),
            &[TARGET_SOURCE],
        ),
        refused(
            "no target.name, and the connection is named like its credentials Secret",
            json!({ "credentialsSecretRef": { "name": "crm" } }),
            &[TARGET_SOURCE],
        ),
        accepted(
            "named like its credentials Secret, publishing under another name",
            json!({ "credentialsSecretRef": { "name": "crm" }, "target": { "name": "crm-out" } }),
        ),
        accepted(
            "a target named like the connection, reading another Secret",
            json!({ "target": { "name": "crm" } }),
        ),
        // --- several problems at once are all reported
        refused(
            "a bad host, date and interval",
            json!({ "host": "https://ACME", "tokenExpiresOn": "2027-02-30", "verifyInterval": "5s" }),
            &[HOST_SHAPE, HOST_DNS, DATE, INTERVAL],
        ),
    ]
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

// ---------------------------------------------------------------------------
// What the schema lets through is still caught by the operator
// ---------------------------------------------------------------------------

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
        let operator = trackvia_operator::adoption::check_target(&tvc);
        if case.refused_by.contains(&TARGET_SOURCE) {
            checked += 1;
            assert!(operator.is_err(), "{}: the operator accepts it", case.what);
        } else {
            assert_eq!(operator, Ok(()), "{}: the operator refuses it", case.what);
        }
    }
    assert_eq!(checked, 2, "the cases of the rule");
}

// ---------------------------------------------------------------------------
// OpenAPI patterns
// ---------------------------------------------------------------------------

fn pattern(text: &str) -> Regex {
    Regex::new(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn patterns_in_the_schema_are_the_published_constants() {
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["host"]["pattern"], HOST_PATTERN);
    assert_eq!(spec["tokenExpiresOn"]["pattern"], DATE_PATTERN);
    assert_eq!(spec["tokenName"]["pattern"], PRINTABLE_PATTERN);
    assert_eq!(spec["apiUser"]["pattern"], PRINTABLE_PATTERN);
    assert_eq!(spec["expiryWarning"]["pattern"], DURATION_PATTERN);
    assert_eq!(spec["verifyInterval"]["pattern"], DURATION_PATTERN);
    assert_eq!(
        spec["credentialsSecretRef"]["properties"]["name"]["pattern"],
        NAME_PATTERN
    );
    assert_eq!(
        spec["credentialsSecretRef"]["properties"]["apiKeyKey"]["pattern"],
        SECRET_KEY_PATTERN
    );
    assert_eq!(
        spec["target"]["properties"]["keys"]["properties"]["baseUrl"]["pattern"],
        SECRET_KEY_PATTERN
    );
    // The host rule checks the same expression as the pattern (CEL doubles the backslash).
    let rules = rules_in(&schema);
    let host_rule = rules
        .iter()
        .find(|(_, r)| r.message == HOST_DNS)
        .map(|(text, _)| text.replace("\\\\", "\\"))
        .expect("the host rule");
    assert!(
        host_rule.contains(&format!("'{HOST_PATTERN}'")),
        "{host_rule}"
    );
    // Every pattern compiles for the API server (RE2 syntax, which the regex crate shares).
    for text in [
        HOST_PATTERN,
        DATE_PATTERN,
        DURATION_PATTERN,
        NAME_PATTERN,
        SECRET_KEY_PATTERN,
        PRINTABLE_PATTERN,
    ] {
        pattern(text);
    }
}

#[test]
fn printable_pattern_refuses_control_characters_only() {
    let re = pattern(PRINTABLE_PATTERN);
    for good in [
        "",
        "workato-prod",
        "svc-crm@acme.com",
        "Intégration — prod ✓",
        "a b",
    ] {
        assert!(re.is_match(good), "{good:?}");
    }
    for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
        let text = format!("prod{c}x");
        assert!(!re.is_match(&text), "{text:?}");
    }
}

#[test]
fn host_pattern_matches_what_the_rules_mean() {
    let re = pattern(HOST_PATTERN);
    for good in [
        "go.trackvia.com",
        "acme.trackvia.com:8443",
        "localhost:1",
        "a",
        "127.0.0.1:443",
    ] {
        assert!(re.is_match(good), "{good}");
    }
    for bad in [
        "https://acme.trackvia.com",
        "acme.trackvia.com/openapi",
        "user@acme.trackvia.com",
        "ACME.trackvia.com",
        "acme.trackvia.com:",
        "acme.trackvia.com:123456",
        "-acme.trackvia.com",
        "acme..trackvia.com",
        "",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
}

#[test]
fn date_pattern_matches_what_the_rule_means() {
    let re = pattern(DATE_PATTERN);
    for good in ["2027-03-31", "2000-01-01", "2028-02-29", "9999-12-31"] {
        assert!(re.is_match(good), "{good}");
    }
    for bad in [
        "2027-13-01",
        "2027-00-01",
        "2027-01-32",
        "2027/01/01",
        "tomorrow",
        "27-01-01",
        "2027-1-1",
        "2027-01-01T00:00:00Z",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
    // Month lengths are beyond a pattern: the CEL rule and parse_spec catch these.
    assert!(re.is_match("2027-02-30"));
}

#[test]
fn duration_pattern_matches_what_the_rules_mean() {
    let re = pattern(DURATION_PATTERN);
    for good in ["0", "1m", "1h", "336h", "1h30m", "1.5h", "90s", "500ms"] {
        assert!(re.is_match(good), "{good}");
        assert!(connection::parse_duration(good).is_ok(), "{good}");
    }
    for bad in ["-1h", "1d", "60", "", "1 h", "1h-5m", "+1h", "1.h", ".5h"] {
        assert!(!re.is_match(bad), "{bad}");
    }
    // The pattern allows sub-minute intervals; the verifyInterval rule refuses them.
    assert!(re.is_match("30s"));
}
