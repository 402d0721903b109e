//! The steps of the scale test after convergence: requests at the floor, a steady window
//! without writes, and unrelated Secrets that never reach the operator.

use super::*;

/// The floor's requests: per connection one Secret write (a create) and one status
/// write, no read of the output Secret; each of the ten shared source Secrets is read
/// once, however many connections reconciled at the same time need it (a few more when a
/// loaded machine delays a watch's first report past the 10 s a read is served without
/// one). One TrackVia call per distinct credential, however many connections share it.
pub async fn requests_at_the_floor(h: &Harness, creds: &[(String, String)]) {
    let metrics = h.metrics().await;
    let reads = counter(&metrics, "trackvia_secret_reads_total");
    assert!(
        (CREDENTIALS as u64..=(CREDENTIALS + CREDENTIALS / 2) as u64).contains(&reads),
        "{reads} Secret reads for {CONNECTIONS} new connections sharing {CREDENTIALS} Secrets"
    );
    let writes = [
        counter(&metrics, "trackvia_secret_writes_total"),
        counter(&metrics, "trackvia_status_writes_total"),
    ];
    let most = (CONNECTIONS + CONNECTIONS / 50) as u64;
    assert!(
        writes
            .iter()
            .all(|w| (CONNECTIONS as u64..=most).contains(w)),
        "Secret and status writes for {CONNECTIONS} new connections: {writes:?}"
    );
    assert_eq!(
        counter(
            &metrics,
            "trackvia_source_secret_watches{selector=\"name\"}"
        ),
        CREDENTIALS as u64,
        "one watch per source Secret"
    );
    assert_eq!(
        counter(
            &metrics,
            "trackvia_source_secret_watches{selector=\"namespace\"}"
        ),
        0,
        "no namespace-wide Secret watch"
    );
    let per_credential: Vec<usize> = creds
        .iter()
        .map(|(key, token)| h.fake.calls_for(key, token))
        .collect();
    assert_eq!(
        per_credential,
        vec![1; CREDENTIALS],
        "TrackVia calls per credential"
    );
    assert_eq!(h.fake.total_calls(), CREDENTIALS, "TrackVia calls in all");
}

/// Steady state: no writes at all. The resourceVersions at its end.
pub async fn a_steady_window_writes_nothing(h: &Harness) -> BTreeMap<String, String> {
    tokio::time::sleep(SETTLE).await;
    let writes_before = writes(h).await;
    let versions_before = resource_versions(h).await;
    assert_eq!(
        versions_before.len(),
        2 * CONNECTIONS,
        "connections and output Secrets"
    );
    tokio::time::sleep(STEADY_WINDOW).await;
    let writes_after = writes(h).await;
    let versions_after = resource_versions(h).await;
    assert_eq!(
        writes_after, writes_before,
        "the operator wrote (status, Secret) in the steady window"
    );
    let changed: Vec<&String> = versions_after
        .iter()
        .filter(|(k, v)| versions_before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        changed.is_empty(),
        "{} objects changed in the steady window, e.g. {:?}",
        changed.len(),
        &changed[..changed.len().min(5)]
    );
    assert_eq!(
        h.fake.total_calls(),
        CREDENTIALS,
        "TrackVia calls in the steady window"
    );
    versions_after
}

/// Unrelated Secrets changing: nothing reaches the operator, nothing is reconciled.
pub async fn unrelated_secrets_cost_nothing(h: &mut Harness, secrets: &kube::Api<Secret>) {
    let metrics = h.metrics().await;
    let events_before = counter(&metrics, "trackvia_secret_watch_events_total");
    let reconciles_before = counter(&metrics, "trackvia_reconcile_duration_seconds_count");
    for_each_unrelated("updating", |i| {
        let secrets = secrets.clone();
        async move {
            let patch = json!({"metadata": {"labels": {"touched": "yes"}}});
            secrets
                .patch(
                    &format!("unrelated-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(|_| ())
        }
    })
    .await;
    // A change the operator does watch, made after those: once it has been acted on,
    // any event about the unrelated ones would have arrived too.
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src-0", &key, &token).await;
    h.wait_published(
        "conn-0",
        &token,
        Duration::from_secs(30),
        "conn-0 to publish the rotated token",
    )
    .await;
    let metrics = h.metrics().await;
    let events = counter(&metrics, "trackvia_secret_watch_events_total") - events_before;
    let reconciles =
        counter(&metrics, "trackvia_reconcile_duration_seconds_count") - reconciles_before;
    // The rotation: an event or two for src-0, and one for each output Secret it
    // rewrote (the watch sees the operator's own writes; their echo is not
    // reconciled). Each reader is reconciled for the source change and again to
    // write its status after its Secret, and on a loaded machine a third time
    // when the answer's wake-up comes after its pass began. A single unrelated
    // Secret reaching the operator would be 500 more.
    let readers = CONNECTIONS / CREDENTIALS;
    assert!(
        events <= 5 + readers as u64,
        "{events} Secret watch events after updating {UNRELATED} unrelated Secrets and rotating one source read by {readers}"
    );
    assert!(
        reconciles <= 3 * readers as u64,
        "{reconciles} reconciles after updating {UNRELATED} unrelated Secrets and rotating one source read by {readers}"
    );
}
