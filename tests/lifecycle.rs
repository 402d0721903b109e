//! Credential lifecycle on the real bed: exact expiry, damping of transient
//! failures, rotation, forced checks, drift repair, deletion policies and
//! rollout restarts of consumers.

mod common;

use std::time::Duration;

use common::{Harness, SETTLE, secret_text};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::deployment;
use trackvia_testsupport::kube::{wait_for, wait_for_absent};
use trackvia_testsupport::metrics::series;

fn ready(t: &TrackViaConnection) -> Option<(String, String)> {
    t.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| (c.status.to_string(), c.reason.clone()))
}

fn cond_time(t: &TrackViaConnection, type_: &str) -> jiff::Timestamp {
    let c = t
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .expect("condition");
    c.last_transition_time.parse().expect("RFC 3339")
}

#[tokio::test]
async fn expiry_and_warning_happen_at_the_exact_instant_without_a_call() {
    // Shift the operator's clock so that midnight UTC of the day after tomorrow is 12 s away.
    let real_now = jiff::Timestamp::now();
    let day = real_now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap();
    let instant = day.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
    let offset = instant.duration_since(real_now).as_secs() - 12;
    let offset_arg = format!("{offset}s");
    let mut h = Harness::start("tvc-expiry", &["--clock-offset", &offset_arg]).await;
    h.connect(
        "crm",
        "src",
        Behavior::Valid,
        json!({"tokenExpiresOn": day.to_string(), "expiryWarning": "6s"}),
    )
    .await;
    let t = h.wait_ready("crm", "True", "Verified").await;
    let status = t.status.clone().unwrap();
    assert_eq!(status.token_expires_at, Some(format!("{day}T00:00:00Z")));
    let warning_at: jiff::Timestamp = status.expiry_warning_at.clone().unwrap().parse().unwrap();
    assert_eq!(instant.duration_since(warning_at).as_secs(), 6);

    let t = h
        .wait_connection("crm", "Expiring=True", |t| {
            t.status
                .as_ref()
                .and_then(|s| s.condition("Expiring"))
                .is_some_and(|c| c.status == "True")
        })
        .await;
    assert_eq!(
        ready(&t),
        Some(("True".into(), "Verified".into())),
        "Ready stays True while expiring"
    );
    let late = cond_time(&t, "Expiring")
        .duration_since(warning_at)
        .as_secs_f64();
    assert!(
        (0.0..=2.0).contains(&late),
        "Expiring turned True {late} s after the warning instant"
    );

    let t = h.wait_ready("crm", "False", "Expired").await;
    let late = cond_time(&t, "Ready").duration_since(instant).as_secs_f64();
    assert!(
        (0.0..=2.0).contains(&late),
        "Expired {late} s after the expiry instant"
    );
    assert_eq!(
        h.fake.total_calls(),
        1,
        "only the first verification reached TrackVia"
    );
    h.finish().await;
}

