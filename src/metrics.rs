//! Metrics: counters and histograms updated by the controller, and
//! per-connection gauges computed at scrape time from the reflector stores (so a
//! deleted connection leaves no series behind). No label carries a credential
//! or free text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::{TrackViaConnection, TrackViaConnectionStatus, condition, reason};
use crate::trackvia::VerificationOutcome;

/// Label set `{code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// HTTP status code, or `none` when there was no answer.
    pub code: String,
}

/// Label set `{result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// A bounded outcome name.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    namespace: String,
    name: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SelectorLabel {
    selector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// All metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    /// TrackVia calls by status code.
    pub api_requests: Family<CodeLabel, Counter>,
    /// Verifications by outcome.
    pub verifications: Family<ResultLabel, Counter>,
    /// Duration of TrackVia calls (the HTTP exchange only, not rate-limit waits).
    pub api_request_duration: Histogram,
    /// Reconcile durations.
    pub reconcile_duration: Histogram,
    /// Reconciles that failed.
    pub reconcile_errors: Counter,
    /// Status patches sent.
    pub status_writes: Counter,
    /// Secret applies sent.
    pub secret_writes: Counter,
    /// Secrets read from the API server (source and output Secrets).
    pub secret_reads: Counter,
    /// Secret watch events received (output and source watches).
    pub secret_watch_events: Counter,
    source_watches: Family<SelectorLabel, Gauge>,
    /// Rollout restarts by result.
    pub rollout_restarts: Family<ResultLabel, Counter>,
    /// 1 while this process holds leadership (or runs without election).
    pub leader: Gauge,
    stores: Arc<Mutex<Vec<Store<TrackViaConnection>>>>,
}

impl Metrics {
    /// New metrics, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Metrics {
            api_requests: Family::default(),
            verifications: Family::default(),
            api_request_duration: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            reconcile_errors: Counter::default(),
            status_writes: Counter::default(),
            secret_writes: Counter::default(),
            secret_reads: Counter::default(),
            secret_watch_events: Counter::default(),
            source_watches: Family::default(),
            rollout_restarts: Family::default(),
            leader: Gauge::default(),
            stores: Arc::new(Mutex::new(Vec::new())),
        };
        m.register(registry);
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("trackvia_operator_build_info", "Build information", build);
        let m = Arc::new(m);
        registry.register_collector(Box::new(ConnectionCollector {
            stores: m.stores.clone(),
        }));
        m
    }

    /// Register every metric of `self` in `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "trackvia_api_requests",
            "TrackVia API calls by HTTP status code",
            self.api_requests.clone(),
        );
        registry.register(
            "trackvia_verifications",
            "Verification calls by outcome",
            self.verifications.clone(),
        );
        registry.register(
            "trackvia_api_request_duration_seconds",
            "Duration of TrackVia API calls",
            self.api_request_duration.clone(),
        );
        registry.register(
            "trackvia_reconcile_duration_seconds",
            "Time spent reconciling one connection",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "trackvia_reconcile_errors",
            "Reconciles that ended in an error",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "trackvia_status_writes",
            "Status patches sent to the API server",
            self.status_writes.clone(),
        );
        registry.register(
            "trackvia_secret_writes",
            "Output Secret applies sent to the API server",
            self.secret_writes.clone(),
        );
        registry.register(
            "trackvia_secret_reads",
            "Secrets read from the API server",
            self.secret_reads.clone(),
        );
        registry.register(
            "trackvia_secret_watch_events",
            "Secret watch events received; unrelated Secrets are not watched",
            self.secret_watch_events.clone(),
        );
        for selector in ["name", "namespace"] {
            self.source_watches
                .get_or_create(&SelectorLabel {
                    selector: selector.into(),
                })
                .set(0);
        }
        registry.register(
            "trackvia_source_secret_watches",
            "Open watches of source Secrets, by selector (name or namespace)",
            self.source_watches.clone(),
        );
        registry.register(
            "trackvia_rollout_restarts",
            "Workload rollout restarts by result",
            self.rollout_restarts.clone(),
        );
        registry.register(
            "trackvia_operator_leader",
            "1 while this process reconciles (leader)",
            self.leader.clone(),
        );
    }

    /// Point the scrape-time gauges at the controllers' stores.
    pub fn set_stores(&self, stores: Vec<Store<TrackViaConnection>>) {
        *self.stores.lock().unwrap_or_else(|p| p.into_inner()) = stores;
    }

    /// A source watch opened (`+1`) or closed (`-1`).
    pub fn source_watch_changed(&self, namespace_wide: bool, delta: i64) {
        let selector = if namespace_wide { "namespace" } else { "name" };
        self.source_watches
            .get_or_create(&SelectorLabel {
                selector: selector.into(),
            })
            .inc_by(delta);
    }

    /// Count one verification call.
    pub fn observe_verification(&self, outcome: &VerificationOutcome) {
        let code = outcome
            .http_status()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "none".into());
        self.api_requests.get_or_create(&CodeLabel { code }).inc();
        self.verifications
            .get_or_create(&ResultLabel {
                result: outcome.label().into(),
            })
            .inc();
    }

    /// Record how long one TrackVia call took.
    pub fn observe_api_duration(&self, took: Duration) {
        self.api_request_duration.observe(took.as_secs_f64());
    }

    /// Record one reconcile.
    pub fn observe_reconcile(&self, took: Duration, ok: bool) {
        self.reconcile_duration.observe(took.as_secs_f64());
        if !ok {
            self.reconcile_errors.inc();
        }
    }
}

/// Reads one instant of a connection's status.
type TimeOf = fn(&TrackViaConnection) -> Option<f64>;

#[derive(Debug)]
struct ConnectionCollector {
    stores: Arc<Mutex<Vec<Store<TrackViaConnection>>>>,
}

