//! The chart's alerts for the alert tests: their names, the PrometheusRule rendered into a
//! rule file, and what the live test with a real Prometheus needs (its configuration, a
//! consumer Deployment, polling, and its table of connections).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::tools::rendered_rule_file;

pub const RELEASE: &str = "tvo";
pub const RELEASE_NAMESPACE: &str = "trackvia-system";

pub const EXPIRING: &str = "TrackViaTokenExpiringSoon";
pub const EXPIRED: &str = "TrackViaTokenExpired";
pub const NOT_READY: &str = "TrackViaConnectionNotReady";
pub const STALE: &str = "TrackViaVerificationStale";
pub const DOWN: &str = "TrackViaOperatorDown";
pub const ALERTS: [&str; 5] = [EXPIRED, EXPIRING, NOT_READY, STALE, DOWN];

/// A temporary directory holding `rules.yaml`, the rules rendered with `sets`.
pub fn rendered_rules(sets: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("trackvia-rules-")
        .tempdir()
        .expect("a temporary directory");
    let rules = rendered_rule_file(RELEASE, RELEASE_NAMESPACE, sets);
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rules).expect("YAML"),
    )
    .expect("writing rules.yaml");
    dir
}

/// Alert names in a rendered rule file.
pub fn alert_names(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect()
}

/// `for:` of the alerts in the live test: long enough to see them pending first.
pub const FOR: Duration = Duration::from_secs(8);

/// Prometheus's configuration: the operator's metrics endpoint scraped every second the way
/// the chart's ServiceMonitor does (its job name, `honor_labels`, the release namespace as
/// the target's namespace), and the rendered rules evaluated every second.
pub fn prometheus_config(metrics_port: u16) -> String {
    let job = format!("{RELEASE}-trackvia-operator-metrics");
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yaml
scrape_configs:
  - job_name: {job}
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
        labels:
          namespace: {RELEASE_NAMESPACE}
          pod: {RELEASE}-trackvia-operator-0
"#
    )
}

/// Polls `probe` until it gives a value, for at most `timeout`.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the test saw of one alert on one connection.
#[derive(Debug, Default)]
pub struct Seen {
    pub pending: bool,
    pub firing: bool,
    /// Seconds from `activeAt` to the first poll that saw it firing.
    pub firing_after: Option<f64>,
}

/// A connection of the live test: how the fake answers for it, its spec, the Ready status
/// and reason it reaches, and the alert it raises.
pub struct Case {
    pub name: &'static str,
    pub behavior: Behavior,
    pub spec: Value,
    pub status: &'static str,
    pub reason: &'static str,
    pub alert: Option<&'static str>,
}
