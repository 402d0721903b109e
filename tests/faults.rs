//! Faults on the real bed: the operator killed with SIGKILL while hundreds of
//! connections converge, the API server going away and coming back (etcd kept),
//! and a TrackVia outage longer than the damping window. Every test ends with
//! the harness's leak audit (logs of every operator process, events, statuses,
//! metrics).
//!
//! The API server test stops the bed's API server, so it takes the bed for
//! itself: the other tests of this file hold a shared lock, it holds it
//! exclusively. With `FAULTS_KEEP_LOG=<file>` it writes the operator's log
//! there (to see when the watches resumed).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use common::{Harness, secret_text};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::{FIELD_MANAGER, apply_connection, deployment};

/// Shared by tests that only use the bed; held exclusively by the test that
/// restarts the API server.
static BED: LazyLock<tokio::sync::RwLock<()>> = LazyLock::new(|| tokio::sync::RwLock::new(()));

fn ready(t: &TrackViaConnection) -> Option<(String, String)> {
    t.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| (c.status.to_string(), c.reason.clone()))
}

fn is_ready(t: &TrackViaConnection) -> bool {
    ready(t).is_some_and(|(s, r)| s == "True" && r == "Verified")
        && t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
}

/// Wait until every connection in `names` is Ready=True/Verified for its
/// current generation. Panics with the stragglers after `timeout`.
async fn wait_all_ready(h: &Harness, names: &BTreeSet<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting: BTreeMap<String, String> =
            names.iter().map(|n| (n.clone(), "absent".into())).collect();
        if let Ok(list) = h.connections().list(&ListParams::default()).await {
            for t in list.items {
                let name = t.metadata.name.clone().unwrap_or_default();
                if is_ready(&t) {
                    waiting.remove(&name);
                } else if let Some(w) = waiting.get_mut(&name) {
                    *w = format!("{:?}", ready(&t));
                }
            }
        }
        if waiting.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let sample: Vec<_> = waiting.iter().take(10).collect();
            panic!(
                "{} of {} connections not Ready after {timeout:?}, e.g. {sample:?}",
                waiting.len(),
                names.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Server-side apply of a connection reading from `source`, optionally
/// restarting Deployment `consumer`.
async fn apply(
    api: &Api<TrackViaConnection>,
    name: &str,
    host: &str,
    source: &str,
    consumer: Option<&str>,
) {
    let mut spec = json!({"host": host, "credentialsSecretRef": {"name": source}});
    if let Some(d) = consumer {
        spec["rolloutRestartTargets"] = json!([{"kind": "Deployment", "name": d}]);
    }
    // The API server may be briefly busy on a loaded machine: retry a few times.
    let mut last = None;
    for _ in 0..10 {
        match apply_connection(api, FIELD_MANAGER, name, spec.clone()).await {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("applying {name}: {last:?}");
}

fn random_millis(range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rand::random_range(range))
}

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
        if !is_ready(t)
            || status.secret_name.as_deref() != Some(name.as_str())
            || status.published_hash.as_ref() != annotations.get("trackvia.io/content-hash")
        {
            return Err(format!(
                "{name}: status {:?} does not describe its Secret",
                ready(t)
            ));
        }
        versions.insert(
            name,
            s.metadata.resource_version.clone().unwrap_or_default(),
        );
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
    let _bed = BED.read().await;
    let started = Instant::now();
    let mut h = Harness::start("tvc-crash", &["--rate-limit", "1000"]).await;
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

    // Create the connections from another task while the operator is killed twice.
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

    // Rotate some credentials, and kill the operator while it republishes them.
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
    // Consumers: untouched when their credentials did not change, restarted exactly once otherwise.
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

// ---------------------------------------------------------------------------------------------
// 2. The API server goes away while connections converge, and comes back (etcd kept).
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_going_away_and_back_is_survived() {
    let _bed = BED.write().await;
    let mut h = Harness::start("tvc-apiserver", &[]).await;
    let mut creds = Vec::new();
    for k in 0..4 {
        let (key, token) = h.credential(Behavior::Valid);
        h.put_source(&format!("src-{k}"), &key, &token).await;
        creds.push((key, token));
    }
    let host = h.fake.host();
    let mut names = BTreeSet::new();
    for i in 0..16 {
        let name = format!("early-{i}");
        apply(
            &h.connections(),
            &name,
            &host,
            &format!("src-{}", i % 4),
            None,
        )
        .await;
        names.insert(name);
    }
    // Some are still being reconciled when the server goes away.
    tokio::time::sleep(random_millis(0..800)).await;
    let away = common::ApiServerAway::stop().await;

    // /readyz turns 503 once the operator notices (it asks every few seconds),
    // and stays so while the server is away; /healthz stays 200.
    let stopped = Instant::now();
    let mut seen = Vec::new();
    while stopped.elapsed() < Duration::from_secs(12) {
        let readyz = h.readyz().await;
        let healthz = common::plain_get(&format!("http://127.0.0.1:{}/healthz", h.metrics_port))
            .await
            .ok()
            .map(|r| r.0);
        assert_eq!(healthz, Some(200), "/healthz while the API server is away");
        assert!(
            h.operator.is_running(),
            "the operator exited while the API server was away:\n{}",
            h.operator.logs()
        );
        seen.push((stopped.elapsed().as_millis(), readyz));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first_503 = seen.iter().position(|(_, r)| *r == Some(503));
    assert!(
        first_503.is_some_and(|i| seen[i..].iter().all(|(_, r)| *r == Some(503))),
        "/readyz must report not ready while the API server is away: {seen:?}"
    );
    eprintln!("/readyz while the API server was away (ms after it was stopped, status): {seen:?}");

    away.restore().await;
    let back = Instant::now();
    // Connections created just after it is back, one with a new credential.
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src-new", &key, &token).await;
    for i in 0..8 {
        let name = format!("late-{i}");
        let source = if i == 0 {
            "src-new".to_string()
        } else {
            format!("src-{}", i % 4)
        };
        apply(&h.connections(), &name, &host, &source, None).await;
        names.insert(name);
    }
    wait_all_ready(&h, &names, Duration::from_secs(45)).await;
    eprintln!(
        "all {} connections Ready {:?} after the API server was back",
        names.len(),
        back.elapsed()
    );

    // The Secret watch is back too: a rotation is published promptly.
    let rotated = common::secret_value("t");
    h.secrets.push(rotated.clone());
    h.fake.set(&creds[0].0, &rotated, Behavior::Valid);
    h.rotate_source("src-0", &creds[0].0, &rotated).await;
    h.wait_published(
        "early-0",
        &rotated,
        common::SETTLE,
        "the rotated token published",
    )
    .await;
    assert_eq!(
        h.readyz().await,
        Some(200),
        "/readyz after the API server is back"
    );
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    let logs = h.operator.logs();
    let errors = logs
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .count();
    eprintln!("the operator logged {errors} warnings or errors during the outage");
    if let Ok(path) = std::env::var("FAULTS_KEEP_LOG") {
        std::fs::write(path, &logs).ok();
    }
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 3. TrackVia fails (500s, hangs, dropped connections) longer than the damping window.
// ---------------------------------------------------------------------------------------------

const RATE_LIMIT: usize = 20;

/// The largest number of requests in any sliding window of `window`, and the
/// time between the first and the last of them.
fn busiest(times: &[SystemTime], window: Duration) -> (usize, Duration) {
    let mut times = times.to_vec();
    times.sort();
    let (mut best, mut span, mut start) = (0, Duration::ZERO, 0);
    for end in 0..times.len() {
        let gap = |a: usize| times[end].duration_since(times[a]).unwrap_or_default();
        while gap(start) >= window {
            start += 1;
        }
        if end - start + 1 > best {
            best = end - start + 1;
            span = gap(start);
        }
    }
    (best, span)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trackvia_outage_is_damped_rate_limited_and_recovers_by_itself() {
    let _bed = BED.read().await;
    let grace = Duration::from_secs(5);
    let rate = RATE_LIMIT.to_string();
    let mut h = Harness::start(
        "tvc-outage",
        &[
            "--failure-grace",
            "5s",
            "--failure-threshold",
            "3",
            "--retry-base",
            "1s",
            "--request-timeout",
            "2s",
            "--rate-limit",
            &rate,
        ],
    )
    .await;
    // Four connections whose damping needs 18 calls: the rest of the outage's
    // retries run into the limit of 20 a minute.
    let failures = [
        Behavior::ServerError,
        Behavior::CloseConnection,
        Behavior::Slow(Duration::from_secs(6)),
        Behavior::Slow(Duration::from_secs(6)),
    ];
    let mut creds = Vec::new();
    let mut names = BTreeSet::new();
    for (i, _) in failures.iter().enumerate() {
        let (key, token) = h
            .connect(
                &format!("c-{i}"),
                &format!("src-{i}"),
                Behavior::Valid,
                json!({}),
            )
            .await;
        creds.push((key, token));
        names.insert(format!("c-{i}"));
    }
    wait_all_ready(&h, &names, common::SETTLE).await;

    // The outage starts; a forced check makes every connection notice it at once.
    for ((key, token), b) in creds.iter().zip(&failures) {
        h.fake.set(key, token, b.clone());
    }
    let outage = Instant::now();
    for name in &names {
        h.request_verification(name).await;
    }
    let mut seen: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut unreachable_after: BTreeMap<String, Duration> = BTreeMap::new();
    while unreachable_after.len() < names.len() {
        assert!(
            outage.elapsed() < Duration::from_secs(180),
            "not every connection became Unreachable: {unreachable_after:?}; seen {seen:?}"
        );
        for t in h
            .connections()
            .list(&ListParams::default())
            .await
            .expect("listing")
            .items
        {
            let name = t.metadata.name.clone().unwrap_or_default();
            let status = t.status.clone().unwrap_or_default();
            if let Some(r) = ready(&t) {
                seen.entry(name.clone()).or_default().insert(r.clone());
                if r.1 == "Unreachable" && !unreachable_after.contains_key(&name) {
                    assert!(
                        status.consecutive_failures >= 3,
                        "{name}: Unreachable after {} failures",
                        status.consecutive_failures
                    );
                    unreachable_after.insert(name.clone(), outage.elapsed());
                }
            }
            let verified = status.condition("Verified").map(|c| c.status.to_string());
            assert_ne!(
                verified.as_deref(),
                Some("False"),
                "{name}: a transient failure was taken for a refusal"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (name, states) in &seen {
        for (status, reason) in states {
            assert!(
                (status == "True" && reason == "Verified")
                    || (status == "False" && reason == "Unreachable"),
                "{name}: Ready was {status}/{reason} during the outage"
            );
        }
    }
    for (name, after) in &unreachable_after {
        // The damping window counts from the first failure, stored with second precision.
        assert!(
            *after >= grace - Duration::from_secs(1),
            "{name} became Unreachable {after:?} into the outage, inside the {grace:?} window"
        );
    }
    eprintln!("Unreachable after {unreachable_after:?}");

    // TrackVia is healthy again: every connection recovers without help.
    for (key, token) in &creds {
        h.fake.set(key, token, Behavior::Valid);
    }
    let healed = Instant::now();
    wait_all_ready(&h, &names, Duration::from_secs(150)).await;
    eprintln!(
        "recovered {:?} after TrackVia was healthy again",
        healed.elapsed()
    );

    let times: Vec<SystemTime> = h.fake.requests().iter().map(|r| r.received_at).collect();
    let (strict, span) = busiest(&times, Duration::from_secs(60));
    eprintln!(
        "{} requests in all; at most {strict} within 60 s (those {strict} span {span:?})",
        times.len()
    );
    // The limiter counts each call as if it arrived as late as the request
    // timeout allows, so no 60 s window as seen by TrackVia holds more.
    assert!(
        strict <= RATE_LIMIT,
        "{strict} requests within 60 s, above --rate-limit {RATE_LIMIT}"
    );
    assert!(
        strict >= RATE_LIMIT - 2,
        "the outage should have run into the rate limit, yet the busiest minute had only {strict} calls"
    );
    for r in h.fake.requests() {
        assert_eq!(r.header("host"), Some(h.fake.host().as_str()));
    }
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    h.finish().await;
}
