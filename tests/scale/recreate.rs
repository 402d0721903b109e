//! The last step of the scale test: connections deleted and applied again under the same
//! names. Their output Secrets, removed by the garbage collector, are created again with one
//! request each and no read first: the operator forgets a Secret it wrote once its watch
//! reports it deleted.

use super::*;

/// How many connections are deleted and applied again.
const RECREATED: usize = 20;

pub async fn recreated_connections_create_their_secrets(h: &Harness, tokens: &[String]) {
    // Not those reading src-0, whose token an earlier step rotated.
    let again: Vec<usize> = (0..CONNECTIONS)
        .filter(|i| i % CREDENTIALS != 0)
        .take(RECREATED)
        .collect();
    let events_before = counter(&h.metrics().await, "trackvia_secret_watch_events_total");
    for i in &again {
        h.connections()
            .delete(&format!("conn-{i}"), &DeleteParams::default())
            .await
            .expect("deleting a connection");
    }
    // The garbage collector has removed every output Secret, and the operator's watch has
    // reported as many events since.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut left = 0;
        for i in &again {
            let name = format!("conn-{i}");
            let found = h.secrets_api().get_opt(&name).await;
            left += usize::from(!matches!(found, Ok(None)));
        }
        let events =
            counter(&h.metrics().await, "trackvia_secret_watch_events_total") - events_before;
        if left == 0 && events >= RECREATED as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} output Secrets left; the operator saw {events} events for {RECREATED} deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = h.metrics().await;
    let reads_before = counter(&metrics, "trackvia_secret_reads_total");
    let writes_before = counter(&metrics, "trackvia_secret_writes_total");
    for i in &again {
        h.apply_connection(
            &format!("conn-{i}"),
            &format!("src-{}", i % CREDENTIALS),
            json!({"tokenExpiresOn": "2099-12-31", "verifyInterval": "1h"}),
        )
        .await
        .expect("applying a connection again");
    }
    for i in &again {
        let name = format!("conn-{i}");
        h.wait_published(
            &name,
            &tokens[i % CREDENTIALS],
            CONVERGE_WITHIN,
            "a connection applied again to publish",
        )
        .await;
        h.wait_ready(&name, "True", "Verified").await;
    }
    let metrics = h.metrics().await;
    let reads = counter(&metrics, "trackvia_secret_reads_total") - reads_before;
    let writes = counter(&metrics, "trackvia_secret_writes_total") - writes_before;
    // Their source Secrets are read once each: the restart before this step read none (the
    // statuses record them), and the rotation since read only src-0's.
    let sources: std::collections::BTreeSet<usize> =
        again.iter().map(|i| i % CREDENTIALS).collect();
    assert!(
        reads <= (sources.len() + RECREATED / 4) as u64,
        "{reads} Secret reads for {RECREATED} connections applied again, reading {} source Secrets",
        sources.len()
    );
    assert_eq!(
        writes, RECREATED as u64,
        "one Secret write per connection applied again"
    );
}
