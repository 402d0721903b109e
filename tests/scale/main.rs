//! A CI-sized run of the scale benchmark (`hack/bench`) on the real test bed: 200 connections
//! sharing 10 credentials, with 500 unrelated Secrets in the watched namespace. It asserts the
//! invariants that are not timings: every connection Ready with its output Secret, exactly one
//! TrackVia call per credential, shared source Secrets read once (not once per connection), no
//! writes at all in a steady window afterwards, a restart that costs nothing (the new process
//! reports its initial sync done without a TrackVia call or a write), unrelated Secrets
//! never reaching the operator, and connections applied again after a delete creating their
//! output Secrets without reading first.

#[path = "../common/mod.rs"]
mod common;
mod recreate;
mod restart;
mod steady;

use recreate::recreated_connections_create_their_secrets;
use restart::restart_costs_nothing;
use steady::{
    a_steady_window_writes_nothing, requests_at_the_floor, unrelated_secrets_cost_nothing,
};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Harness, secret_text, testbed_dir};
use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use trackvia_testsupport::audit::audited_writes;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::metrics::series;

const CONNECTIONS: usize = 200;
const CREDENTIALS: usize = 10;
const UNRELATED: usize = 500;
/// Concurrency of the test's own writes.
const WRITERS: usize = 16;
/// Longest wait for every connection to be Ready.
const CONVERGE_WITHIN: Duration = Duration::from_secs(90);
/// Pause after convergence, for reconciles already queued (by the operator's own Secret
/// writes) to run; they must not write either, but they are not "steady state" yet.
const SETTLE: Duration = Duration::from_secs(3);
const STEADY_WINDOW: Duration = Duration::from_secs(10);

fn unrelated_secret(i: usize) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("unrelated-{i}")),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "something-else".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(format!("not-a-trackvia-credential-{i}").into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// `write(i)` for every unrelated Secret, `WRITERS` at a time; fails naming what failed.
async fn for_each_unrelated<F, Fut>(what: &str, write: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let failures: Vec<String> = stream::iter(0..UNRELATED)
        .map(|i| {
            let done = write(i);
            async move { done.await.err().map(|e| format!("unrelated-{i}: {e}")) }
        })
        .buffer_unordered(WRITERS)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{what} unrelated Secrets: {failures:?}"
    );
}

/// A counter of the operator's `/metrics`.
fn counter(metrics: &str, name: &str) -> u64 {
    series(metrics, name).unwrap_or(0.0) as u64
}

/// The status and Secret writes the operator counts.
async fn writes(h: &Harness) -> (u64, u64) {
    let metrics = h.metrics().await;
    (
        counter(&metrics, "trackvia_status_writes_total"),
        counter(&metrics, "trackvia_secret_writes_total"),
    )
}

/// resourceVersion of every connection and every output Secret, by kind/name.
async fn resource_versions(h: &Harness) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let connections = h
        .connections()
        .list(&ListParams::default())
        .await
        .expect("listing connections");
    for c in connections {
        out.insert(
            format!("TrackViaConnection/{}", c.name_any()),
            c.resource_version().unwrap_or_default(),
        );
    }
    let secrets = h
        .secrets_api()
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=trackvia-operator"))
        .await
        .expect("listing output Secrets");
    for s in secrets {
        out.insert(
            format!("Secret/{}", s.name_any()),
            s.resource_version().unwrap_or_default(),
        );
    }
    out
}

/// Connections not yet Ready with an output Secret holding `tokens[i % K]`.
async fn not_converged(h: &Harness, tokens: &[String]) -> Vec<String> {
    let connections = h
        .connections()
        .list(&ListParams::default())
        .await
        .expect("listing connections");
    let ready: std::collections::HashSet<String> = connections
        .iter()
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.condition("Ready"))
                .is_some_and(|r| r.status == "True" && r.reason == "Verified")
        })
        .map(|c| c.name_any())
        .collect();
    let secrets = h
        .secrets_api()
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=trackvia-operator"))
        .await
        .expect("listing output Secrets");
    let published: BTreeMap<String, Option<String>> = secrets
        .iter()
        .map(|s| (s.name_any(), secret_text(s, "authToken")))
        .collect();
    (0..CONNECTIONS)
        .map(|i| (format!("conn-{i}"), &tokens[i % CREDENTIALS]))
        .filter(|(name, token)| {
            !ready.contains(name)
                || published.get(name).and_then(|t| t.as_deref()) != Some(token.as_str())
        })
        .map(|(name, _)| name)
        .collect()
}

#[tokio::test]
async fn many_connections_share_few_credentials_without_churn() {
    let started = Instant::now();
    let mut h = Harness::start(
        "tvc-scale",
        &[
            "--log-level",
            "info",
            "--concurrency",
            "16",
            "--rate-limit",
            "60",
        ],
    )
    .await;
    let creds: Vec<(String, String)> = (0..CREDENTIALS)
        .map(|_| h.credential(Behavior::Valid))
        .collect();
    for (i, (key, token)) in creds.iter().enumerate() {
        h.put_source(&format!("src-{i}"), key, token).await;
    }
    let tokens: Vec<String> = creds.iter().map(|(_, t)| t.clone()).collect();

    // Unrelated Secrets in the watched namespace: they must cost nothing.
    let secrets = h.secrets_api();
    for_each_unrelated("creating", |i| {
        let secrets = secrets.clone();
        async move {
            secrets
                .create(&PostParams::default(), &unrelated_secret(i))
                .await
                .map(|_| ())
        }
    })
    .await;
    apply_connections(&h).await;
    all_converge(&h, &tokens).await;
    let converged = started.elapsed();

    requests_at_the_floor(&h, &creds).await;
    let versions = a_steady_window_writes_nothing(&h).await;
    restart_costs_nothing(&mut h, &versions).await;
    unrelated_secrets_cost_nothing(&mut h, &secrets).await;
    recreated_connections_create_their_secrets(&h, &tokens).await;
    eprintln!(
        "scale: {CONNECTIONS} connections converged {:.1} s after the start; total {:.1} s",
        converged.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    h.finish().await;
}

/// `conn-i` reading `src-(i % K)`, `WRITERS` applied at a time.
async fn apply_connections(h: &Harness) {
    let failures: Vec<String> = stream::iter(0..CONNECTIONS)
        .map(|i| async move {
            h.apply_connection(
                &format!("conn-{i}"),
                &format!("src-{}", i % CREDENTIALS),
                json!({"tokenExpiresOn": "2099-12-31", "verifyInterval": "1h"}),
            )
            .await
            .err()
            .map(|e| format!("conn-{i}: {e}"))
        })
        .buffer_unordered(WRITERS)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    assert!(failures.is_empty(), "applying connections: {failures:?}");
}

/// Every connection Ready, with its output Secret carrying its credential.
async fn all_converge(h: &Harness, tokens: &[String]) {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let missing = not_converged(h, tokens).await;
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {CONNECTIONS} connections not Ready with their output Secret after {CONVERGE_WITHIN:?}, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
