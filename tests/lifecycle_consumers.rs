//! Credential lifecycle on the real bed, what follows a change: rollout restarts of
//! consumers once per real change (never on an operator restart), a renamed target moving
//! its Secret, and source Secrets watched by name or, over the limit, by namespace.

mod common;

use std::time::Duration;

use common::{Harness, SETTLE};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::deployment;
use trackvia_testsupport::kube::{wait_for, wait_for_absent};
use trackvia_testsupport::metrics::series;

#[tokio::test]
async fn consumers_restart_once_per_real_change_and_never_on_operator_restart() {
    let mut h = Harness::start("tvc-restart", &["--restart-debounce", "2s"]).await;
    let (keys, kx) = connections_with_consumers(&mut h).await;
    rotate_all_and_wait_for_restarts(&mut h, &keys, &kx).await;
    operator_restart_writes_nothing(&mut h).await;
    quick_rotations_restart_once(&mut h, &keys[0]).await;
    h.finish().await;
}

const N: usize = 20;

/// `N` connections, each restarting its own Deployment, and one whose target does not exist:
/// a warning, not an error loop. All Ready, no consumer restarted by the first publish. The
/// API keys of the `N`, and that of the last one.
async fn connections_with_consumers(h: &mut Harness) -> (Vec<String>, String) {
    let deployments: kube::Api<Deployment> = h.ns.api();
    let mut keys = Vec::new();
    for i in 0..N {
        let (key, token) = h.credential(Behavior::Valid);
        h.put_source(&format!("src-{i}"), &key, &token).await;
        deployments
            .create(&PostParams::default(), &deployment(&format!("app-{i}")))
            .await
            .unwrap();
        h.apply_connection(
            &format!("c-{i}"),
            &format!("src-{i}"),
            json!({"rolloutRestartTargets": [{"kind": "Deployment", "name": format!("app-{i}")}]}),
        )
        .await
        .expect("applying");
        keys.push(key);
    }
    // A connection whose target does not exist: a warning, not an error loop.
    let (kx, _tx) = h
        .connect(
            "c-x",
            "src-x",
            Behavior::Valid,
            json!({"rolloutRestartTargets": [{"kind": "StatefulSet", "name": "nowhere"}]}),
        )
        .await;
    for i in 0..N {
        h.wait_ready(&format!("c-{i}"), "True", "Verified").await;
    }
    h.wait_ready("c-x", "True", "Verified").await;
    for i in 0..N {
        let d = deployments.get(&format!("app-{i}")).await.unwrap();
        assert_eq!(
            d.metadata.generation,
            Some(1),
            "first publish restarts nothing"
        );
    }
    (keys, kx)
}

/// Rotates every token at once: each consumer restarts exactly once; the missing target is
/// reported on its connection.
async fn rotate_all_and_wait_for_restarts(h: &mut Harness, keys: &[String], kx: &str) {
    let deployments: kube::Api<Deployment> = h.ns.api();
    let mut new_tokens = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let token = common::secret_value("t");
        h.secrets.push(token.clone());
        h.fake.set(key, &token, Behavior::Valid);
        h.rotate_source(&format!("src-{i}"), key, &token).await;
        new_tokens.push(token);
    }
    let t = common::secret_value("t");
    h.secrets.push(t.clone());
    h.fake.set(kx, &t, Behavior::Valid);
    h.rotate_source("src-x", kx, &t).await;
    for (i, token) in new_tokens.iter().enumerate() {
        let secret = h
            .wait_published(&format!("c-{i}"), token, SETTLE, "rotated Secret")
            .await;
        let hash =
            secret.metadata.annotations.as_ref().unwrap()["trackvia.io/content-hash"].clone();
        let d = wait_for(
            &deployments,
            &format!("app-{i}"),
            SETTLE,
            "the consumer restarted",
            |d: &Deployment| {
                d.spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref())
                    .is_some_and(|a| {
                        a.get("trackvia.io/credentials-hash") == Some(&hash)
                            && a.contains_key("trackvia.io/restartedAt")
                    })
            },
        )
        .await;
        assert_eq!(d.metadata.generation, Some(2), "restarted exactly once");
    }
    h.wait_connection("c-x", "RolloutRestart=False for a missing target", |t| {
        t.status
            .as_ref()
            .and_then(|s| s.condition("RolloutRestart"))
            .is_some_and(|c| c.status == "False" && c.message.contains("nowhere"))
    })
    .await;
}

/// Every connection, Secret and Deployment of the namespace with its resourceVersion.
async fn snapshot(h: &Harness) -> Vec<String> {
    let mut v = Vec::new();
    versions(&mut v, "tvc", h.connections()).await;
    versions(&mut v, "secret", h.secrets_api()).await;
    versions(&mut v, "deploy", h.ns.api::<Deployment>()).await;
    v.sort();
    v
}

/// `kind/name@resourceVersion` of every object `api` lists, added to `out`.
async fn versions<K>(out: &mut Vec<String>, kind: &str, api: kube::Api<K>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for x in api.list(&Default::default()).await.unwrap().items {
        let meta = x.meta();
        out.push(format!(
            "{kind}/{}@{}",
            meta.name.clone().unwrap(),
            meta.resource_version.clone().unwrap()
        ));
    }
}

