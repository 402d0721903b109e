//! Never lose data, on the real bed: the output Secret is never the source
//! Secret; an adopted Secret keeps every key the operator did not write and is
//! never deleted, through renames and the deletion of its connection;
//! `deletionPolicy: Retain` deletes nothing.

mod common;

use std::time::Duration;

use common::{Harness, SETTLE, secret_text};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use trackvia_operator::controller::adoption::ORPHAN_SCAN_INTERVAL;
use trackvia_operator::crd::{ADOPTED_ANNOTATION, MANAGED_BY_LABEL};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::{wait_for, wait_for_absent};
use trackvia_testsupport::metrics::series;

/// Long enough for the garbage collector (about a second on the bed) and one
/// orphan scan to have acted on anything they were going to act on.
const QUIET: Duration = Duration::from_secs(4);

/// Create Secret `name` as another tool would (field manager `someone-else`),
/// with key `mine`, a label and an annotation of its own.
async fn put_foreign(h: &Harness, name: &str) {
    let body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"team": "crm"}, "annotations": {"note": "theirs"}},
        "stringData": {"mine": "keep-me"},
    });
    h.secrets_api()
        .patch(
            name,
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&body),
        )
        .await
        .unwrap_or_else(|e| panic!("creating Secret {name}: {e}"));
}

/// Secret `name` exists and still holds what its other writer put there.
fn keeps_theirs(s: &Secret) -> bool {
    let labels = s.metadata.labels.clone().unwrap_or_default();
    let annotations = s.metadata.annotations.clone().unwrap_or_default();
    secret_text(s, "mine").as_deref() == Some("keep-me")
        && labels.get("team").map(String::as_str) == Some("crm")
        && annotations.get("note").map(String::as_str) == Some("theirs")
}

/// Nothing the operator wrote is left in `s`.
fn nothing_of_ours(s: &Secret) -> bool {
    let data = s.data.clone().unwrap_or_default();
    let labels = s.metadata.labels.clone().unwrap_or_default();
    let annotations = s.metadata.annotations.clone().unwrap_or_default();
    ["apiKey", "authToken", "host", "baseUrl"]
        .iter()
        .all(|k| !data.contains_key(*k))
        && !labels.contains_key(MANAGED_BY_LABEL)
        && !annotations.keys().any(|k| k.starts_with("trackvia.io/"))
        && s.metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty())
}

/// Wait until Secret `name` is released: the operator's fields gone, the other
/// writer's kept.
async fn wait_released(h: &Harness, name: &str, what: &str) -> Secret {
    wait_for(&h.secrets_api(), name, SETTLE, what, |s: &Secret| {
        nothing_of_ours(s) && keeps_theirs(s)
    })
    .await
}

/// After [`QUIET`], Secret `name` still exists and `pred` holds.
async fn still_there(h: &Harness, name: &str, what: &str, pred: impl Fn(&Secret) -> bool) {
    tokio::time::sleep(QUIET).await;
    let s = h
        .secrets_api()
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading Secret {name}: {e}"))
        .unwrap_or_else(|| panic!("{what}: Secret {name} was deleted"));
    assert!(
        pred(&s),
        "{what}: {}",
        trackvia_testsupport::kube::describe_object(&s)
    );
}

// The CRD's CEL rule refuses these objects from Kubernetes 1.25 on; the bed's
// API server (1.20) lets them through, so the operator's own refusal is tested.
#[tokio::test]
async fn the_output_secret_is_never_the_source_secret() {
    let mut h = Harness::start("tvc-self", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let before = h.secrets_api().get("src").await.expect("the source");

    let adopt = json!({"target": {"adopt": true}, "publish": "Always"});
    let explicit = json!({"target": {"name": "src", "adopt": true}, "publish": "Always"});
    h.apply_connection("explicit", "src", explicit)
        .await
        .expect("applying");
    // No target.name: the output Secret would be named like the connection.
    h.apply_connection("src", "src", adopt)
        .await
        .expect("applying");
    for name in ["explicit", "src"] {
        let t = h.wait_ready(name, "False", "InvalidSpec").await;
        let ready = t
            .status
            .as_ref()
            .and_then(|s| s.condition("Ready"))
            .cloned();
        let message = ready.map(|c| c.message).unwrap_or_default();
        assert!(
            message.contains("spec.target.name") && message.contains("source"),
            "{name}: {message}"
        );
    }
    tokio::time::sleep(QUIET).await;
    let after = h.secrets_api().get("src").await.expect("the source");
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the source Secret was written"
    );
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap(),
        "the source Secret changed"
    );
    assert_eq!(h.fake.total_calls(), 0, "a refused connection calls nobody");
    h.finish().await;
}

