//! The pure decisions of `rotate`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::json;

use super::plan::*;
use crate::crd::TrackViaConnection;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn date(text: &str) -> jiff::civil::Date {
    text.parse().unwrap()
}

fn tvc(spec: serde_json::Value, status: serde_json::Value) -> TrackViaConnection {
    let mut full = json!({"credentialsSecretRef": {"name": "src"}});
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": "crm", "namespace": "apps", "generation": 4, "resourceVersion": "77"},
        "spec": full,
        "status": status,
    }))
    .unwrap()
}

fn applied(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some(operation.into()),
        fields_v1: Some(FieldsV1(fields)),
        ..ManagedFieldsEntry::default()
    }
}

#[test]
fn expiry_dates_are_calendar_dates_after_today() {
    assert_eq!(parse_expiry_date("2027-02-28"), Ok(date("2027-02-28")));
    assert!(parse_expiry_date("2028-02-29").is_ok(), "a leap day");
    for bad in [
        "2027-02-30",
        "2027-13-01",
        "27-01-01",
        "2027-1-01",
        "tomorrow",
        "",
        "1999-12-31",
    ] {
        assert!(parse_expiry_date(bad).is_err(), "{bad:?}");
    }
    let now = ts("2030-06-15T23:59:00Z");
    assert!(check_expiry_date(date("2030-06-16"), now).is_ok());
    let today = check_expiry_date(date("2030-06-15"), now)
        .unwrap_err()
        .to_string();
    assert!(today.contains("00:00 UTC"), "{today}");
    assert!(check_expiry_date(date("2029-01-01"), now).is_err());
}

#[test]
fn token_names_follow_the_schema() {
    assert!(check_token_name("ci token 2030 ✓").is_ok());
    assert!(check_token_name("a\u{1b}[2Jb").is_err());
    assert!(check_token_name("a\u{9b}b").is_err());
    assert!(check_token_name(&"x".repeat(257)).is_err());
}

#[test]
fn the_new_data_replaces_only_the_token_and_a_missing_key_is_named() {
    let data: BTreeMap<String, ByteString> = [
        ("apiKey".to_string(), ByteString(b"key-1".to_vec())),
        ("authToken".to_string(), ByteString(b"old-1".to_vec())),
        ("note".to_string(), ByteString(b"x".to_vec())),
    ]
    .into();
    let new = new_data("Secret apps/src", &data, "authToken", " new-2\n").unwrap();
    assert_eq!(new["authToken"].0, b"new-2");
    assert_eq!(new["apiKey"], data["apiKey"]);
    assert_eq!(new["note"], data["note"]);
    let e = new_data("Secret apps/src", &data, "token", "new-2")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("Secret apps/src has no key \"token\""), "{e}");
    assert!(e.contains("apiKey, authToken, note"), "{e}");
    assert!(
        !e.contains("old-1") && !e.contains("key-1") && !e.contains("new-2"),
        "{e}"
    );
}

#[test]
fn an_apply_keeps_what_this_manager_applied_before() {
    let managed = vec![
        applied(
            FIELD_MANAGER,
            "Apply",
            json!({"f:data": {"f:authToken": {}, "f:old": {}}, "f:spec": {"f:tokenName": {}}}),
        ),
        applied(FIELD_MANAGER, "Update", json!({"f:data": {"f:other": {}}})),
        applied(
            "kubectl-create",
            "Update",
            json!({"f:data": {"f:apiKey": {}}}),
        ),
    ];
    assert_eq!(
        applied_fields(Some(&managed), "f:data"),
        ["authToken", "old"]
    );
    assert_eq!(applied_fields(Some(&managed), "f:spec"), ["tokenName"]);
    assert!(applied_fields(None, "f:data").is_empty());

    let data: BTreeMap<String, ByteString> = [
        ("apiKey".to_string(), ByteString(b"k".to_vec())),
        ("authToken".to_string(), ByteString(b"n".to_vec())),
        ("old".to_string(), ByteString(b"o".to_vec())),
    ]
    .into();
    let owned = vec!["old".to_string()];
    assert_eq!(
        secret_apply("apps", "src", Some("9"), &data, "authToken", &owned),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "src", "namespace": "apps", "resourceVersion": "9"},
               "data": {"authToken": "bg==", "old": "bw=="}})
    );

    // tokenName: the new one; else the current one only when this manager applied it.
    let mut before = tvc(
        json!({"tokenName": "t-2029", "tokenExpiresOn": "2029-01-01"}),
        json!(null),
    );
    let body = connection_apply(&before, date("2031-01-01"), Some("t-2031"));
    assert_eq!(
        body["spec"],
        json!({"tokenExpiresOn": "2031-01-01", "tokenName": "t-2031"})
    );
    assert_eq!(
        body["metadata"],
        json!({"name": "crm", "namespace": "apps"})
    );
    let body = connection_apply(&before, date("2031-01-01"), None);
    assert_eq!(body["spec"], json!({"tokenExpiresOn": "2031-01-01"}));
    before.metadata.managed_fields = Some(managed);
    let body = connection_apply(&before, date("2031-01-01"), None);
    assert_eq!(
        body["spec"],
        json!({"tokenExpiresOn": "2031-01-01", "tokenName": "t-2029"})
    );
}

