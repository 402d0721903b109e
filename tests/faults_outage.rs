//! Faults on the real bed: a TrackVia outage (500s, hangs, dropped connections) longer than
//! the damping window is damped, rate limited, and recovered from without help. It ends with
//! the harness's leak audit.

mod common;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use common::Harness;
use common::converge::*;
use kube::api::ListParams;
use serde_json::json;
use trackvia_testsupport::fake::Behavior;

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
    let (failures, creds, names) = connect_four(&mut h).await;

    // The outage starts; a forced check makes every connection notice it at once.
    for ((key, token), b) in creds.iter().zip(&failures) {
        h.fake.set(key, token, b.clone());
    }
    let outage = Instant::now();
    for name in &names {
        h.request_verification(name).await;
    }
    let (seen, unreachable_after) = watch_the_outage(&h, &names, outage).await;
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

    requests_stay_within_the_rate_limit(&h);
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

/// Four connections whose damping needs 18 calls: the rest of the outage's retries run into
/// the limit of 20 a minute. How each fails in the outage, the credentials, the names; all
/// Ready.
async fn connect_four(h: &mut Harness) -> (Vec<Behavior>, Vec<(String, String)>, BTreeSet<String>) {
    let failures = vec![
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
    wait_all_ready(h, &names, common::SETTLE).await;
    (failures, creds, names)
}

/// Ready states seen of each connection until every one is Unreachable (never a refusal,
/// and only after three failures), and how long after `outage` began each became Unreachable.
async fn watch_the_outage(
    h: &Harness,
    names: &BTreeSet<String>,
    outage: Instant,
) -> (
    BTreeMap<String, BTreeSet<(String, String)>>,
    BTreeMap<String, Duration>,
) {
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
    (seen, unreachable_after)
}

/// The busiest minute as TrackVia saw it stays within the rate limit, and reaches it.
fn requests_stay_within_the_rate_limit(h: &Harness) {
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
}