/// Restarting the operator writes nothing and restarts nothing.
async fn operator_restart_writes_nothing(h: &mut Harness) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = snapshot(h).await;
    let calls = h.fake.total_calls();
    h.restart_operator().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = snapshot(h).await;
    assert_eq!(before, after, "an operator restart wrote to the API server");
    assert_eq!(
        h.fake.total_calls(),
        calls,
        "an operator restart called TrackVia"
    );
}

/// Three rotations in quick succession restart the consumer once, for the last one.
async fn quick_rotations_restart_once(h: &mut Harness, key: &str) {
    let deployments: kube::Api<Deployment> = h.ns.api();
    let mut last = String::new();
    for _ in 0..3 {
        last = common::secret_value("t");
        h.secrets.push(last.clone());
        h.fake.set(key, &last, Behavior::Valid);
        h.rotate_source("src-0", key, &last).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let secret = h
        .wait_published("c-0", &last, SETTLE, "the last rotation published")
        .await;
    let hash = secret.metadata.annotations.as_ref().unwrap()["trackvia.io/content-hash"].clone();
    let d = wait_for(
        &deployments,
        "app-0",
        SETTLE,
        "the consumer restarted for the last change",
        |d: &Deployment| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .is_some_and(|a| a.get("trackvia.io/credentials-hash") == Some(&hash))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d2 = deployments.get("app-0").await.unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(3),
        "three quick changes, one restart"
    );
    assert_eq!(d2.metadata.generation, Some(3));
}

#[tokio::test]
async fn renaming_the_target_moves_the_secret_and_removes_the_old_one() {
    let mut h = Harness::start("tvc-rename", &[]).await;
    let (_key, token) = h
        .connect(
            "crm",
            "src",
            Behavior::Valid,
            json!({"target": {"name": "first"}}),
        )
        .await;
    h.wait_ready("crm", "True", "Verified").await;
    assert!(h.secrets_api().get_opt("first").await.unwrap().is_some());

    h.apply_connection("crm", "src", json!({"target": {"name": "second"}}))
        .await
        .expect("applying");
    let out = h
        .wait_published("second", &token, SETTLE, "the Secret under its new name")
        .await;
    assert!(out.metadata.owner_references.is_some());
    wait_for_absent(&h.secrets_api(), "first", SETTLE, "the old Secret removed").await;
    let t = h.wait_ready("crm", "True", "Verified").await;
    assert_eq!(t.status.unwrap().secret_name.as_deref(), Some("second"));
    h.finish().await;
}

async fn wait_source_watches(h: &Harness, by_name: f64, by_namespace: f64) {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let m = h.metrics().await;
        let seen = (
            series(&m, r#"trackvia_source_secret_watches{selector="name"}"#),
            series(
                &m,
                r#"trackvia_source_secret_watches{selector="namespace"}"#,
            ),
        );
        if seen == (Some(by_name), Some(by_namespace)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "source watches (by name, namespace-wide) are {seen:?}, expected ({by_name}, {by_namespace})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A new valid token for `key` in `source`, then wait until `connection` publishes it.
async fn rotate_and_wait(h: &mut Harness, key: &str, source: &str, connection: &str) {
    let rotated = common::secret_value("t");
    h.secrets.push(rotated.clone());
    h.fake.set(key, &rotated, Behavior::Valid);
    h.rotate_source(source, key, &rotated).await;
    h.wait_published(connection, &rotated, SETTLE, "the rotated token published")
        .await;
}

#[tokio::test]
async fn source_secrets_are_watched_by_name_or_by_namespace_over_the_limit() {
    let mut h = Harness::start("tvc-sources", &["--source-watch-limit", "2"]).await;
    let mut keys = Vec::new();
    for i in 0..3 {
        let (key, _token) = h
            .connect(
                &format!("conn-{i}"),
                &format!("src-{i}"),
                Behavior::Valid,
                json!({}),
            )
            .await;
        keys.push(key);
    }
    for i in 0..3 {
        h.wait_ready(&format!("conn-{i}"), "True", "Verified").await;
    }
    // Three Secrets referenced, limit two: one namespace-wide watch.
    wait_source_watches(&h, 0.0, 1.0).await;
    rotate_and_wait(&mut h, &keys[2], "src-2", "conn-2").await;

    // Two referenced: one watch per Secret, by name.
    h.connections()
        .delete("conn-2", &DeleteParams::default())
        .await
        .expect("deleting conn-2");
    wait_source_watches(&h, 2.0, 0.0).await;
    rotate_and_wait(&mut h, &keys[1], "src-1", "conn-1").await;

    // Deleted and created again: noticed both times through the name watch.
    h.secrets_api()
        .delete("src-0", &DeleteParams::default())
        .await
        .expect("deleting src-0");
    h.wait_ready("conn-0", "False", "CredentialsNotFound").await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src-0", &key, &token).await;
    h.wait_ready("conn-0", "True", "Verified").await;
    h.wait_published("conn-0", &token, SETTLE, "the recreated source published")
        .await;
    h.finish().await;
}