fn seconds(rfc3339: Option<&str>) -> Option<f64> {
    rfc3339
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second() as f64)
}

impl Collector for ConnectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stores = self
            .stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let connections: Vec<_> = stores.iter().flat_map(|s| s.state()).collect();
        encode_dates(&mut encoder, &connections)?;
        encode_intervals(&mut encoder, &connections)?;
        encode_ready(&mut encoder, &connections)
    }
}

type Connections = [Arc<TrackViaConnection>];

fn labels(tvc: &TrackViaConnection) -> ConnectionLabels {
    ConnectionLabels {
        namespace: tvc.namespace().unwrap_or_default(),
        name: tvc.name_any(),
    }
}

/// The instants of each connection's status, in Unix seconds.
fn encode_dates(
    encoder: &mut DescriptorEncoder,
    connections: &Connections,
) -> Result<(), std::fmt::Error> {
    let time_gauges: [(&str, &str, TimeOf); 3] = [
        (
            "trackvia_connection_token_expiration_timestamp_seconds",
            "When the connection's token expires (Unix seconds)",
            |t| seconds(dated(t).and_then(|s| s.token_expires_at.as_deref())),
        ),
        (
            "trackvia_connection_expiry_warning_timestamp_seconds",
            "When the connection enters its expiry-warning window (Unix seconds)",
            |t| seconds(dated(t).and_then(|s| s.expiry_warning_at.as_deref())),
        ),
        (
            "trackvia_connection_last_success_timestamp_seconds",
            "When TrackVia last accepted the connection's credentials (Unix seconds)",
            |t| {
                seconds(
                    t.status
                        .as_ref()
                        .and_then(|s| s.last_successful_verification_time.as_deref()),
                )
            },
        ),
    ];
    for (name, help, value) in time_gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for tvc in connections {
            if let Some(v) = value(tvc) {
                ConstGauge::new(v).encode(family.encode_family(&labels(tvc))?)?;
            }
        }
    }
    Ok(())
}

/// Each connection's verify interval.
fn encode_intervals(
    encoder: &mut DescriptorEncoder,
    connections: &Connections,
) -> Result<(), std::fmt::Error> {
    let mut interval = encoder.encode_descriptor(
        "trackvia_connection_verify_interval_seconds",
        "How often the connection is verified (seconds); 0 when periodic checks are off",
        None,
        MetricType::Gauge,
    )?;
    for tvc in connections {
        if let Ok(every) = crate::status::parse_duration(&tvc.spec.verify_interval) {
            ConstGauge::new(every.as_secs_f64()).encode(interval.encode_family(&labels(tvc))?)?;
        }
    }
    Ok(())
}

/// Each connection's readiness, with Ready's reason.
fn encode_ready(
    encoder: &mut DescriptorEncoder,
    connections: &Connections,
) -> Result<(), std::fmt::Error> {
    let mut ready = encoder.encode_descriptor(
        "trackvia_connection_ready",
        "1 when the connection is Ready, 0 otherwise; reason is Ready's reason",
        None,
        MetricType::Gauge,
    )?;
    for tvc in connections {
        let cond = tvc
            .status
            .as_ref()
            .and_then(|s| s.condition(condition::READY));
        let reason = cond
            .map(|c| c.reason.clone())
            .unwrap_or_else(|| "VerificationPending".into());
        let value = i64::from(cond.is_some_and(|c| c.status == "True"));
        let l = ReadyLabels {
            namespace: tvc.namespace().unwrap_or_default(),
            name: tvc.name_any(),
            reason,
        };
        ConstGauge::new(value).encode(ready.encode_family(&l)?)?;
    }
    Ok(())
}

/// The status, for its dates: none when TrackVia accepted the token after its
/// date (a stale date says nothing about expiry and must not raise the
/// expired alert; the ExpiryDateStale reason reports it).
fn dated(t: &TrackViaConnection) -> Option<&TrackViaConnectionStatus> {
    t.status.as_ref().filter(|s| {
        s.condition(condition::EXPIRING)
            .is_none_or(|c| c.reason != reason::EXPIRY_DATE_STALE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    fn connection() -> TrackViaConnection {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
            "metadata": {"name": "crm", "namespace": "ns"},
            "spec": {"host": "acme.trackvia.com", "credentialsSecretRef": {"name": "src"},
                     "verifyInterval": "1h"},
            "status": {
                "tokenExpiresAt": "2027-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Verified",
                                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }
        }))
        .expect("a connection")
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
        text
    }

    #[test]
    fn connection_gauges_are_read_from_the_store_at_scrape_time() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let (reader, mut writer) = reflector::store::<TrackViaConnection>();
        writer.apply_watcher_event(&watcher::Event::Apply(connection()));
        metrics.set_stores(vec![reader]);
        metrics.observe_reconcile(Duration::from_millis(5), false);
        metrics.source_watch_changed(true, 1);

        let text = scrape(&registry);
        for line in [
            r#"trackvia_connection_ready{namespace="ns",name="crm",reason="Verified"} 1"#,
            r#"trackvia_connection_token_expiration_timestamp_seconds{namespace="ns",name="crm"} 1798761600"#,
            r#"trackvia_connection_verify_interval_seconds{namespace="ns",name="crm"} 3600"#,
            r#"trackvia_source_secret_watches{selector="namespace"} 1"#,
            "trackvia_reconcile_errors_total 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // No success yet: no series for it.
        assert!(!text.contains("trackvia_connection_last_success_timestamp_seconds{"));

        // A deleted connection leaves no series behind.
        writer.apply_watcher_event(&watcher::Event::Delete(connection()));
        assert!(!scrape(&registry).contains(r#"name="crm""#));
    }
}
