//! Faults on the real bed: the API server going away while connections converge and
//! coming back (etcd kept) is survived. The test stops the bed's API server, so it is the
//! only test of this binary: cargo runs test binaries one at a time, so it has the bed to
//! itself. With `FAULTS_KEEP_LOG=<file>` it writes the operator's log there (to see when
//! the watches resumed). It ends with the harness's leak audit.

mod common;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Harness;
use common::converge::*;
use trackvia_testsupport::fake::Behavior;

// ---------------------------------------------------------------------------------------------
// 2. The API server goes away while connections converge, and comes back (etcd kept).
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_going_away_and_back_is_survived() {
    let mut h = Harness::start("tvc-apiserver", &[]).await;
    let (creds, mut names) = early_connections(&mut h).await;
    // Some are still being reconciled when the server goes away.
    tokio::time::sleep(random_millis(0..800)).await;
    let away = common::ApiServerAway::stop().await;
    readyz_is_503_while_away(&mut h).await;

    away.restore().await;
    let back = Instant::now();
    late_connections(&mut h, &mut names).await;
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

/// Sixteen connections over four credentials; the credentials and the connections' names.
async fn early_connections(h: &mut Harness) -> (Vec<(String, String)>, BTreeSet<String>) {
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
    (creds, names)
}

/// /readyz turns 503 once the operator notices (it asks every few seconds), and stays so
/// while the server is away; /healthz stays 200.
async fn readyz_is_503_while_away(h: &mut Harness) {
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
}

/// Connections created just after the API server is back, one with a new credential.
async fn late_connections(h: &mut Harness, names: &mut BTreeSet<String>) {
    let host = h.fake.host();
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
}
