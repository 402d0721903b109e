//! The operator against the real test bed and the fake TrackVia when verification fails
//! for a while: rate limits, server errors and timeouts, missing credentials. Each test runs
//! its own operator in its own namespace and ends with a leak audit.

mod common;

use std::time::Duration;

use common::{Harness, condition};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use trackvia_testsupport::fake::Behavior;

#[tokio::test]
async fn rate_limits_keep_ready_and_honour_retry_after() {
    let mut h = Harness::start("tvc-429", &[]).await;
    let (key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;

    h.fake.set(
        &key,
        &token,
        Behavior::RateLimited {
            retry_after: Some(30),
        },
    );
    h.request_verification("crm").await;
    let tvc = h
        .wait_connection("crm", "Verified=Unknown/RateLimited", |t| {
            t.status
                .as_ref()
                .and_then(|s| s.condition("Verified"))
                .is_some_and(|c| c.reason == "RateLimited")
        })
        .await;
    assert_eq!(condition(&tvc, "Verified").status, "Unknown");
    assert_eq!(
        condition(&tvc, "Ready").status,
        "True",
        "a 429 does not flip Ready"
    );
    let status = tvc.status.unwrap();
    assert_eq!(status.consecutive_failures, 1);
    let last: jiff::Timestamp = status.last_verified_time.unwrap().parse().unwrap();
    let next: jiff::Timestamp = status.next_verification_time.unwrap().parse().unwrap();
    assert!(
        next.duration_since(last).as_secs() >= 30,
        "Retry-After honoured: {last} → {next}"
    );
    let calls = h.fake.total_calls();
    // With --retry-base 1s an unhonoured Retry-After would retry within seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(h.fake.total_calls(), calls, "no call before Retry-After");
    h.finish().await;
}

#[tokio::test]
async fn server_errors_and_timeouts_are_not_unauthorized() {
    let mut h = Harness::start("tvc-5xx", &["--request-timeout", "1s"]).await;
    let (key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;

    for (i, (behavior, expect)) in [
        (Behavior::ServerError, "500"),
        (Behavior::Slow(Duration::from_secs(3)), "timed out"),
        (Behavior::CloseConnection, "connection closed"),
    ]
    .into_iter()
    .enumerate()
    {
        h.fake.set(&key, &token, behavior);
        let before = h.fake.total_calls();
        // One forced check starts the failures (forced checks are one a minute);
        // the retries that follow meet the next failures by themselves.
        if i == 0 {
            h.request_verification("crm").await;
        }
        let tvc = h
            .wait_connection("crm", &format!("a transient failure ({expect})"), |t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.condition("Verified"))
                    .is_some_and(|c| c.message.contains(expect))
            })
            .await;
        assert!(h.fake.total_calls() > before);
        assert_eq!(condition(&tvc, "Verified").status, "Unknown");
        assert_eq!(condition(&tvc, "Verified").reason, "TransientFailure");
        let ready = condition(&tvc, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Verified"),
            "Ready keeps its last answer"
        );
    }
    // A new connection that meets only failures is pending, never Unauthorized.
    h.connect("fresh", "src2", Behavior::ServerError, json!({}))
        .await;
    let tvc = h
        .wait_connection("fresh", "a first transient failure", |t| {
            t.status
                .as_ref()
                .is_some_and(|s| s.consecutive_failures >= 1)
        })
        .await;
    assert_eq!(condition(&tvc, "Ready").status, "Unknown");
    assert_eq!(condition(&tvc, "Ready").reason, "VerificationPending");
    // Recovery: the next retry's success clears it.
    h.fake.set(&key, &token, Behavior::Valid);
    h.wait_connection("crm", "recovery", |t| {
        t.status.as_ref().is_some_and(|s| {
            s.consecutive_failures == 0
                && s.condition("Verified").is_some_and(|c| c.status == "True")
        })
    })
    .await;
    h.finish().await;
}

#[tokio::test]
async fn missing_credentials_recover_when_the_secret_appears() {
    let mut h = Harness::start("tvc-missing", &[]).await;
    h.apply_connection("crm", "later", json!({}))
        .await
        .expect("applying");
    let tvc = h.wait_ready("crm", "False", "CredentialsNotFound").await;
    assert!(condition(&tvc, "Ready").message.contains("later"));
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("later", &key, &token).await;
    h.wait_ready("crm", "True", "Verified").await;
    assert!(h.secrets_api().get_opt("crm").await.unwrap().is_some());

    // A missing key in the Secret is reported the same way.
    let api = h.secrets_api();
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "partial"}, "stringData": {"apiKey": key}});
    api.patch(
        "partial",
        &PatchParams::apply("trackvia-tests"),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
    h.apply_connection("partly", "partial", json!({}))
        .await
        .expect("applying");
    let tvc = h.wait_ready("partly", "False", "CredentialsNotFound").await;
    assert!(condition(&tvc, "Ready").message.contains("authToken"));
    h.finish().await;
}
