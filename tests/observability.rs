//! Observability on the real test bed: the per-connection series and counters on
//! `/metrics` for each outcome. The Grafana dashboard is tested in
//! tests/observability_dashboard.rs, the `status` command in tests/status_command.rs.
//! The chart's alert rules and the dashboard's queries are checked with real Prometheus
//! tools in tests/alerts.rs and tests/alerts_prometheus.rs.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Harness;
use common::scrape::*;
use kube::api::DeleteParams;
use serde_json::json;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::wait_for_absent;
use trackvia_testsupport::metrics::Scrape;
use trackvia_testsupport::time::now_seconds;

/// Midnight UTC of `date` in Unix seconds.
fn midnight(date: &str) -> f64 {
    let day: jiff::civil::Date = date.parse().expect("a date");
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a UTC day")
        .timestamp()
        .as_second() as f64
}

// ---------------------------------------------------------------------------------------------
// (a) Series and values per outcome
// ---------------------------------------------------------------------------------------------

const CONNECTION_FAMILIES: [&str; 5] = [
    "trackvia_connection_ready",
    "trackvia_connection_verify_interval_seconds",
    "trackvia_connection_token_expiration_timestamp_seconds",
    "trackvia_connection_expiry_warning_timestamp_seconds",
    "trackvia_connection_last_success_timestamp_seconds",
];

/// A connection of the test: its name, how the fake answers for it, and the Ready status and
/// reason it reaches.
type Outcome = (&'static str, Behavior, &'static str, &'static str);

fn outcomes() -> [Outcome; 4] {
    [
        ("valid", Behavior::Valid, "True", "Verified"),
        ("revoked", Behavior::Revoked, "False", "Unauthorized"),
        ("forbidden", Behavior::Forbidden, "False", "Forbidden"),
        // 401 with TrackVia's "Access token expired" before the date in the spec.
        ("expired", Behavior::Expired, "False", "Expired"),
    ]
}

#[tokio::test]
async fn metrics_follow_each_outcome_and_vanish_with_the_connection() {
    let mut h = Harness::start("obs-metrics", &[]).await;
    let ns = h.ns.name().to_string();
    let cases = outcomes();
    let keys = connect_each(&mut h, &cases).await;
    let m = scrape_until(&h, "a ready series for every connection", |m| {
        cases.iter().all(|(name, _, _, reason)| {
            m.find(
                "trackvia_connection_ready",
                &[("name", name), ("reason", reason)],
            )
            .len()
                == 1
        })
    })
    .await;
    series_per_connection(&m, &ns, &cases);
    let m = counters_agree_with_the_fake(&h, &keys).await;
    no_credential_and_bounded_labels(&h, &m).await;
    deleting_removes_the_series(&h).await;
    h.finish().await;
}

/// Each connection of `cases` with its own credentials, expiring 2099-03-31 with a 48 h
/// warning, at its outcome; the API key of each.
async fn connect_each(h: &mut Harness, cases: &[Outcome]) -> BTreeMap<&'static str, String> {
    let mut keys: BTreeMap<&str, String> = BTreeMap::new();
    for (name, behavior, _, _) in cases {
        let (key, token) = h.credential(behavior.clone());
        keys.insert(name, key.clone());
        h.put_source(&format!("src-{name}"), &key, &token).await;
        h.apply_connection(
            name,
            &format!("src-{name}"),
            json!({"tokenExpiresOn": "2099-03-31", "expiryWarning": "48h"}),
        )
        .await
        .expect("applying");
    }
    for (name, _, status, reason) in cases {
        h.wait_ready(name, status, reason).await;
    }
    keys
}

/// Readiness, expiry, the verify interval and the last success of every connection.
fn series_per_connection(m: &Scrape, ns: &str, cases: &[Outcome]) {
    // Readiness: one series per connection, labelled with Ready's reason.
    for (name, _, status, reason) in cases {
        let series = m.find(
            "trackvia_connection_ready",
            &[("namespace", ns), ("name", name)],
        );
        assert_eq!(series.len(), 1, "{name}: {series:?}");
        assert_eq!(series[0].label("reason"), *reason, "{name}");
        let keys: Vec<&str> = series[0].labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["name", "namespace", "reason"], "{name}");
        let expected = if *status == "True" { 1.0 } else { 0.0 };
        assert_eq!(series[0].value, expected, "{name}");
    }

    // Expiry: 00:00 UTC on tokenExpiresOn, the warning 48 h before, for every connection.
    let expiry = midnight("2099-03-31");
    for (name, ..) in cases {
        let labels = [("namespace", ns), ("name", *name)];
        assert_eq!(
            m.value(
                "trackvia_connection_token_expiration_timestamp_seconds",
                &labels
            ),
            expiry,
            "{name}"
        );
        assert_eq!(
            m.value(
                "trackvia_connection_expiry_warning_timestamp_seconds",
                &labels
            ),
            expiry - 48.0 * 3600.0,
            "{name}"
        );
    }

    // The verify interval: the default 1 h for every connection.
    for (name, ..) in cases {
        let labels = [("namespace", ns), ("name", *name)];
        assert_eq!(
            m.value("trackvia_connection_verify_interval_seconds", &labels),
            3600.0,
            "{name}"
        );
    }

    // Last success: only where TrackVia said yes, and recent.
    let last = m.value(
        "trackvia_connection_last_success_timestamp_seconds",
        &[("name", "valid")],
    );
    assert!(
        (now_seconds() - last).abs() < 120.0,
        "last success {last} is not recent"
    );
    for name in ["revoked", "forbidden", "expired"] {
        assert!(
            m.find(
                "trackvia_connection_last_success_timestamp_seconds",
                &[("name", name)]
            )
            .is_empty(),
            "{name} never succeeded"
        );
    }
}

