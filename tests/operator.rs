//! The operator against the real test bed and the fake TrackVia, one test per
//! outcome. Each test runs its own operator, watching only its own namespace,
//! at trace log level, and ends with a leak audit of logs, events, status and
//! metrics.

mod common;

use std::time::Duration;

use common::{Harness, SETTLE, secret_text};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::wait_for;

fn condition<'a>(t: &'a TrackViaConnection, type_: &str) -> &'a trackvia_operator::crd::Condition {
    t.status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

#[tokio::test]
async fn valid_credentials_publish_a_complete_secret() {
    let mut h = Harness::start("tvc-valid", &[]).await;
    let (key, token) = h
        .connect(
            "crm",
            "src",
            Behavior::Valid,
            json!({"tokenExpiresOn": "2099-03-31", "target": {"name": "crm-out"}}),
        )
        .await;
    let tvc = h.wait_ready("crm", "True", "Verified").await;
    let status = tvc.status.clone().unwrap();
    assert_eq!(condition(&tvc, "Verified").status, "True");
    assert!(condition(&tvc, "Verified").message.contains("200"));
    assert_eq!(condition(&tvc, "SecretSynced").status, "True");
    assert_eq!(condition(&tvc, "Expiring").status, "False");
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
    assert!(!fp.is_empty() && !token.contains(&fp) && !key.contains(&fp));

    let out = h.secrets_api().get("crm-out").await.expect("output Secret");
    assert_eq!(secret_text(&out, "apiKey").as_deref(), Some(key.as_str()));
    assert_eq!(
        secret_text(&out, "authToken").as_deref(),
        Some(token.as_str())
    );
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

    // What reached TrackVia: the documented verification call.
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 1, "one call for one connection");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/openapi/views")
    );
    assert_eq!(r.query_param("user_key"), Some(key.as_str()));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert!(
        r.query_param("access_token").is_none(),
        "the token never goes in the URL"
    );
    assert!(r.header("account-id").is_none());

    // Steady state: no further writes or calls without a reason.
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
    h.finish().await;
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

#[tokio::test]
async fn account_id_is_sent_as_the_account_header() {
    let mut h = Harness::start("tvc-account", &[]).await;
    let (key, token) = h.credential(Behavior::Revoked);
    h.fake.set_for_account(&key, &token, 777, Behavior::Valid);
    h.put_source("src", &key, &token).await;
    h.apply_connection("sandbox", "src", json!({"accountId": 777}))
        .await
        .expect("applying");
    h.wait_ready("sandbox", "True", "Verified").await;
    let r = h.fake.last_request().expect("a request");
    assert_eq!(r.header("account-id"), Some("777"));
    assert_eq!(r.account_id, Some(777));
    let out = h.secrets_api().get("sandbox").await.unwrap();
    assert_eq!(secret_text(&out, "accountId").as_deref(), Some("777"));
    h.finish().await;
}

#[tokio::test]
async fn hosts_outside_the_allow_list_are_never_called() {
    let mut h = Harness::start("tvc-allow", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    for (name, host) in [
        ("internal", "metadata.internal"),
        ("ip", "127.0.0.1"),
        ("port", "localhost:1"),
    ] {
        h.apply_connection(name, "src", json!({"host": host}))
            .await
            .expect("applying");
        let tvc = h.wait_ready(name, "False", "HostNotAllowed").await;
        assert!(condition(&tvc, "Ready").message.contains("allowed hosts"));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.fake.total_calls(), 0);
    h.finish().await;
}

#[tokio::test]
async fn the_server_refuses_schema_invalid_connections() {
    let h = Harness::start("tvc-schema", &[]).await;
    let cases = [
        (json!({"host": "https://acme.trackvia.com"}), "spec.host"),
        (json!({"host": "acme.trackvia.com/openapi"}), "spec.host"),
        (
            json!({"tokenExpiresOn": "31/03/2027"}),
            "spec.tokenExpiresOn",
        ),
        (json!({"verifyInterval": "soon"}), "spec.verifyInterval"),
        (json!({"publish": "Sometimes"}), "spec.publish"),
        (
            json!({"target": {"deletionPolicy": "Orphan"}}),
            "spec.target.deletionPolicy",
        ),
        (json!({"accountId": -4}), "spec.accountId"),
    ];
    for (i, (spec, field)) in cases.iter().enumerate() {
        let err = h
            .apply_connection(&format!("bad-{i}"), "src", spec.clone())
            .await
            .expect_err(&format!("the server accepted {spec}"));
        let text = err.to_string();
        assert!(
            text.contains(field),
            "{spec}: error does not name {field}: {text}"
        );
    }
    h.finish().await;
}

#[tokio::test]
async fn a_secret_the_operator_does_not_own_is_never_overwritten() {
    let mut h = Harness::start("tvc-conflict", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken"}, "stringData": {"mine": "keep-me"}});
    h.secrets_api()
        .patch(
            "taken",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&foreign),
        )
        .await
        .unwrap();
    h.apply_connection("crm", "src", json!({"target": {"name": "taken"}}))
        .await
        .expect("applying");
    let tvc = h.wait_ready("crm", "False", "TargetConflict").await;
    assert_eq!(condition(&tvc, "SecretSynced").reason, "TargetConflict");
    assert_eq!(condition(&tvc, "Verified").status, "True");
    let s: Secret = h.secrets_api().get("taken").await.unwrap();
    assert_eq!(secret_text(&s, "mine").as_deref(), Some("keep-me"));
    assert!(secret_text(&s, "authToken").is_none());
    assert!(
        s.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("app.kubernetes.io/managed-by"))
    );
    h.finish().await;
}

