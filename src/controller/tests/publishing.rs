//! Publishing the output Secret: ownership, conflicts, adoption and the
//! passes that must write nothing.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::{Bed, CONNECTION, Call, condition, connection, foreign, secret_path, source};
use crate::crd::{ADOPTED_ANNOTATION, CONNECTION_ANNOTATION, MANAGED_BY_LABEL};

const DEBOUNCE: Duration = Duration::from_secs(10);

/// A connection with `spec` verified while Secret `name` already exists as `found`
/// describes; the bed and the writes of that pass.
async fn beside_a_secret_found(name: &str, spec: Value, found: Value) -> (Bed, Vec<Call>) {
    let mut bed = Bed::new(
        vec![connection(spec), source("tok-1"), foreign(name, found)],
        DEBOUNCE,
    );
    bed.verify().await;
    let writes = bed.writes();
    (bed, writes)
}

#[tokio::test]
async fn a_verified_connection_publishes_a_secret_it_owns_then_writes_nothing_more() {
    let mut bed = Bed::new(vec![connection(json!({})), source("tok-1")], DEBOUNCE);
    bed.verify().await;
    assert_eq!(
        bed.reads_of(&secret_path("out")),
        0,
        "a new Secret is created, not read"
    );
    let writes = bed.writes();
    let paths: Vec<_> = writes
        .iter()
        .map(|c| (&c.method, c.path.as_str()))
        .collect();
    let status_path = format!("{CONNECTION}/status");
    assert_eq!(
        paths,
        vec![
            (&Method::POST, secret_path("out").as_str()),
            (&Method::PATCH, status_path.as_str())
        ]
    );
    let secret = &writes[0].body;
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(
        secret["metadata"]["labels"][MANAGED_BY_LABEL],
        "trackvia-operator"
    );
    assert_eq!(
        secret["metadata"]["annotations"][CONNECTION_ANNOTATION],
        "crm"
    );
    let status = &writes[1].body["status"];
    assert_eq!(condition(status, "Ready")["status"], "True");
    assert_eq!(condition(status, "SecretSynced")["status"], "True");

    // Nothing changed: the next pass reads, and writes neither the Secret nor the status.
    bed.pass().await;
    let writes = bed.writes();
    assert!(writes.is_empty(), "an unchanged pass writes: {writes:?}");
}

#[tokio::test]
async fn a_secret_someone_else_made_is_left_untouched() {
    let (bed, writes) = beside_a_secret_found("out", json!({}), json!({})).await;
    assert!(
        writes.iter().all(|c| c.path != secret_path("out")),
        "the foreign Secret is written: {writes:?}"
    );
    let status = &writes.last().expect("a status write").body["status"];
    let synced = condition(status, "SecretSynced");
    assert_eq!(synced["status"], "False");
    let message = synced["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not managed by trackvia-operator"),
        "{message}"
    );
    assert_eq!(
        bed.object(&secret_path("out")).expect("kept")["data"]["theirs"],
        "eA=="
    );
}

#[tokio::test]
async fn a_secret_published_by_another_connection_is_a_conflict() {
    let theirs = json!({"metadata": {
        "labels": {MANAGED_BY_LABEL: "trackvia-operator"},
        "annotations": {CONNECTION_ANNOTATION: "billing"},
    }});
    let (_, writes) = beside_a_secret_found("out", json!({}), theirs).await;
    assert!(
        writes.iter().all(|c| c.path != secret_path("out")),
        "{writes:?}"
    );
    let status = &writes.last().expect("a status write").body["status"];
    let message = condition(status, "SecretSynced")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("TrackViaConnection billing"), "{message}");
}

#[tokio::test]
async fn an_adopted_secret_is_marked_and_never_owned() {
    let (_, writes) =
        beside_a_secret_found("out", json!({"target": {"adopt": true}}), json!({})).await;
    let apply = writes
        .iter()
        .find(|c| c.path == secret_path("out"))
        .expect("the adopted Secret is written");
    let meta = &apply.body["metadata"];
    assert_eq!(meta["annotations"][ADOPTED_ANNOTATION], "Delete");
    assert!(meta.get("ownerReferences").is_none(), "{meta}");
}

#[tokio::test]
async fn a_secret_of_another_type_is_not_adopted() {
    let (_, writes) = beside_a_secret_found(
        "out",
        json!({"target": {"adopt": true}}),
        json!({"type": "kubernetes.io/tls"}),
    )
    .await;
    assert!(
        writes.iter().all(|c| c.path != secret_path("out")),
        "{writes:?}"
    );
}

#[tokio::test]
async fn a_target_naming_the_source_is_refused_before_anything_is_read() {
    let bed = Bed::new(
        vec![
            connection(json!({"target": {"name": "src"}})),
            source("tok-1"),
        ],
        DEBOUNCE,
    );
    bed.pass().await;
    let source_reads = bed.reads_of(&secret_path("src"));
    assert_eq!(source_reads, 0, "the source Secret is read");
    let writes = bed.writes();
    assert_eq!(writes.len(), 1, "only the status: {writes:?}");
    let ready = condition(&writes[0].body["status"], "Ready");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("never writes its source Secret"),
        "{message}"
    );
    let source_reads = bed.reads_of(&secret_path("src"));
    assert_eq!(source_reads, 0, "the source Secret is read");
}
