//! Faults on the real bed: the operator killed with SIGKILL three times while 300
//! connections converge loses no output, writes no duplicate and restarts no consumer
//! more than once. Every test ends with the harness's leak audit (logs of every operator
//! process, events, statuses, metrics). The API server going away is in
//! faults_api_server.rs, a TrackVia outage in faults_outage.rs.

mod common;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::converge::*;
use common::{Harness, secret_text};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::deployment;

// ---------------------------------------------------------------------------------------------
// 1. The operator is killed (SIGKILL) three times while 300 connections converge.
// ---------------------------------------------------------------------------------------------

const CONNECTIONS: usize = 300;
/// Distinct credentials, each in its own source Secret shared by several connections.
const CREDENTIALS: usize = 36;
/// Credentials 0..STEADY never change; STEADY..CREDENTIALS are rotated once.
const STEADY: usize = 30;

fn connection_name(i: usize) -> String {
    format!("c-{i:03}")
}

/// Connection `i` reads credential `i % CREDENTIALS`; the first CREDENTIALS
/// connections each restart their own Deployment `app-{i}`.
fn credential_of(i: usize) -> usize {
    i % CREDENTIALS
}

/// Every output Secret matches its source exactly once: one managed Secret per
/// connection, no strays, the current key and token, one owner reference, and
/// a status that points at it. Returns the resourceVersion of each Secret.
async fn outputs_match(
    h: &Harness,
    creds: &[(String, String)],
) -> Result<BTreeMap<String, String>, String> {
    let managed = h
        .secrets_api()
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=trackvia-operator"))
        .await
        .map_err(|e| format!("listing Secrets: {e}"))?;
    let connections: BTreeMap<String, TrackViaConnection> = h
        .connections()
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing connections: {e}"))?
        .items
        .into_iter()
        .map(|t| (t.metadata.name.clone().unwrap_or_default(), t))
        .collect();
    let secrets: BTreeMap<String, Secret> = managed
        .items
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
        .collect();
    let expected: BTreeSet<String> = (0..CONNECTIONS).map(connection_name).collect();
    let strays: Vec<_> = secrets.keys().filter(|n| !expected.contains(*n)).collect();
    if !strays.is_empty() {
        return Err(format!("managed Secrets without a connection: {strays:?}"));
    }
    let host = h.fake.host();
    let mut versions = BTreeMap::new();
    for i in 0..CONNECTIONS {
        let name = connection_name(i);
        let (key, token) = &creds[credential_of(i)];
        let s = secrets
            .get(&name)
            .ok_or_else(|| format!("output Secret {name} is missing"))?;
        let t = connections
            .get(&name)
            .ok_or_else(|| format!("connection {name} is missing"))?;
        let annotations = s.metadata.annotations.clone().unwrap_or_default();
        if annotations.get("trackvia.io/connection") != Some(&name) {
            return Err(format!(
                "{name}: published for {:?}",
                annotations.get("trackvia.io/connection")
            ));
        }
        for (k, want) in [
            ("apiKey", key.clone()),
            ("authToken", token.clone()),
            ("host", host.clone()),
            ("baseUrl", format!("https://{host}")),
        ] {
            if secret_text(s, k).as_deref() != Some(want.as_str()) {
                return Err(format!("{name}: key {k} is stale or wrong"));
            }
        }
        let owners = s.metadata.owner_references.clone().unwrap_or_default();
        if owners.len() != 1 || Some(&owners[0].uid) != t.metadata.uid.as_ref() {
            return Err(format!(
                "{name}: {} owner references, expected one to its connection",
                owners.len()
            ));
        }
        let status = t.status.clone().unwrap_or_default();
        let hash = annotations.get("trackvia.io/content-hash");
        if !is_ready(t)
            || status.secret_name.as_deref() != Some(name.as_str())
            || status.published_hash.as_deref() != hash.map(String::as_str)
        {
            return Err(format!(
                "{name}: status {:?} does not describe its Secret",
                ready(t)
            ));
        }
        let version = s.metadata.resource_version.clone().unwrap_or_default();
        versions.insert(name, version);
    }
    Ok(versions)
}