#[tokio::test]
async fn an_adopted_secret_keeps_other_keys_through_renames_and_deletion() {
    let mut h = Harness::start("tvc-adopt", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    put_foreign(&h, "shared").await;
    let adopt_shared = json!({"target": {"name": "shared", "adopt": true}});
    h.apply_connection("crm", "src", adopt_shared.clone())
        .await
        .expect("applying");

    // Published: the operator's keys next to the others'.
    let s = h
        .wait_published("shared", &token, SETTLE, "the adopted Secret published")
        .await;
    assert_adopted(&s);

    // Renamed away: released, not deleted.
    h.apply_connection(
        "crm",
        "src",
        json!({"target": {"name": "second", "adopt": true}}),
    )
    .await
    .expect("applying");
    h.wait_published("second", &token, SETTLE, "the Secret under its new name")
        .await;
    wait_released(
        &h,
        "shared",
        "the operator's keys removed from the old Secret",
    )
    .await;
    still_there(&h, "shared", "renamed away", |s| {
        nothing_of_ours(s) && keeps_theirs(s)
    })
    .await;

    // Adopted again, then the connection is deleted while the operator runs.
    h.apply_connection("crm", "src", adopt_shared)
        .await
        .expect("applying");
    h.wait_published("shared", &token, SETTLE, "adopted again")
        .await;
    h.connections()
        .delete("crm", &DeleteParams::default())
        .await
        .expect("deleting the connection");
    wait_released(
        &h,
        "shared",
        "the operator's keys removed after the deletion",
    )
    .await;
    // The Secret the operator created under the second name goes whole.
    wait_for_absent(
        &h.secrets_api(),
        "second",
        SETTLE,
        "the created Secret collected",
    )
    .await;
    still_there(&h, "shared", "connection deleted", |s| {
        nothing_of_ours(s) && keeps_theirs(s)
    })
    .await;
    h.finish().await;
}

#[tokio::test]
async fn an_adopted_secret_is_released_when_its_connection_went_while_the_operator_was_down() {
    let mut h = Harness::start("tvc-orphan", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    put_foreign(&h, "shared").await;
    h.apply_connection(
        "crm",
        "src",
        json!({"target": {"name": "shared", "adopt": true}}),
    )
    .await
    .expect("applying");
    h.wait_published("shared", &token, SETTLE, "the adopted Secret published")
        .await;

    h.operator.stop().await;
    h.connections()
        .delete("crm", &DeleteParams::default())
        .await
        .expect("deleting the connection");
    still_there(&h, "shared", "operator down", keeps_theirs).await;
    h.restart_operator().await;
    wait_released(&h, "shared", "the operator's keys removed after a restart").await;
    tokio::time::sleep(ORPHAN_SCAN_INTERVAL * 2).await;
    let writes = series(&h.metrics().await, "trackvia_secret_writes_total");
    assert_eq!(writes, Some(1.0), "one release, written once");
    h.finish().await;
}

#[tokio::test]
async fn a_key_added_to_a_created_secret_survives_the_deletion_of_its_connection() {
    let mut h = Harness::start("tvc-added", &[]).await;
    let (_key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    let s = h.wait_published("crm", &token, SETTLE, "published").await;
    assert!(
        s.metadata.owner_references.is_some(),
        "created: collectable"
    );

    // Someone else adds a key: the Secret is from now on treated as adopted.
    put_foreign(&h, "crm").await;
    wait_for(
        &h.secrets_api(),
        "crm",
        SETTLE,
        "the ownerReference dropped",
        |s: &Secret| {
            s.metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.is_empty())
                && keeps_theirs(s)
        },
    )
    .await;
    h.connections()
        .delete("crm", &DeleteParams::default())
        .await
        .expect("deleting the connection");
    wait_released(&h, "crm", "the operator's keys removed after the deletion").await;
    still_there(&h, "crm", "connection deleted", |s| {
        nothing_of_ours(s) && keeps_theirs(s)
    })
    .await;
    h.finish().await;
}

#[tokio::test]
async fn retain_deletes_nothing_on_a_rename_or_a_deletion() {
    let mut h = Harness::start("tvc-retain", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let retain = |name: &str| json!({"target": {"name": name, "deletionPolicy": "Retain"}});
    h.apply_connection("keep", "src", retain("first"))
        .await
        .expect("applying");
    h.wait_published("first", &token, SETTLE, "published").await;
    h.apply_connection("keep", "src", retain("second"))
        .await
        .expect("applying");
    h.wait_published("second", &token, SETTLE, "published under the new name")
        .await;
    still_there(&h, "first", "renamed away under Retain", |s| {
        secret_text(s, "authToken").as_deref() == Some(token.as_str())
    })
    .await;

    // An adopted Secret under Retain keeps everything, the operator's keys included.
    put_foreign(&h, "shared").await;
    let adopted = json!({"target": {"name": "shared", "adopt": true, "deletionPolicy": "Retain"}});
    h.apply_connection("adopter", "src", adopted)
        .await
        .expect("applying");
    h.wait_published("shared", &token, SETTLE, "adopted under Retain")
        .await;
    for name in ["keep", "adopter"] {
        h.connections()
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleting the connection");
    }
    for name in ["first", "second", "shared"] {
        still_there(&h, name, "connection deleted under Retain", |s| {
            secret_text(s, "authToken").as_deref() == Some(token.as_str())
        })
        .await;
    }
    still_there(&h, "shared", "adopted under Retain", keeps_theirs).await;
    h.finish().await;
}

/// A Secret the operator created (a plain create, whose fields the API server records as an
/// update) loses a key the operator no longer writes: its fields are handed to the
/// operator's apply first, so the apply removes the key, and the operator then stops writing.
#[tokio::test]
async fn a_key_no_longer_written_leaves_a_created_secret() {
    let mut h = Harness::start("tvc-dropkey", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.fake.set_for_account(&key, &token, 777, Behavior::Valid);
    h.put_source("src", &key, &token).await;
    h.apply_connection("crm", "src", json!({"accountId": 777}))
        .await
        .expect("applying");
    let s = h.wait_published("crm", &token, SETTLE, "published").await;
    assert_eq!(secret_text(&s, "accountId").as_deref(), Some("777"));
    h.apply_connection("crm", "src", json!({}))
        .await
        .expect("applying");
    wait_for(
        &h.secrets_api(),
        "crm",
        SETTLE,
        "accountId removed",
        |s: &Secret| secret_text(s, "accountId").is_none() && secret_text(s, "authToken").is_some(),
    )
    .await;
    // Settled: no write loop over a key the apply could not remove.
    tokio::time::sleep(QUIET).await;
    let writes = |m: &str| series(m, "trackvia_secret_writes_total").unwrap_or(0.0);
    let before = writes(&h.metrics().await);
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        writes(&h.metrics().await),
        before,
        "Secret writes after the change settled"
    );
    h.finish().await;
}

/// An adopted Secret: the others' keys kept, no owner reference, marked as adopted.
fn assert_adopted(s: &Secret) {
    assert!(
        keeps_theirs(s),
        "{}",
        trackvia_testsupport::kube::describe_object(s)
    );
    assert!(
        s.metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty()),
        "an adopted Secret must not be garbage-collectable"
    );
    assert_eq!(
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ADOPTED_ANNOTATION))
            .map(String::as_str),
        Some("Delete")
    );
}