fn cond(type_: &str, status: &str, reason: &str) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": reason, "message": format!("{reason} message"),
           "lastTransitionTime": "2030-01-01T00:00:00Z"})
}

#[test]
fn published_means_the_new_fingerprint_verified_ready_and_synced_for_the_new_spec() {
    let status = |generation: i64, current: &str, verified: &str, conditions: serde_json::Value| {
        json!({"observedGeneration": generation, "credentialsFingerprint": current,
               "verifiedFingerprint": verified, "conditions": conditions})
    };
    let good = json!([
        cond("Ready", "True", "Verified"),
        cond("Verified", "True", "Verified"),
        cond("SecretSynced", "True", "Synced"),
    ]);
    let t = |s| tvc(json!({}), s);
    assert_eq!(
        progress(&t(status(5, "new", "new", good.clone())), Some(5), "new"),
        Progress::Published
    );
    for (what, s) in [
        ("no status", json!(null)),
        ("an older spec", status(4, "new", "new", good.clone())),
        ("the old credentials", status(5, "old", "old", good.clone())),
        (
            "new, not yet verified",
            status(5, "new", "old", good.clone()),
        ),
        (
            "not yet published",
            status(
                5,
                "new",
                "new",
                json!([
                    cond("Ready", "False", "VerificationPending"),
                    cond("Verified", "True", "Verified"),
                    cond("SecretSynced", "False", "NotPublished"),
                ]),
            ),
        ),
        (
            "a transient failure",
            status(
                5,
                "new",
                "old",
                json!([cond("Verified", "Unknown", "TransientFailure")]),
            ),
        ),
    ] {
        assert_eq!(progress(&t(s), Some(5), "new"), Progress::Waiting, "{what}");
    }
    let refused = status(
        5,
        "new",
        "old",
        json!([cond("Verified", "False", "Unauthorized")]),
    );
    assert_eq!(
        progress(&t(refused), Some(5), "new"),
        Progress::Refused(2, "Unauthorized: Unauthorized message".into())
    );
}

#[test]
fn the_summary_names_what_changed_and_the_old_token_golden() {
    let before = tvc(
        json!({"tokenName": "ci-2029", "tokenExpiresOn": "2029-03-01"}),
        json!(null),
    );
    assert_eq!(
        summary(
            &before,
            "Secret apps/src",
            "authToken",
            date("2030-03-01"),
            Some("ci-2030"),
            "crm-out"
        ),
        [
            "Secret apps/src: key authToken holds the new token",
            "TrackViaConnection crm: tokenExpiresOn 2029-03-01 -> 2030-03-01, tokenName \"ci-2029\" -> \"ci-2030\"",
            "Verified by TrackVia and published to Secret crm-out",
            "Reminder: delete the old token \"ci-2029\" (expiring on 2029-03-01) in TrackVia (gear icon, Deactivate, then delete) once the workloads use the new one; until then it still works.",
        ]
    );
    let bare = tvc(json!({}), json!(null));
    let lines = summary(
        &bare,
        "Secret apps/src",
        "tok",
        date("2030-03-01"),
        None,
        "crm",
    );
    assert_eq!(
        lines[1],
        "TrackViaConnection crm: tokenExpiresOn (unset) -> 2030-03-01"
    );
    assert!(
        lines[3].starts_with("Reminder: delete the old token in TrackVia"),
        "{}",
        lines[3]
    );
}
