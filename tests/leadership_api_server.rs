//! Leadership without the API server, on the real bed: a leader that cannot renew stops
//! before its Lease can expire, and SIGTERM ends the process within seconds with the API
//! server gone. Both tests stop the bed's API server, so they take it in turn (a lock); cargo
//! runs test binaries one at a time, so no other test shares the bed meanwhile.

mod common;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::Harness;
use common::leader::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use trackvia_testsupport::fake::Behavior;

/// Held by each test while it stops the API server.
static BED: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_its_lease_can_expire() {
    bounded(cannot_renew()).await;
}

async fn cannot_renew() {
    let _bed = BED.lock().await;
    let lease = lease_name("renew");
    let args = election(&lease, SHORT_TIMING);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = Harness::start("tvc-renew", &args).await;
    wait_leading(h.metrics_port, &mut h.operator, Duration::from_secs(20)).await;
    // The API server takes a while to shut down (it answers less and less meanwhile): watch
    // the process while it does.
    let stopping = tokio::spawn(common::ApiServerAway::stop());
    let exit = wait_exit(&mut h.operator, Instant::now(), Duration::from_secs(30)).await;
    let exited_at = jiff::Timestamp::now();
    stopping
        .await
        .expect("stopping the API server")
        .restore()
        .await;
    let Some((code, _)) = exit else {
        panic!(
            "the leader still runs 30 s after its API server began to go away:\n{}",
            h.operator.logs()
        );
    };
    assert_eq!(code, 1, "{}", h.operator.logs());
    assert!(h.operator.logs().contains("lost leadership"));
    assert_logs_clean(&h, &[]);
    // The Lease as last renewed (etcd kept it) expires after the process stopped.
    let renewed = Api::<Lease>::namespaced(h.client.clone(), LEASE_NAMESPACE)
        .get(&lease)
        .await
        .expect("reading the Lease")
        .spec
        .and_then(|s| s.renew_time)
        .expect("a renew time")
        .0;
    let margin =
        renewed + jiff::SignedDuration::try_from(SHORT_LEASE).expect("a duration") - exited_at;
    eprintln!("the leader stopped {margin:#} before its Lease would have expired");
    assert!(
        margin.is_positive(),
        "the leader ran past the expiry of its Lease: renewed {renewed}, exited {exited_at}"
    );
    h.ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_within_seconds_with_the_api_server_gone() {
    bounded(sigterm_without_api_server()).await;
}

async fn sigterm_without_api_server() {
    let _bed = BED.lock().await;
    let lease = lease_name("term");
    // One process leading (with a Lease long enough that it still leads when the signal
    // comes), one without leader election.
    let long = [
        "--leader-election-lease-duration",
        "60s",
        "--leader-election-renew-deadline",
        "45s",
    ];
    let args = election(&lease, &long);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut elected = Harness::start("tvc-term-le", &args).await;
    let mut single = Harness::start("tvc-term", &[]).await;
    wait_leading(
        elected.metrics_port,
        &mut elected.operator,
        Duration::from_secs(20),
    )
    .await;
    for h in [&mut elected, &mut single] {
        h.connect("c", "src", Behavior::Valid, json!({})).await;
        h.wait_ready("c", "True", "Verified").await;
    }
    let away = common::ApiServerAway::stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut took = Vec::new();
    let signalled = Instant::now();
    for h in [&mut elected, &mut single] {
        h.operator.terminate();
    }
    for (what, h) in [("leader", &mut elected), ("single", &mut single)] {
        let exit = wait_exit(&mut h.operator, signalled, Duration::from_secs(5)).await;
        let Some((code, elapsed)) = exit else {
            panic!(
                "the {what} process still runs 5 s after SIGTERM:\n{}",
                h.operator.logs()
            );
        };
        assert_eq!(code, 0, "{what}: {}", h.operator.logs());
        took.push((what, elapsed));
    }
    eprintln!("exits after SIGTERM with the API server gone: {took:?}");
    away.restore().await;
    for h in [elected, single] {
        assert_logs_clean(&h, &[]);
        h.ns.cleanup().await;
    }
}
