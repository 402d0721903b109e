//! The CRD's schema for the schema tests: the `openAPIV3Schema` as generated, its CEL rules
//! found by place, the interpreter's verdict on one object, and the table of cases every
//! rule must accept or refuse (in `cases`).

mod cases;

// Each test binary uses only some of these.
#[allow(unused_imports)]
pub use cases::cases;

use std::collections::BTreeMap;

use kube::CustomResourceExt;
use kube::core::cel::{ErrorKind, Validator};
use serde_json::{Value, json};
use trackvia_operator::crd::{self, TrackViaConnection};

pub fn schema() -> Value {
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
pub struct FoundRule {
    /// Where it sits, e.g. `spec.host`.
    pub path: String,
    /// Its custom message.
    pub message: String,
}

/// Every `x-kubernetes-validations` rule in the schema, by `path: rule text`.
pub fn rules_in(schema: &Value) -> BTreeMap<String, FoundRule> {
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
pub const HOST_SHAPE: &str = "host must be host[:port] without a scheme, userinfo or path";
pub const HOST_DNS: &str = "host must be a lower-case DNS name with an optional :port";
pub const DATE: &str = "tokenExpiresOn must be a calendar date YYYY-MM-DD from 2000-01-01 on";
pub const WARNING: &str = "expiryWarning must be a non-negative duration such as 336h";
pub const INTERVAL: &str = "verifyInterval must be at least 1m, or 0 to turn periodic checks off";
pub const LABELS: &str = "target.labels must not set app.kubernetes.io/managed-by";
pub const KEYS: &str = "target.keys must all be different";
pub const TARGET_SOURCE: &str = crd::TARGET_NOT_SOURCE_MESSAGE;
pub const TOKEN_NAME: &str = "tokenName must not contain control characters";
pub const API_USER: &str = "apiUser must not contain control characters";

/// A spec every rule accepts.
pub fn valid_spec() -> Value {
    json!({
        "host": "acme.trackvia.com",
        "credentialsSecretRef": { "name": "trackvia-api-user" },
        "tokenExpiresOn": "2027-03-31",
    })
}

pub fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": { "name": "crm", "namespace": "integrations" },
        "spec": spec,
    })
}

/// What the interpreter said about one object: the messages of the rules that
/// failed, with how they failed.
pub fn failures(
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
pub struct Case {
    pub what: &'static str,
    pub patch: Value,
    /// Messages of the rules that must refuse it (empty: accepted).
    pub refused_by: &'static [&'static str],
}

pub fn accepted(what: &'static str, patch: Value) -> Case {
    Case {
        what,
        patch,
        refused_by: &[],
    }
}

pub fn refused(what: &'static str, patch: Value, refused_by: &'static [&'static str]) -> Case {
    Case {
        what,
        patch,
        refused_by,
    }
}

pub fn host(value: &str) -> Value {
    json!({ "host": value })
}

pub fn date(value: &str) -> Value {
    json!({ "tokenExpiresOn": value })
}

pub fn interval(value: &str) -> Value {
    json!({ "verifyInterval": value })
}

pub fn warning(value: &str) -> Value {
    json!({ "expiryWarning": value })
}