#[tokio::test]
async fn transient_failures_are_damped_then_unreachable_then_recover() {
    let mut h = Harness::start(
        "tvc-damp",
        &[
            "--failure-threshold",
            "3",
            "--failure-grace",
            "6s",
            "--retry-base",
            "1s",
        ],
    )
    .await;
    let (key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;

    h.fake.set(&key, &token, Behavior::ServerError);
    let outage = std::time::Instant::now();
    h.request_verification("crm").await;
    // Inside the window Ready keeps its last answer.
    while outage.elapsed() < Duration::from_secs(5) {
        let t = h.connections().get("crm").await.unwrap();
        assert_eq!(
            ready(&t),
            Some(("True".into(), "Verified".into())),
            "Ready flipped inside the grace window"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let t = h.wait_ready("crm", "False", "Unreachable").await;
    let status = t.status.unwrap();
    assert!(
        status.consecutive_failures >= 3,
        "{}",
        status.consecutive_failures
    );
    let calls = h.fake.total_calls();
    assert!(calls <= 8, "backoff keeps retries few: {calls} calls");

    h.fake.set(&key, &token, Behavior::Valid);
    h.wait_ready("crm", "True", "Verified").await;
    let t = h.connections().get("crm").await.unwrap();
    assert_eq!(t.status.unwrap().consecutive_failures, 0);
    h.finish().await;
}

#[tokio::test]
async fn rotation_publishes_only_verified_tokens_and_hash_tracks_values() {
    let mut h = Harness::start("tvc-rotate", &[]).await;
    let (key, t1) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;
    let out = h.secrets_api().get("crm").await.unwrap();
    let hash1 = out.metadata.annotations.as_ref().unwrap()["trackvia.io/content-hash"].clone();

    // A rejected new token is not published; the old one stays.
    let t2 = common::secret_value("t");
    h.secrets.push(t2.clone());
    h.fake.set(&key, &t2, Behavior::Revoked);
    h.rotate_source("src", &key, &t2).await;
    let t = h.wait_ready("crm", "False", "Unauthorized").await;
    assert!(
        t.status
            .as_ref()
            .unwrap()
            .condition("Ready")
            .unwrap()
            .message
            .contains("keeps the last verified")
    );
    let out = h.secrets_api().get("crm").await.unwrap();
    assert_eq!(secret_text(&out, "authToken").as_deref(), Some(t1.as_str()));

    // A good new token is published at once; the hash changes.
    let t3 = common::secret_value("t");
    h.secrets.push(t3.clone());
    h.fake.set(&key, &t3, Behavior::Valid);
    h.rotate_source("src", &key, &t3).await;
    h.wait_ready("crm", "True", "Verified").await;
    let out = h
        .wait_published("crm", &t3, SETTLE, "the new token published")
        .await;
    let hash3 = out.metadata.annotations.as_ref().unwrap()["trackvia.io/content-hash"].clone();
    assert_ne!(hash1, hash3);

    // Rewriting the same values changes nothing.
    let rv = out.metadata.resource_version.clone();
    h.rotate_source("src", &key, &t3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.secrets_api()
            .get("crm")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );

    // publish: Always publishes even a rejected token, and says so.
    let (_key4, t4) = h
        .connect(
            "always",
            "src4",
            Behavior::Revoked,
            json!({"publish": "Always"}),
        )
        .await;
    h.wait_ready("always", "False", "Unauthorized").await;
    let out = wait_for(
        &h.secrets_api(),
        "always",
        SETTLE,
        "published anyway",
        |_| true,
    )
    .await;
    assert_eq!(secret_text(&out, "authToken").as_deref(), Some(t4.as_str()));
    h.finish().await;
}

#[tokio::test]
async fn a_forced_check_runs_once() {
    let mut h = Harness::start("tvc-force", &[]).await;
    h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;
    assert_eq!(h.fake.total_calls(), 1);
    h.request_verification("crm").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.fake.total_calls() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.fake.total_calls(), 2, "the forced check reached TrackVia");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.fake.total_calls(), 2, "and only once");
    h.finish().await;
}

#[tokio::test]
async fn edited_or_deleted_output_secrets_are_repaired() {
    let mut h = Harness::start("tvc-drift", &[]).await;
    let (_key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;
    let api = h.secrets_api();

    let edit = json!({"data": {"authToken": common::base64("hand-edited")}});
    api.patch("crm", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    h.wait_published("crm", &token, Duration::from_secs(10), "the edit repaired")
        .await;

    api.delete("crm", &DeleteParams::default()).await.unwrap();
    h.wait_published(
        "crm",
        &token,
        Duration::from_secs(10),
        "the deleted Secret recreated",
    )
    .await;
    assert_eq!(h.fake.total_calls(), 1, "repairs need no TrackVia call");
    h.finish().await;
}

#[tokio::test]
async fn deletion_policies_retain_or_delete_the_output_secret() {
    let mut h = Harness::start("tvc-delete", &[]).await;
    let (_key, token) = h
        .connect(
            "keep",
            "src",
            Behavior::Valid,
            json!({"target": {"deletionPolicy": "Retain"}}),
        )
        .await;
    h.apply_connection("drop", "src", json!({}))
        .await
        .expect("applying");
    h.wait_ready("keep", "True", "Verified").await;
    h.wait_ready("drop", "True", "Verified").await;
    let kept = h.secrets_api().get("keep").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty())
    );

    for name in ["keep", "drop"] {
        h.connections()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    wait_for_absent(
        &h.secrets_api(),
        "drop",
        SETTLE,
        "the garbage collector to delete the Secret",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = h
        .secrets_api()
        .get("keep")
        .await
        .expect("Retain keeps the Secret");
    assert_eq!(
        secret_text(&kept, "authToken").as_deref(),
        Some(token.as_str())
    );
    h.finish().await;
}

#[tokio::test]
async fn consumers_restart_once_per_real_change_and_never_on_operator_restart() {
    const N: usize = 20;
    let mut h = Harness::start("tvc-restart", &["--restart-debounce", "2s"]).await;
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

    // Rotate every token at once.
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
    h.fake.set(&kx, &t, Behavior::Valid);
    h.rotate_source("src-x", &kx, &t).await;
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

    // Restart the operator: nothing is written, nothing restarted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snapshot = |h: &Harness| {
        let (c, s, d) = (h.connections(), h.secrets_api(), h.ns.api::<Deployment>());
        async move {
            let mut v = Vec::new();
            for t in c.list(&Default::default()).await.unwrap().items {
                v.push(format!(
                    "tvc/{}@{}",
                    t.metadata.name.unwrap(),
                    t.metadata.resource_version.unwrap()
                ));
            }
            for x in s.list(&Default::default()).await.unwrap().items {
                v.push(format!(
                    "secret/{}@{}",
                    x.metadata.name.unwrap(),
                    x.metadata.resource_version.unwrap()
                ));
            }
            for x in d.list(&Default::default()).await.unwrap().items {
                v.push(format!(
                    "deploy/{}@{}",
                    x.metadata.name.unwrap(),
                    x.metadata.resource_version.unwrap()
                ));
            }
            v.sort();
            v
        }
    };
    let before = snapshot(&h).await;
    let calls = h.fake.total_calls();
    h.restart_operator().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = snapshot(&h).await;
    assert_eq!(before, after, "an operator restart wrote to the API server");
    assert_eq!(
        h.fake.total_calls(),
        calls,
        "an operator restart called TrackVia"
    );

    // Three rotations in quick succession restart the consumer once, for the last one.
    let mut last = String::new();
    for _ in 0..3 {
        last = common::secret_value("t");
        h.secrets.push(last.clone());
        h.fake.set(&keys[0], &last, Behavior::Valid);
        h.rotate_source("src-0", &keys[0], &last).await;
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
    h.finish().await;
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
