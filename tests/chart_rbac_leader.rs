//! Leader election with the chart's RBAC: two operators run as the chart's ServiceAccount on
//! the shared bed, and the Lease is handed over when the leader stops.

mod common;

use std::time::{Duration, Instant};

use common::chart_rbac::*;
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::metrics::series;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_hands_over() {
    bounded("the leader-election test", leader_election()).await;
}

async fn leader_election() {
    let started = Instant::now();
    let mut bed = Bed::shared().await;
    let scratch = Scratch::new("leader");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("rbac-leader").await;
    let work_ns = bed.namespace("rbac-leader-work").await;
    publish_ca(&bed, &release_ns, &fake, true).await;
    let mut values = base_values(&fake, "secretName");
    values["replicaCount"] = json!(3);
    values["watchNamespaces"] = json!([work_ns]);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    may_hold_only_its_lease(&sa, &release, &work_ns).await;

    // Two pods of the Deployment, started together.
    let first = Pod::start(&bed, &release, &sa, &scratch, "a").await;
    let second = Pod::start(&bed, &release, &sa, &scratch, "b").await;
    let (mut leader, standby) = one_leads(first, second, &release).await;
    eprintln!("{} leads, {} stands by", leader.name, standby.name);
    assert_eq!(
        holder(&release.lease(&bed).await),
        Some(leader.lease_identity())
    );

    let mut credentials = Vec::new();
    let work = Place::new(&bed, &work_ns, &fake);
    let keys = only_the_leader_writes(&work, &fake, &leader, &standby, &mut credentials).await;
    let mut versions_before = Vec::new();
    for name in ["one", "two"] {
        versions_before.push(work.versions(name).await);
    }
    let transitions_before = transitions(&release.lease(&bed).await);

    // The leader dies without releasing the Lease; the standby takes over once it expires.
    leader.process.kill();
    let mut new_leader = takes_over(standby, &bed, &release, transitions_before).await;
    settled_stays_settled(&new_leader, &work, &fake, &keys, &versions_before).await;
    new_connections_go_to_the_new_leader(&new_leader, &work, &fake, &mut credentials).await;
    new_leader.assert_clean_log(&credentials);
    leader.assert_clean_log(&credentials);
    a_clean_stop_hands_the_lease_back(&mut new_leader, &bed, &release).await;

    eprintln!("leader-election test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}

fn transitions(lease: &Option<Lease>) -> i32 {
    lease
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

/// The chart's ServiceAccount may create the release's Lease and hold that one only, in the
/// release's namespace only.
async fn may_hold_only_its_lease(sa: &Identity, release: &Release, work_ns: &str) {
    let release_ns = release.namespace.as_str();
    let lease_name = release.fullname();
    let lease_by_name = format!("leases.coordination.k8s.io={lease_name}");
    let other_lease = format!("leases.coordination.k8s.io={lease_name}-other");
    sa.assert_access(&[
        ("create", "leases.coordination.k8s.io", release_ns, true),
        ("get", &lease_by_name, release_ns, true),
        ("patch", &lease_by_name, release_ns, true),
        ("update", &lease_by_name, release_ns, true),
        ("get", &other_lease, release_ns, false),
        ("patch", &other_lease, release_ns, false),
        ("delete", &lease_by_name, release_ns, false),
        ("list", "leases.coordination.k8s.io", release_ns, false),
        ("create", "leases.coordination.k8s.io", work_ns, false),
    ])
    .await;
}

/// Both pods elect through the release's Lease; once ready, exactly one of them leads
/// within 20 s. (leader, standby).
async fn one_leads(mut first: Pod, mut second: Pod, release: &Release) -> (Pod, Pod) {
    let lease_name = release.fullname();
    for pod in [&first, &second] {
        assert!(
            pod.args.iter().any(|a| a == "--leader-election"),
            "{:?}",
            pod.args
        );
        assert_eq!(
            pod.flag("--leader-election-namespace"),
            Some(release.namespace.as_str())
        );
        assert_eq!(
            pod.flag("--leader-election-lease-name"),
            Some(lease_name.as_str())
        );
    }
    first.wait_ready().await;
    second.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (x, y) = (
            first.metric("trackvia_operator_leader").await,
            second.metric("trackvia_operator_leader").await,
        );
        match (x, y) {
            (1.0, 0.0) => return (first, second),
            (0.0, 1.0) => return (second, first),
            (1.0, 1.0) => panic!("both pods lead"),
            _ if Instant::now() >= deadline => panic!(
                "no leader after 20 s;\n--- a ---\n{}\n--- b ---\n{}",
                first.process.logs(),
                second.process.logs()
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Connections "one" and "two" become Ready; only the leader calls TrackVia and writes.
/// Their credentials.
async fn only_the_leader_writes(
    work: &Place,
    fake: &FakeTrackVia,
    leader: &Pod,
    standby: &Pod,
    credentials: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let (key, token) = credential(fake, Behavior::Valid, credentials);
        let source = format!("{name}-user");
        work.put_source(&source, &key, &token).await;
        work.apply(name, &source, json!({})).await;
        keys.push((key, token));
    }
    for name in ["one", "two"] {
        work.wait_ready(name, "True", "Verified").await;
    }
    // Give a second writer, if there were one, time to show itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let standby_metrics = standby.metrics().await;
    for counter in [
        "trackvia_status_writes_total",
        "trackvia_secret_writes_total",
        "trackvia_operator_leader",
    ] {
        assert_eq!(
            series(&standby_metrics, counter).unwrap_or(0.0),
            0.0,
            "standby {counter}"
        );
    }
    assert!(
        !standby_metrics.contains("trackvia_verifications_total{"),
        "the standby verified"
    );
    // One status per connection is what the change calls for; see `note_extra_writes`.
    let leader_writes = leader.metric("trackvia_status_writes_total").await;
    assert!(
        leader_writes >= 2.0,
        "the leader wrote {leader_writes} statuses"
    );
    note_extra_writes(leader, leader_writes, 2.0);
    assert_eq!(leader.metric("trackvia_secret_writes_total").await, 2.0);
    for (key, token) in &keys {
        assert_eq!(fake.calls_for(key, token), 1);
    }
    keys
}

/// The leader was just killed: `standby` leads within [`HANDOVER_TIMEOUT`], holding the
/// Lease with more transitions than `transitions_before`. The new leader.
async fn takes_over(
    mut standby: Pod,
    bed: &Bed,
    release: &Release,
    transitions_before: i32,
) -> Pod {
    let killed = Instant::now();
    let deadline = killed + HANDOVER_TIMEOUT;
    while standby.metric("trackvia_operator_leader").await != 1.0 {
        assert!(
            standby.process.is_running(),
            "the standby exited; its log:\n{}",
            standby.process.logs()
        );
        assert!(
            Instant::now() < deadline,
            "the standby did not take over within {HANDOVER_TIMEOUT:?}; its log:\n{}",
            standby.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let handover = killed.elapsed();
    eprintln!(
        "{} took over {handover:?} after the leader was killed",
        standby.name
    );
    let lease_after = release.lease(bed).await;
    assert_eq!(holder(&lease_after), Some(standby.lease_identity()));
    assert!(
        transitions(&lease_after) > transitions_before,
        "leaseTransitions did not grow: {lease_after:?}"
    );
    standby
}

/// The new leader goes over what the old one settled and writes nothing: not a status,
/// not a Secret, not a call to TrackVia.
async fn settled_stays_settled(
    new_leader: &Pod,
    work: &Place,
    fake: &FakeTrackVia,
    keys: &[(String, String)],
    versions_before: &[(String, String)],
) {
    wait_reconciled(new_leader, 2.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for counter in [
        "trackvia_status_writes_total",
        "trackvia_secret_writes_total",
    ] {
        assert_eq!(
            new_leader.metric(counter).await,
            0.0,
            "{counter} of the new leader for connections settled before the handover"
        );
    }
    for (i, name) in ["one", "two"].iter().enumerate() {
        assert_eq!(
            work.versions(name).await,
            versions_before[i],
            "{name} was written again after the handover"
        );
        assert_eq!(
            fake.calls_for(&keys[i].0, &keys[i].1),
            1,
            "{name} re-verified"
        );
    }
}

/// A connection created after the handover is reconciled by the new leader.
async fn new_connections_go_to_the_new_leader(
    new_leader: &Pod,
    work: &Place,
    fake: &FakeTrackVia,
    credentials: &mut Vec<String>,
) {
    let (key, token) = credential(fake, Behavior::Valid, credentials);
    work.put_source("three-user", &key, &token).await;
    work.apply("three", "three-user", json!({})).await;
    work.wait_ready("three", "True", "Verified").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = new_leader.metric("trackvia_status_writes_total").await;
    assert!(writes >= 1.0, "the new leader wrote no status");
    note_extra_writes(new_leader, writes, 1.0);
    assert_eq!(new_leader.metric("trackvia_secret_writes_total").await, 1.0);
    assert_eq!(fake.calls_for(&key, &token), 1);
}

/// A clean stop hands the Lease back at once: no holder within 5 s, no renew time.
async fn a_clean_stop_hands_the_lease_back(new_leader: &mut Pod, bed: &Bed, release: &Release) {
    new_leader.stop_cleanly().await;
    let stopped = Instant::now();
    let released = loop {
        let current = release.lease(bed).await;
        if holder(&current).is_none() {
            break current;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the Lease is still held 5 s after a clean stop: {current:?}; log:\n{}",
            new_leader.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        released
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .is_none(),
        "{released:?}"
    );
}
