//! The restart step of the scale test: a new process with every connection Ready costs
//! no TrackVia call, no write and no read of a Secret.

use super::*;

/// Kill the operator with every connection Ready and start it again: the new process
/// reports its initial sync done for every connection without calling TrackVia, writing
/// anything (its metrics, the objects' resourceVersions and the API server's audit log) or
/// reading a Secret.
pub async fn restart_costs_nothing(h: &mut Harness, versions: &BTreeMap<String, String>) {
    let calls = h.fake.total_calls();
    let first = h.operator.pid();
    h.crash_operator();
    let pid = h.operator.pid();
    h.wait_operator_ready().await;
    let deadline = Instant::now() + CONVERGE_WITHIN;
    let metrics = loop {
        let metrics = h.metrics().await;
        if counter(&metrics, "trackvia_initial_sync_done") == 1 {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no initial sync done {CONVERGE_WITHIN:?} after a restart; metrics:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        counter(&metrics, "trackvia_initial_sync_connections"),
        CONNECTIONS as u64,
        "connections reconciled in the initial sync"
    );
    // Anything queued by the relist has run by now.
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        writes(h).await,
        (0, 0),
        "status and Secret writes after a restart"
    );
    assert_eq!(
        h.fake.total_calls(),
        calls,
        "TrackVia calls after a restart"
    );
    // No Secret is read: each status records the version its credentials were read at
    // (the watches report each source Secret still there) and the version its output
    // Secret was published at.
    let reads = series(&h.metrics().await, "trackvia_secret_reads_total")
        .expect("the operator's count of Secret reads");
    assert_eq!(
        reads, 0.0,
        "Secret reads after a restart, for {CREDENTIALS} source Secrets and {CONNECTIONS} output Secrets"
    );
    let after = resource_versions(h).await;
    assert!(&after == versions, "objects changed after a restart");
    let audited = audited_writes(&testbed_dir());
    // The filter finds the first process's writes, so finding none of the new one's means something.
    let by_first = audited.iter().filter(|w| w.by_operator_pid(first)).count();
    assert!(
        by_first >= CONNECTIONS,
        "{by_first} writes of the first process in the audit log"
    );
    let audited_after: Vec<String> = audited
        .into_iter()
        .filter(|w| w.by_operator_pid(pid))
        .map(|w| format!("{} {}/{}/{}", w.verb, w.resource, w.namespace, w.name))
        .collect();
    assert!(
        audited_after.is_empty(),
        "{} writes after a restart, e.g. {:?}",
        audited_after.len(),
        &audited_after[..audited_after.len().min(5)]
    );
}
