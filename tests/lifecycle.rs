//! Credential lifecycle on the real bed: exact expiry, damping of transient
//! failures, rotation, forced checks, drift repair and deletion policies. Rollout
//! restarts of consumers, renamed targets and source watches are in
//! lifecycle_consumers.rs.

mod common;

use std::time::Duration;

use common::converge::ready;
use common::{Harness, SETTLE, secret_text};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::{wait_for, wait_for_absent};

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
    assert_eq!(
        status.token_expires_at.as_deref(),
        Some(format!("{day}T00:00:00Z").as_str())
    );
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

    // The status records the version the operator published; an edit while no operator
    // runs leaves the Secret at another one, so the next process reads it and repairs it.
    let version = api.get("crm").await.unwrap().resource_version();
    let recorded = |tvc: &TrackViaConnection| {
        let published = tvc.status.as_ref()?.published_version.as_deref()?;
        Some(published.split_once('/')?.0.to_string())
    };
    wait_for(
        &h.connections(),
        "crm",
        Duration::from_secs(10),
        "status.publishedVersion naming the Secret's version",
        |tvc| version.is_some() && recorded(tvc) == version,
    )
    .await;
    h.restart_operator_after(async {
        api.patch("crm", &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .expect("editing the Secret");
    })
    .await;
    h.wait_published(
        "crm",
        &token,
        Duration::from_secs(10),
        "the edit made while the operator was stopped repaired",
    )
    .await;
    assert_eq!(h.fake.total_calls(), 1, "repairs need no TrackVia call");
    h.finish().await;
}

/// The status records the version of the source Secret its credentials were read at. A
/// restart with the Secret still there reads nothing (tests/scale/restart.rs); a rotation
/// while no operator runs leaves the Secret at another version, so the next process reads
/// it, checks the new token and publishes it.
#[tokio::test]
async fn a_rotation_while_no_operator_runs_is_published_by_the_next() {
    let mut h = Harness::start("tvc-rotated-down", &[]).await;
    h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;
    let sources = h.secrets_api();
    let version = sources.get("src").await.unwrap().resource_version();
    wait_for(
        &h.connections(),
        "crm",
        Duration::from_secs(10),
        "status.credentialsVersion naming the source Secret's version",
        |tvc| {
            let recorded = tvc
                .status
                .as_ref()
                .and_then(|s| s.credentials_version.as_deref());
            version.is_some() && recorded == version.as_deref()
        },
    )
    .await;
    let calls = h.fake.total_calls();
    let (key, token) = h.credential(Behavior::Valid);
    let rotation = json!({"stringData": {"apiKey": key, "authToken": token}});
    h.restart_operator_after(async {
        sources
            .patch("src", &PatchParams::default(), &Patch::Merge(&rotation))
            .await
            .expect("rotating the source Secret");
    })
    .await;
    h.wait_published(
        "crm",
        &token,
        Duration::from_secs(15),
        "the rotation made while the operator was stopped published",
    )
    .await;
    assert_eq!(
        h.fake.total_calls(),
        calls + 1,
        "one check of the new token"
    );
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
