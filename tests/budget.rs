//! The TrackVia side under production load, on the real test bed with the fake
//! TrackVia over HTTPS: a large account's list of views, the budget of calls
//! shared fairly between namespaces, 429 pauses, the forced-check limit, and
//! the answers of the 3scale gateway.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, SETTLE, condition_parts, forced_check_done};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::fixtures::{FIELD_MANAGER, apply_connection};
use trackvia_testsupport::kube::{TestNamespace, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_account_verifies_in_bounded_memory_and_a_huge_page_is_refused_quickly() {
    let mut h = Harness::start("tvc-large", &["--request-timeout", "30s"]).await;
    // The connection Ready with a small account first: its watch of the source Secret, its
    // store entries, TLS to the fake and the status and Secret writes are all in place, so
    // the rise measured below is what reading the large answer costs.
    let (key, token) = h
        .connect("large", "src-large", Behavior::Valid, json!({}))
        .await;
    h.wait_ready("large", "True", "Verified").await;
    h.wait_published(
        "large",
        &token,
        SETTLE,
        "the small account's token published",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The token is rotated to one whose account sees 50,000 views (about 5 MB).
    let rotated = common::secret_value("t");
    h.secrets.push(rotated.clone());
    h.fake
        .set(&key, &rotated, Behavior::ManyViews { count: 50_000 });
    let pid = h.operator.pid();
    let before = trackvia_testsupport::rss_bytes_of(pid);
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(trackvia_testsupport::rss_bytes_of(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    h.rotate_source("src-large", &key, &rotated).await;
    h.wait_published(
        "large",
        &rotated,
        SETTLE,
        "the large account's token published",
    )
    .await;
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.await.expect("the RSS sampler");
    let rise = peak.saturating_sub(before);
    eprintln!(
        "RSS before {} KiB, peak while reading 50,000 views {} KiB, rise {} KiB",
        before / 1024,
        peak / 1024,
        rise / 1024
    );
    assert!(
        rise < 2 * 1024 * 1024,
        "RSS rose by {} KiB while reading the list of views",
        rise / 1024
    );
    assert_eq!(
        h.fake.calls_for(&key, &rotated),
        1,
        "the large answer was read once"
    );
    h.wait_ready("large", "True", "Verified").await;
    a_huge_page_that_is_not_json_is_refused_quickly(&mut h).await;
    h.finish().await;
}

/// 50 MB that is not JSON: refused at its first bytes, not read to the end.
async fn a_huge_page_that_is_not_json_is_refused_quickly(h: &mut Harness) {
    let (key, token) = h.credential(Behavior::NotJsonBody { bytes: 50_000_000 });
    h.put_source("src-html", &key, &token).await;
    let started = Instant::now();
    h.apply_connection("html", "src-html", json!({}))
        .await
        .expect("applying");
    let tvc = h
        .wait_connection("html", "Verified=Unknown (not a JSON list)", |t| {
            condition_parts(t, "Verified")
                .is_some_and(|(s, _, m)| s == "Unknown" && m.contains("JSON list"))
        })
        .await;
    let took = started.elapsed();
    eprintln!("a 50 MB page that is not JSON was refused in {took:?}");
    assert!(took < Duration::from_secs(5), "refusing it took {took:?}");
    assert_ne!(
        condition_parts(&tvc, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
}

/// Create (or replace) a source Secret and a connection in another namespace.
async fn connection_in(h: &Harness, ns: &TestNamespace, name: &str, key: &str, token: &str) {
    let secrets: Api<Secret> = ns.api();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("src-{name}")},
        "stringData": {"apiKey": key, "authToken": token},
    });
    let apply = PatchParams::apply("trackvia-tests").force();
    secrets
        .patch(&format!("src-{name}"), &apply, &Patch::Apply(&secret))
        .await
        .expect("applying the source Secret");
    let spec =
        json!({"host": h.fake.host(), "credentialsSecretRef": {"name": format!("src-{name}")}});
    apply_connection(&ns.api::<TrackViaConnection>(), FIELD_MANAGER, name, spec)
        .await
        .expect("applying the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_creating_many_credentials_does_not_delay_another() {
    let client = trackvia_testsupport::kube::client().await;
    common::ensure_crd(&client).await;
    let quiet = TestNamespace::create(&client, "tvc-quiet").await;
    let mut h = Harness::start(
        "tvc-busy",
        &["--rate-limit", "20", "--namespaces", quiet.name()],
    )
    .await;
    for i in 0..30 {
        h.connect(
            &format!("busy-{i}"),
            &format!("src-{i}"),
            Behavior::Valid,
            json!({}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (key, token) = h.credential(Behavior::Valid);
    let started = Instant::now();
    connection_in(&h, &quiet, "newcomer", &key, &token).await;
    wait_for(
        &quiet.api::<TrackViaConnection>(),
        "newcomer",
        Duration::from_secs(60),
        "the other namespace's new connection to be Ready",
        |t: &TrackViaConnection| {
            condition_parts(t, "Ready").is_some_and(|(s, r, _)| s == "True" && r == "Verified")
        },
    )
    .await;
    let took = started.elapsed();
    let busy_done = h.fake.total_calls().saturating_sub(1);
    eprintln!(
        "the other namespace's connection was Ready after {took:?}, \
         with {busy_done} of the busy namespace's 30 calls made"
    );
    assert!(
        took < Duration::from_secs(10),
        "the other namespace waited {took:?} behind the busy one"
    );
    assert!(busy_done < 30, "the busy namespace was not queued at all");
    h.finish().await;
    quiet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_every_call_to_that_host_and_account_and_calls_resume() {
    let mut h = Harness::start("tvc-pause", &[]).await;
    let (key1, token1) = h.credential(Behavior::Valid);
    let (key2, token2) = h.credential(Behavior::Valid);
    h.put_source("src-1", &key1, &token1).await;
    h.put_source("src-2", &key2, &token2).await;
    for (name, src) in [("one", "src-1"), ("two", "src-2")] {
        h.apply_connection(name, src, json!({}))
            .await
            .expect("applying");
        h.wait_ready(name, "True", "Verified").await;
    }
    h.fake.set(
        &key1,
        &token1,
        Behavior::RateLimited {
            retry_after: Some(20),
        },
    );
    h.request_verification("one").await;
    h.wait_connection("one", "Verified=Unknown/RateLimited", |t| {
        condition_parts(t, "Verified").is_some_and(|(_, r, _)| r == "RateLimited")
    })
    .await;
    let paused_at = Instant::now();
    h.fake.set(&key1, &token1, Behavior::Valid);
    // Another credential on the same host and account waits for the pause too.
    h.request_verification("two").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        h.fake.calls_for(&key2, &token2),
        1,
        "a call went to the paused host during its Retry-After"
    );
    // Both resume by themselves once the pause is over.
    let tvc = h
        .wait_connection("two", "the forced check after the pause", forced_check_done)
        .await;
    let resumed = paused_at.elapsed();
    eprintln!("the paused call went {resumed:?} after the 429");
    assert!(
        resumed >= Duration::from_secs(17),
        "resumed after {resumed:?}"
    );
    assert_eq!(h.fake.calls_for(&key2, &token2), 2);
    assert_eq!(
        condition_parts(&tvc, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    h.wait_connection("one", "Verified=True again", |t| {
        condition_parts(t, "Verified").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_checks_are_limited_to_one_a_minute_per_connection() {
    let mut h = Harness::start("tvc-forced", &[]).await;
    let (key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;
    let first = Instant::now();
    for _ in 0..4 {
        h.request_verification("crm").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(
        h.fake.calls_for(&key, &token),
        2,
        "one forced check in the first minute"
    );
    // The last request is honoured once the minute is over.
    wait_for(
        &h.connections(),
        "crm",
        Duration::from_secs(90),
        "the last forced check",
        forced_check_done,
    )
    .await;
    let after = first.elapsed();
    eprintln!("the deferred forced check ran {after:?} after the first");
    assert!(after >= Duration::from_secs(55), "{after:?}");
    assert_eq!(h.fake.calls_for(&key, &token), 3);
    h.finish().await;
}

#[tokio::test]
async fn the_gateway_s_403_is_a_bad_key_and_an_expiry_inside_errors_is_expired() {
    let mut h = Harness::start("tvc-gateway", &[]).await;
    h.connect("badkey", "src-key", Behavior::KeyNotAccepted, json!({}))
        .await;
    let errors_body = json!({
        "errors": ["Access token expired: the token passed its expiry date"],
        "message": "Unauthorized",
        "name": "accessDenied",
        "code": "401",
    });
    h.connect(
        "expired",
        "src-exp",
        Behavior::Status {
            code: 401,
            body: errors_body.to_string(),
            content_type: Some("application/json".into()),
        },
        json!({}),
    )
    .await;

    let tvc = h.wait_ready("badkey", "False", "Unauthorized").await;
    let (_, _, message) = condition_parts(&tvc, "Verified").expect("Verified");
    assert!(
        message.contains("403") && message.contains("API key"),
        "{message}"
    );
    let tvc = h.wait_ready("expired", "False", "Expired").await;
    let (_, _, message) = condition_parts(&tvc, "Verified").expect("Verified");
    assert!(message.contains("Access token expired"), "{message}");
    h.finish().await;
}
