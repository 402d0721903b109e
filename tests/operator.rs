//! The operator against the real test bed and the fake TrackVia, one test per
//! outcome: valid credentials, classified rejections, a rotated token under a past date.
//! Each test runs its own operator, watching only its own namespace, at trace log level,
//! and ends with a leak audit of logs, events, status and metrics. More outcomes are in
//! operator_failures.rs, operator_refusals.rs and operator_cli.rs.

mod common;

use std::time::Duration;

use common::{Harness, SETTLE, condition, secret_text};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;

#[tokio::test]
async fn valid_credentials_publish_a_complete_secret() {
    let mut h = Harness::start("tvc-valid", &[]).await;
    let (key, token) = common::connect_crm_out(&mut h).await;
    let tvc = h.wait_ready("crm", "True", "Verified").await;
    status_is_complete(&tvc, &key, &token);
    output_secret_is_complete(&h, &tvc, &key, &token).await;
    the_documented_call_reached_trackvia(&h, &key, &token);
    nothing_more_is_written_or_called(&h).await;
    h.finish().await;
}

/// The status of a verified connection: its conditions, dates, last answer, Secret, the
/// generation they describe, and a fingerprint that is neither credential.
fn status_is_complete(tvc: &TrackViaConnection, key: &str, token: &str) {
    let status = tvc.status.clone().unwrap();
    assert_eq!(condition(tvc, "Verified").status, "True");
    assert!(condition(tvc, "Verified").message.contains("200"));
    assert_eq!(condition(tvc, "SecretSynced").status, "True");
    assert_eq!(condition(tvc, "Expiring").status, "False");
    assert_eq!(
        status.token_expires_at.as_deref(),
        Some("2099-03-31T00:00:00Z")
    );
    assert_eq!(
        status.expiry_warning_at.as_deref(),
        Some("2099-03-17T00:00:00Z")
    );
    assert_eq!(status.last_http_status, Some(200));
    assert_eq!(status.secret_name.as_deref(), Some("crm-out"));
    assert!(status.last_verified_time.is_some() && status.next_verification_time.is_some());
    assert_eq!(status.observed_generation, tvc.metadata.generation);
    for c in &status.conditions {
        assert_eq!(c.observed_generation, tvc.metadata.generation, "{c:?}");
    }
    let fp = status.credentials_fingerprint.clone().unwrap();
    assert!(!fp.is_empty() && !token.contains(fp.as_str()) && !key.contains(fp.as_str()));
}

/// The output Secret: every key, the operator's label and hash, owned by the connection.
async fn output_secret_is_complete(h: &Harness, tvc: &TrackViaConnection, key: &str, token: &str) {
    let out = h.secrets_api().get("crm-out").await.expect("output Secret");
    assert_eq!(secret_text(&out, "apiKey").as_deref(), Some(key));
    assert_eq!(secret_text(&out, "authToken").as_deref(), Some(token));
    assert_eq!(
        secret_text(&out, "host").as_deref(),
        Some(h.fake.host().as_str())
    );
    assert_eq!(
        secret_text(&out, "baseUrl"),
        Some(format!("https://{}", h.fake.host()))
    );
    assert!(secret_text(&out, "accountId").is_none());
    assert_eq!(
        out.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "trackvia-operator"
    );
    assert!(
        out.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("trackvia.io/content-hash")
    );
    let owner = &out
        .metadata
        .owner_references
        .as_ref()
        .expect("owner reference")[0];
    assert_eq!(owner.kind, "TrackViaConnection");
    assert_eq!(Some(&owner.uid), tvc.metadata.uid.as_ref());
    assert!(out.string_data.is_none());
}

/// What reached TrackVia: the documented verification call.
fn the_documented_call_reached_trackvia(h: &Harness, key: &str, token: &str) {
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 1, "one call for one connection");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/openapi/views")
    );
    assert_eq!(r.query_param("user_key"), Some(key));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert!(
        r.query_param("access_token").is_none(),
        "the token never goes in the URL"
    );
    assert!(r.header("account-id").is_none());
}

