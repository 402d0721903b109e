//! One writer at a time on the real bed: a leader frozen past its Lease writes nothing once
//! it resumes (its metrics and the API server's audit log by user agent say so), and a
//! clean stop hands the Lease over at once. The tests that stop the API server are in
//! leadership_api_server.rs, a restart decided on a stale read in leadership_stale.rs.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use common::leader::*;
use serde_json::json;
use trackvia_testsupport::fake::Behavior;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_it_resumes() {
    bounded(frozen_leader()).await;
}

async fn frozen_leader() {
    let lease = lease_name("freeze");
    let args = election(&lease, SHORT_TIMING);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = Harness::start("tvc-freeze", &args).await;
    wait_leading(h.metrics_port, &mut h.operator, Duration::from_secs(20)).await;
    let mut standby = Standby::start(&h).await;
    let (old_pid, new_pid) = (h.operator.pid(), standby.process.pid());

    // The leader is frozen while its verification is in flight: the answer is waiting for it
    // when it resumes, with the status and the Secret to write.
    let (key, token) = h
        .connect(
            "c",
            "src",
            Behavior::Slow(Duration::from_millis(1500)),
            json!({}),
        )
        .await;
    wait_called(&h, &key, &token).await;
    let status_writes = metric(h.metrics_port, "trackvia_status_writes_total").await;
    let secret_writes = metric(h.metrics_port, "trackvia_secret_writes_total").await;
    h.operator.freeze();
    let frozen = Instant::now();
    wait_standby_takes_over(&h, &standby, &lease, frozen).await;

    let resumed = jiff::Timestamp::now();
    h.operator.resume();
    old_leader_exits_without_writing(&mut h, status_writes, secret_writes).await;

    // The new leader publishes the connection.
    h.wait_ready("c", "True", "Verified").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    audit_log_shows_no_write_after_resuming(old_pid, new_pid, resumed);
    standby.process.stop().await;
    assert_logs_clean(&h, &[&standby.process]);
    h.ns.cleanup().await;
}

/// Waits until the leader called TrackVia with `key` and `token`.
async fn wait_called(h: &Harness, key: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.fake.calls_for(key, token) == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader never called TrackVia"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The standby takes over once the Lease has expired, not before.
async fn wait_standby_takes_over(h: &Harness, standby: &Standby, lease: &str, frozen: Instant) {
    let new_pid = standby.process.pid();
    let client = h.client.clone();
    loop {
        if lease_holder(&client, lease)
            .await
            .is_some_and(|id| is_process(&id, new_pid))
        {
            break;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(30),
            "the standby did not take over within 30 s:\n{}",
            standby.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = frozen.elapsed();
    eprintln!("the standby took the Lease {takeover:?} after the leader was frozen");
    // Counted from the last renewal the standby saw, at most a retry period before the freeze.
    assert!(
        takeover >= SHORT_LEASE - Duration::from_secs(1),
        "taken before the Lease expired"
    );
}

/// While the resumed leader still runs, its write counters stay where they were; it then
/// exits, having lost the Lease.
async fn old_leader_exits_without_writing(
    h: &mut Harness,
    status_writes: Option<f64>,
    secret_writes: Option<f64>,
) {
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = h.operator.try_exit_status() {
            break status;
        }
        if let Some(n) = metric(h.metrics_port, "trackvia_status_writes_total").await {
            assert_eq!(Some(n), status_writes, "the old leader wrote a status");
        }
        if let Some(n) = metric(h.metrics_port, "trackvia_secret_writes_total").await {
            assert_eq!(Some(n), secret_writes, "the old leader wrote a Secret");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the old leader still runs 5 s after it resumed:\n{}",
            h.operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "the old leader exited ({exit}) {:?} after it resumed",
        started.elapsed()
    );
    assert_eq!(exit.code(), Some(1), "{}", h.operator.logs());
    assert!(h.operator.logs().contains("lost leadership"));
}

/// The audit log: the old leader wrote before the freeze (its user agent is known to the
/// server), the new one after; after resuming the old one wrote nothing, and at most tried
/// to hand back the Lease it no longer held (refused).
fn audit_log_shows_no_write_after_resuming(old_pid: u32, new_pid: u32, resumed: jiff::Timestamp) {
    let writes = audited_writes();
    assert!(
        writes
            .iter()
            .any(|w| by_process(w, old_pid) && w.resource == "leases"),
        "no write of the old leader in the audit log: its user agent does not name it"
    );
    assert!(
        writes
            .iter()
            .any(|w| by_process(w, new_pid) && w.resource == "trackviaconnections"),
        "no status write of the new leader in the audit log"
    );
    let after: Vec<&AuditedWrite> = writes
        .iter()
        .filter(|w| by_process(w, old_pid) && w.received >= resumed)
        .collect();
    eprintln!("requests of the old leader after it resumed: {after:?}");
    for w in &after {
        assert!(
            w.resource == "leases" && !(200..300).contains(&w.code),
            "the old leader wrote after it resumed: {w:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_the_lease_to_the_standby_at_once() {
    bounded(clean_handover()).await;
}

async fn clean_handover() {
    let lease = lease_name("handover");
    // A long Lease: a takeover well within it comes from the release, not from the expiry.
    let args = election(&lease, &["--leader-election-retry-period", "1s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = Harness::start("tvc-handover", &args).await;
    wait_leading(h.metrics_port, &mut h.operator, Duration::from_secs(20)).await;
    let mut standby = Standby::start(&h).await;
    let stopped = Instant::now();
    let status = h.operator.stop_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}:\n{}", h.operator.logs());
    let exit = stopped.elapsed();
    let port = standby.metrics_port;
    let takeover = wait_leading(port, &mut standby.process, Duration::from_secs(15)).await + exit;
    eprintln!("the leader exited {exit:?} after SIGTERM; the standby led {takeover:?} after it");
    assert!(
        takeover < Duration::from_secs(5),
        "the standby took {takeover:?} to lead (the Lease lasts 15 s)"
    );
    let holder = lease_holder(&h.client, &lease).await.unwrap_or_default();
    assert!(is_process(&holder, standby.process.pid()), "{holder}");
    standby.process.stop().await;
    assert_logs_clean(&h, &[&standby.process]);
    h.ns.cleanup().await;
}
