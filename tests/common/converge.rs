//! Many connections converging on the real bed, for the fault tests: their Ready state, a
//! wait until all of them are Ready, a retried server-side apply, and random pauses.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fixtures::{FIELD_MANAGER, apply_connection};

use super::Harness;

pub fn ready(t: &TrackViaConnection) -> Option<(String, String)> {
    t.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| (c.status.to_string(), c.reason.to_string()))
}

pub fn is_ready(t: &TrackViaConnection) -> bool {
    ready(t).is_some_and(|(s, r)| s == "True" && r == "Verified")
        && t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
}

/// Wait until every connection in `names` is Ready=True/Verified for its
/// current generation. Panics with the stragglers after `timeout`.
pub async fn wait_all_ready(h: &Harness, names: &BTreeSet<String>, timeout: Duration) {
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
pub async fn apply(
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

pub fn random_millis(range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rand::random_range(range))
}