/// Counters agree with what the fake TrackVia received; the scrape they were read from.
async fn counters_agree_with_the_fake(h: &Harness, keys: &BTreeMap<&str, String>) -> Scrape {
    let m = scrape_until(h, "counters matching the fake's requests", |m| {
        counters_match(m, h)
    })
    .await;
    let requests = h.fake.requests();
    let count = |code: u16| requests.iter().filter(|r| r.status == Some(code)).count() as f64;
    // One call per connection: 200 for valid, 401 for revoked and expired, 403 for forbidden.
    assert_eq!((count(200), count(401), count(403)), (1.0, 2.0, 1.0));
    assert_eq!(requests.len(), 4);
    for code in [200, 401, 403] {
        let code_text = code.to_string();
        assert_eq!(
            m.value("trackvia_api_requests_total", &[("code", &code_text)]),
            count(code),
            "code {code}"
        );
    }
    // Each call's outcome, as the fake answered it.
    let calls_of = |name: &str| -> f64 {
        requests
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(keys[name].as_str()))
            .count() as f64
    };
    for (name, result) in [
        ("valid", "verified"),
        ("revoked", "unauthorized"),
        ("expired", "expired"),
        ("forbidden", "forbidden"),
    ] {
        assert_eq!(
            m.value("trackvia_verifications_total", &[("result", result)]),
            calls_of(name),
            "result {result}"
        );
    }
    assert_eq!(
        m.value("trackvia_api_request_duration_seconds_count", &[]),
        requests.len() as f64
    );
    assert!(m.value("trackvia_reconcile_duration_seconds_count", &[]) >= 3.0);
    assert!(m.value("trackvia_status_writes_total", &[]) >= 3.0);
    assert!(m.value("trackvia_secret_writes_total", &[]) >= 1.0);
    assert_eq!(m.value("trackvia_operator_leader", &[]), 1.0);
    assert_eq!(
        m.value(
            "trackvia_operator_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    m
}

/// No credential anywhere: not in a metric name, a label value or the raw text; and label
/// values are bounded.
async fn no_credential_and_bounded_labels(h: &Harness, m: &Scrape) {
    let raw = h.metrics().await;
    for secret in &h.secrets {
        assert!(!raw.contains(secret.as_str()), "a credential in /metrics");
        for s in &m.samples {
            assert!(!s.name.contains(secret.as_str()));
            for v in s.labels.values() {
                assert!(
                    !v.contains(secret.as_str()),
                    "a credential in a label of {s:?}"
                );
            }
        }
    }
    // Label values are bounded: nothing but names, reasons, codes, results and the version.
    for s in &m.samples {
        for (k, v) in &s.labels {
            assert!(
                v.len() <= 253 && !v.contains(' '),
                "free text in label {k}={v:?} of {}",
                s.name
            );
        }
    }
}

/// Deleting a connection removes its series at once; the others stay.
async fn deleting_removes_the_series(h: &Harness) {
    h.connections()
        .delete("revoked", &DeleteParams::default())
        .await
        .expect("deleting");
    wait_for_absent(
        &h.connections(),
        "revoked",
        Duration::from_secs(30),
        "revoked deleted",
    )
    .await;
    let m = scrape_until(h, "no series of the deleted connection", |m| {
        m.samples.iter().all(|s| s.label("name") != "revoked")
    })
    .await;
    for family in CONNECTION_FAMILIES {
        if family == "trackvia_connection_last_success_timestamp_seconds" {
            continue;
        }
        for name in ["valid", "forbidden", "expired"] {
            assert_eq!(
                m.find(family, &[("name", name)]).len(),
                1,
                "{family} {name}"
            );
        }
    }
}

/// Counters equal the fake's request counts, per code and per result.
fn counters_match(m: &Scrape, h: &Harness) -> bool {
    let requests = h.fake.requests();
    let mut by_code: BTreeMap<String, f64> = BTreeMap::new();
    for r in &requests {
        let code = r
            .status
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into());
        *by_code.entry(code).or_default() += 1.0;
    }
    let scraped: BTreeMap<String, f64> = m
        .find("trackvia_api_requests_total", &[])
        .iter()
        .map(|s| (s.label("code").to_string(), s.value))
        .collect();
    let verifications: f64 = m
        .find("trackvia_verifications_total", &[])
        .iter()
        .map(|s| s.value)
        .sum();
    scraped == by_code && verifications == requests.len() as f64
}