// Multi-threaded: the fake TrackVia must keep serving while the test waits on the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_command_reports_each_outcome_with_its_exit_code() {
    let mut h = Harness::start("tvc-verifycmd", &[]).await;
    for (behavior, code, word) in [
        (Behavior::Valid, 0, "Verified"),
        (Behavior::Revoked, 2, "Unauthorized"),
        (Behavior::Expired, 3, "Expired"),
        (Behavior::Forbidden, 4, "Forbidden"),
        (Behavior::ServerError, 5, "Unreachable"),
    ] {
        let (key, token) = h.credential(behavior);
        let out = std::process::Command::new(common::OPERATOR)
            .args(["verify", "--host", &h.fake.host(), "--extra-ca-file"])
            .arg(h.fake.ca_file())
            .env("TRACKVIA_API_KEY", &key)
            .env("TRACKVIA_AUTH_TOKEN", &token)
            .output()
            .expect("running verify");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{word}: {stdout} {stderr}");
        assert!(stdout.starts_with(word), "{stdout}");
        assert!(
            !stdout.contains(&token)
                && !stderr.contains(&token)
                && !stdout.contains(&key)
                && !stderr.contains(&key)
        );
    }
    // From a Secret through the kubeconfig.
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let out = std::process::Command::new(common::OPERATOR)
        .args([
            "verify",
            "--host",
            &h.fake.host(),
            "--secret",
            &format!("{}/src", h.ns.name()),
            "--extra-ca-file",
        ])
        .arg(h.fake.ca_file())
        .env_remove("TRACKVIA_API_KEY")
        .output()
        .expect("running verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = wait_for::<Secret>(&h.secrets_api(), "src", SETTLE, "source", |_| true).await;
    h.finish().await;
}

#[test]
fn the_binary_starts_and_documents_every_flag_with_its_environment_variable() {
    let help = std::process::Command::new(common::OPERATOR)
        .arg("--help")
        .output()
        .expect("running --help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for sub in ["run", "crd", "verify"] {
        assert!(text.contains(sub), "--help lists {sub}: {text}");
    }
    let run = std::process::Command::new(common::OPERATOR)
        .args(["run", "--help"])
        .output()
        .expect("running run --help");
    assert!(run.status.success());
    let text = String::from_utf8_lossy(&run.stdout);
    for (flag, env) in [
        ("--namespaces", "TRACKVIA_NAMESPACES"),
        ("--allowed-hosts", "TRACKVIA_ALLOWED_HOSTS"),
        ("--extra-ca-file", "TRACKVIA_EXTRA_CA_FILE"),
        ("--metrics-addr", "TRACKVIA_METRICS_ADDR"),
        ("--log-format", "TRACKVIA_LOG_FORMAT"),
        ("--log-level", "TRACKVIA_LOG_LEVEL"),
        ("--rate-limit", "TRACKVIA_RATE_LIMIT"),
        ("--concurrency", "TRACKVIA_CONCURRENCY"),
        ("--leader-election", "TRACKVIA_LEADER_ELECTION"),
    ] {
        assert!(
            text.contains(flag) && text.contains(env),
            "run --help documents {flag} / {env}"
        );
    }
    // Bad input is refused with a clear message, before touching any cluster.
    let bad = std::process::Command::new(common::OPERATOR)
        .args([
            "run",
            "--allowed-hosts",
            "a:b",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("running run");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--allowed-hosts"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