/// Steady state: no further writes or calls without a reason.
async fn nothing_more_is_written_or_called(h: &Harness) {
    let before = h
        .secrets_api()
        .get("crm-out")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let tvc_rv = h
        .connections()
        .get("crm")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.secrets_api()
            .get("crm-out")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before
    );
    assert_eq!(
        h.connections()
            .get("crm")
            .await
            .unwrap()
            .metadata
            .resource_version,
        tvc_rv
    );
    assert_eq!(h.fake.total_calls(), 1);
    // One status write and one Secret write for one new connection: the reconcile
    // triggered by its own Secret write must not write the same status again.
    let metrics = h.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "trackvia_status_writes_total 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "trackvia_secret_writes_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rejections_are_classified() {
    let mut h = Harness::start("tvc-reject", &[]).await;
    let cases = [
        ("revoked", Behavior::Revoked, "Unauthorized"),
        ("deactivated", Behavior::Deactivated, "Unauthorized"),
        ("inactive", Behavior::InactiveUser, "Unauthorized"),
        ("expired", Behavior::Expired, "Expired"),
        ("forbidden", Behavior::Forbidden, "Forbidden"),
    ];
    for (name, behavior, _) in &cases {
        h.connect(
            name,
            &format!("src-{name}"),
            behavior.clone(),
            json!({"tokenExpiresOn": "2099-01-01"}),
        )
        .await;
    }
    // A key TrackVia does not know: 401 with a body that is not JSON.
    let key = common::secret_value("k");
    let token = common::secret_value("t");
    h.secrets.extend([key.clone(), token.clone()]);
    h.put_source("src-badkey", &key, &token).await;
    h.apply_connection("badkey", "src-badkey", json!({}))
        .await
        .expect("applying");

    for (name, _, reason) in cases
        .iter()
        .chain([("badkey", Behavior::Valid, "Unauthorized")].iter())
    {
        let tvc = h.wait_ready(name, "False", reason).await;
        let verified = condition(&tvc, "Verified");
        assert_eq!(verified.status, "False", "{name}");
        assert_eq!(verified.reason, *reason, "{name}");
        let code = if *reason == "Forbidden" { "403" } else { "401" };
        assert!(
            verified.message.contains(code),
            "{name}: {}",
            verified.message
        );
        // Nothing is published for credentials TrackVia refused (publish: Verified).
        assert!(
            h.secrets_api().get_opt(name).await.unwrap().is_none(),
            "{name} published"
        );
        assert_eq!(condition(&tvc, "SecretSynced").reason, "NotPublished");
    }
    // Refusals are results: no retry storm.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.fake.total_calls(),
        cases.len() + 1,
        "one call per connection"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_rotated_token_under_a_past_date_is_checked_and_the_date_flagged_stale() {
    let mut h = Harness::start("tvc-pastdate", &[]).await;
    let (key, _token) = h
        .connect(
            "crm",
            "src",
            Behavior::Valid,
            json!({"tokenExpiresOn": "2020-01-01"}),
        )
        .await;
    // The token the connection starts with is expired by its date, unasked.
    let tvc = h.wait_ready("crm", "False", "Expired").await;
    assert!(
        condition(&tvc, "Ready")
            .message
            .contains("2020-01-01T00:00:00Z")
    );
    assert_eq!(
        tvc.status.as_ref().unwrap().token_expires_at.as_deref(),
        Some("2020-01-01T00:00:00Z")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.fake.total_calls(),
        0,
        "TrackVia is not asked about an expired token"
    );
    assert!(h.secrets_api().get_opt("crm").await.unwrap().is_none());

    // The user rotates the token and forgets the date: it is checked anyway.
    let rotated = common::secret_value("t");
    h.secrets.push(rotated.clone());
    h.fake.set(&key, &rotated, Behavior::Valid);
    h.rotate_source("src", &key, &rotated).await;
    let tvc = h.wait_ready("crm", "True", "ExpiryDateStale").await;
    let expiring = condition(&tvc, "Expiring");
    assert_eq!(
        (expiring.status.as_str(), expiring.reason.as_str()),
        ("True", "ExpiryDateStale")
    );
    assert!(expiring.message.contains("stale"), "{}", expiring.message);
    h.wait_published("crm", &rotated, SETTLE, "the rotated token published")
        .await;
    let events = trackvia_testsupport::kube::recent_events(&h.connections(), "crm").await;
    assert!(
        events.contains("ExpiryDateStale") && events.contains("Warning"),
        "{events}"
    );
    // The expiry alert's gauge says nothing for a date known to be wrong.
    let metrics = h.metrics().await;
    assert!(
        !metrics.lines().any(|l| l
            .starts_with("trackvia_connection_token_expiration_timestamp_seconds")
            && l.contains("name=\"crm\"")),
        "{metrics}"
    );
    assert_eq!(h.fake.total_calls(), 1, "one check of the rotated token");

    // Rotated to a token TrackVia says expired: Expired, and nothing new published.
    let dead = common::secret_value("t");
    h.secrets.push(dead.clone());
    h.fake.set(&key, &dead, Behavior::Expired);
    h.rotate_source("src", &key, &dead).await;
    h.wait_ready("crm", "False", "Expired").await;
    assert_eq!(h.fake.total_calls(), 2);
    h.wait_published("crm", &rotated, SETTLE, "the last verified token kept")
        .await;
    h.finish().await;
}