async fn wait_outputs_match(
    h: &Harness,
    creds: &[(String, String)],
    timeout: Duration,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match outputs_match(h, creds).await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("output Secrets still wrong after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn generation_and_hash(d: &Deployment) -> (Option<i64>, Option<String>) {
    let hash = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("trackvia.io/credentials-hash").cloned());
    (d.metadata.generation, hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_converging_loses_duplicates_and_restarts_nothing() {
    let started = Instant::now();
    let mut h = Harness::start("tvc-crash", &["--rate-limit", "1000"]).await;
    let mut creds = sources_and_consumers(&mut h).await;
    let deployments: Api<Deployment> = h.ns.api();
    create_while_killed_twice(&mut h).await;

    let names: BTreeSet<String> = (0..CONNECTIONS).map(connection_name).collect();
    wait_all_ready(&h, &names, Duration::from_secs(240)).await;
    let before = wait_outputs_match(&h, &creds, Duration::from_secs(60)).await;
    eprintln!(
        "{CONNECTIONS} connections converged {:?} after the start",
        started.elapsed()
    );
    for i in 0..CREDENTIALS {
        let d = deployments
            .get(&format!("app-{i}"))
            .await
            .expect("Deployment");
        assert_eq!(
            d.metadata.generation,
            Some(1),
            "app-{i} restarted by a crash or a first publish"
        );
    }

    rotate_while_killed(&mut h, &mut creds).await;
    let after = wait_outputs_match(&h, &creds, Duration::from_secs(120)).await;

    // Secrets of credentials that did not change were not rewritten by the restarts.
    for i in (0..CONNECTIONS).filter(|i| credential_of(*i) < STEADY) {
        let name = connection_name(i);
        assert_eq!(
            before.get(&name),
            after.get(&name),
            "{name} was rewritten without a change"
        );
    }
    consumers_restarted_once_per_rotation(&h).await;
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    eprintln!(
        "crash test took {:?}; {} calls to TrackVia",
        started.elapsed(),
        h.fake.total_calls()
    );
    h.finish().await;
}

/// A source Secret for each credential, and a Deployment `app-{i}` for each of the first
/// connections; the credentials.
async fn sources_and_consumers(h: &mut Harness) -> Vec<(String, String)> {
    let mut creds = Vec::new();
    for k in 0..CREDENTIALS {
        let (key, token) = h.credential(Behavior::Valid);
        h.put_source(&format!("src-{k}"), &key, &token).await;
        creds.push((key, token));
    }
    let deployments: Api<Deployment> = h.ns.api();
    for i in 0..CREDENTIALS {
        deployments
            .create(&PostParams::default(), &deployment(&format!("app-{i}")))
            .await
            .expect("creating a Deployment");
    }
    creds
}

/// Creates the connections from another task while the operator is killed twice.
async fn create_while_killed_twice(h: &mut Harness) {
    let (api, host) = (h.connections(), h.fake.host());
    let creator = tokio::spawn(async move {
        futures::stream::iter(0..CONNECTIONS)
            .for_each_concurrent(8, |i| {
                let (api, host) = (api.clone(), host.clone());
                async move {
                    let consumer = (i < CREDENTIALS).then(|| format!("app-{i}"));
                    let source = format!("src-{}", credential_of(i));
                    apply(
                        &api,
                        &connection_name(i),
                        &host,
                        &source,
                        consumer.as_deref(),
                    )
                    .await;
                }
            })
            .await;
    });
    let first = random_millis(500..4000);
    tokio::time::sleep(first).await;
    h.crash_operator();
    let second = random_millis(1000..6000);
    tokio::time::sleep(second).await;
    h.crash_operator();
    creator.await.expect("creating the connections");
    eprintln!("killed the operator {first:?} after the first apply and again {second:?} later");
}

/// Rotates some credentials, and kills the operator while it republishes them.
async fn rotate_while_killed(h: &mut Harness, creds: &mut [(String, String)]) {
    for (k, cred) in creds.iter_mut().enumerate().skip(STEADY) {
        let token = common::secret_value("t");
        h.secrets.push(token.clone());
        h.fake.set(&cred.0, &token, Behavior::Valid);
        h.fake.set(&cred.0, &cred.1, Behavior::Revoked);
        h.rotate_source(&format!("src-{k}"), &cred.0, &token).await;
        cred.1 = token;
    }
    let third = random_millis(200..2500);
    tokio::time::sleep(third).await;
    h.crash_operator();
    eprintln!(
        "killed the operator a third time, {third:?} after rotating {} credentials",
        CREDENTIALS - STEADY
    );
    h.wait_operator_ready().await;
}

/// Consumers: untouched when their credentials did not change, restarted exactly once
/// otherwise.
async fn consumers_restarted_once_per_rotation(h: &Harness) {
    let deployments: Api<Deployment> = h.ns.api();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in STEADY..CREDENTIALS {
        let want = h
            .secrets_api()
            .get(&connection_name(i))
            .await
            .expect("output Secret")
            .metadata
            .annotations
            .and_then(|a| a.get("trackvia.io/content-hash").cloned());
        loop {
            let d = deployments
                .get(&format!("app-{i}"))
                .await
                .expect("Deployment");
            if generation_and_hash(&d).1 == want || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..CREDENTIALS {
        let d = deployments
            .get(&format!("app-{i}"))
            .await
            .expect("Deployment");
        let (generation, hash) = generation_and_hash(&d);
        if i < STEADY {
            assert_eq!(
                generation,
                Some(1),
                "app-{i} was restarted without a change"
            );
            assert_eq!(hash, None, "app-{i}");
        } else {
            assert_eq!(
                generation,
                Some(2),
                "app-{i} must restart exactly once for one rotation"
            );
            assert!(
                hash.is_some(),
                "app-{i} carries the hash it was restarted for"
            );
        }
    }
}
