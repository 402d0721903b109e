//! Leader election with the chart's RBAC: two operators run as the chart's ServiceAccount on
//! the shared bed, and the Lease is handed over when the leader stops.

mod common;

use std::time::{Duration, Instant};

use common::chart_rbac::*;
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
    let lease_name = release.fullname();
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    let lease_by_name = format!("leases.coordination.k8s.io={lease_name}");
    let other_lease = format!("leases.coordination.k8s.io={lease_name}-other");
    sa.assert_access(&[
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("get", &lease_by_name, &release_ns, true),
        ("patch", &lease_by_name, &release_ns, true),
        ("update", &lease_by_name, &release_ns, true),
        ("get", &other_lease, &release_ns, false),
        ("patch", &other_lease, &release_ns, false),
        ("delete", &lease_by_name, &release_ns, false),
        ("list", "leases.coordination.k8s.io", &release_ns, false),
        ("create", "leases.coordination.k8s.io", &work_ns, false),
    ])
    .await;

    // Two pods of the Deployment, started together.
    let mut first = Pod::start(&bed, &release, &sa, &scratch, "a").await;
    let mut second = Pod::start(&bed, &release, &sa, &scratch, "b").await;
    for pod in [&first, &second] {
        assert!(
            pod.args.iter().any(|a| a == "--leader-election"),
            "{:?}",
            pod.args
        );
        assert_eq!(
            pod.flag("--leader-election-namespace"),
            Some(release_ns.as_str())
        );
        assert_eq!(
            pod.flag("--leader-election-lease-name"),
            Some(lease_name.as_str())
        );
    }
    first.wait_ready().await;
    second.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut leader, mut standby) = loop {
        let (x, y) = (
            first.metric("trackvia_operator_leader").await,
            second.metric("trackvia_operator_leader").await,
        );
        match (x, y) {
            (1.0, 0.0) => break (first, second),
            (0.0, 1.0) => break (second, first),
            (1.0, 1.0) => panic!("both pods lead"),
            _ if Instant::now() >= deadline => panic!(
                "no leader after 20 s;\n--- a ---\n{}\n--- b ---\n{}",
                first.process.logs(),
                second.process.logs()
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    eprintln!("{} leads, {} stands by", leader.name, standby.name);
    assert_eq!(
        holder(&lease(&bed, &release_ns, &lease_name).await),
        Some(leader.lease_identity())
    );

    // Connections become Ready; only the leader calls TrackVia and writes.
    let mut credentials = Vec::new();
    let work = Place::new(&bed, &work_ns, &fake);
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
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
    note_extra_writes(&leader, leader_writes, 2.0);
    assert_eq!(leader.metric("trackvia_secret_writes_total").await, 2.0);
    for (key, token) in &keys {
        assert_eq!(fake.calls_for(key, token), 1);
    }
    let versions_before: Vec<(String, String)> = {
        let mut v = Vec::new();
        for name in ["one", "two"] {
            v.push((
                work.version_of_connection(name).await,
                work.version_of_secret(name).await,
            ));
        }
        v
    };
    let lease_before = lease(&bed, &release_ns, &lease_name).await;
    let transitions_before = lease_before
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);

    // The leader dies without releasing the Lease; the standby takes over once it expires.
    leader.process.kill();
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
    let lease_after = lease(&bed, &release_ns, &lease_name).await;
    assert_eq!(holder(&lease_after), Some(standby.lease_identity()));
    assert!(
        lease_after
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
            > transitions_before,
        "leaseTransitions did not grow: {lease_after:?}"
    );
    let mut new_leader = standby;

    // The new leader goes over what the old one settled and writes nothing: not a status,
    // not a Secret, not a call to TrackVia.
    wait_reconciled(&new_leader, 2.0).await;
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
            (
                work.version_of_connection(name).await,
                work.version_of_secret(name).await
            ),
            versions_before[i],
            "{name} was written again after the handover"
        );
        assert_eq!(
            fake.calls_for(&keys[i].0, &keys[i].1),
            1,
            "{name} re-verified"
        );
    }

    // A connection created after the handover is reconciled by the new leader.
    let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
    work.put_source("three-user", &key, &token).await;
    work.apply("three", "three-user", json!({})).await;
    work.wait_ready("three", "True", "Verified").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = new_leader.metric("trackvia_status_writes_total").await;
    assert!(writes >= 1.0, "the new leader wrote no status");
    note_extra_writes(&new_leader, writes, 1.0);
    assert_eq!(new_leader.metric("trackvia_secret_writes_total").await, 1.0);
    assert_eq!(fake.calls_for(&key, &token), 1);
    new_leader.assert_clean_log(&credentials);
    leader.assert_clean_log(&credentials);

    // A clean stop hands the Lease back at once.
    new_leader.stop_cleanly().await;
    let stopped = Instant::now();
    let released = loop {
        let current = lease(&bed, &release_ns, &lease_name).await;
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

    eprintln!("leader-election test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}
