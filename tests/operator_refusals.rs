//! What the operator refuses or never does, on the real test bed with the fake TrackVia: the
//! account header it sends, hosts outside the allow list, schema-invalid connections, and a
//! Secret it does not own. Each test runs its own operator and ends with a leak audit.

mod common;

use std::time::Duration;

use common::{Harness, condition, secret_text};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use trackvia_testsupport::fake::Behavior;

#[tokio::test]
async fn account_id_is_sent_as_the_account_header() {
    let mut h = Harness::start("tvc-account", &[]).await;
    let (key, token) = h.credential(Behavior::Revoked);
    h.fake.set_for_account(&key, &token, 777, Behavior::Valid);
    h.put_source("src", &key, &token).await;
    h.apply_connection("sandbox", "src", json!({"accountId": 777}))
        .await
        .expect("applying");
    h.wait_ready("sandbox", "True", "Verified").await;
    let r = h.fake.last_request().expect("a request");
    assert_eq!(r.header("account-id"), Some("777"));
    assert_eq!(r.account_id, Some(777));
    let out = h.secrets_api().get("sandbox").await.unwrap();
    assert_eq!(secret_text(&out, "accountId").as_deref(), Some("777"));
    h.finish().await;
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_never_called() {
    let mut h = Harness::start("tvc-allow", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    for (name, host) in [
        ("internal", "metadata.internal"),
        ("ip", "127.0.0.1"),
        ("port", "localhost:1"),
    ] {
        h.apply_connection(name, "src", json!({"host": host}))
            .await
            .expect("applying");
        let tvc = h.wait_ready(name, "False", "HostNotAllowed").await;
        assert!(condition(&tvc, "Ready").message.contains("allowed hosts"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.fake.total_calls(), 0);
    h.finish().await;
}

#[tokio::test]
async fn the_server_refuses_schema_invalid_connections() {
    let h = Harness::start("tvc-schema", &[]).await;
    let cases = [
        (json!({"host": "https://acme.trackvia.com"}), "spec.host"),
        (json!({"host": "acme.trackvia.com/openapi"}), "spec.host"),
        (
            json!({"tokenExpiresOn": "31/03/2027"}),
            "spec.tokenExpiresOn",
        ),
        (json!({"verifyInterval": "soon"}), "spec.verifyInterval"),
        (json!({"publish": "Sometimes"}), "spec.publish"),
        (
            json!({"target": {"deletionPolicy": "Orphan"}}),
            "spec.target.deletionPolicy",
        ),
        (json!({"accountId": -4}), "spec.accountId"),
    ];
    for (i, (spec, field)) in cases.iter().enumerate() {
        let err = h
            .apply_connection(&format!("bad-{i}"), "src", spec.clone())
            .await
            .expect_err(&format!("the server accepted {spec}"));
        let text = err.to_string();
        assert!(
            text.contains(field),
            "{spec}: error does not name {field}: {text}"
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn a_secret_the_operator_does_not_own_is_never_overwritten() {
    let mut h = Harness::start("tvc-conflict", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken"}, "stringData": {"mine": "keep-me"}});
    h.secrets_api()
        .patch(
            "taken",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&foreign),
        )
        .await
        .unwrap();
    h.apply_connection("crm", "src", json!({"target": {"name": "taken"}}))
        .await
        .expect("applying");
    let tvc = h.wait_ready("crm", "False", "TargetConflict").await;
    assert_eq!(condition(&tvc, "SecretSynced").reason, "TargetConflict");
    assert_eq!(condition(&tvc, "Verified").status, "True");
    let s: Secret = h.secrets_api().get("taken").await.unwrap();
    assert_eq!(secret_text(&s, "mine").as_deref(), Some("keep-me"));
    assert!(secret_text(&s, "authToken").is_none());
    assert!(
        s.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("app.kubernetes.io/managed-by"))
    );
    h.finish().await;
}

// Multi-threaded: the fake TrackVia must keep serving while the test waits on the child process.
