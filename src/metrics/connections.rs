//! The per-connection gauges, computed at scrape time from the controllers'
//! reflector stores: a deleted connection leaves no series behind.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::crd::ConditionStatus;
use crate::crd::{TrackViaConnection, TrackViaConnectionStatus, condition, reason};

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

/// Reads one instant of a connection's status.
type ValueOf = fn(&TrackViaConnection) -> Option<f64>;

/// The collector of the per-connection gauges.
#[derive(Debug)]
pub(super) struct ConnectionCollector {
    stores: Arc<Mutex<Vec<Store<TrackViaConnection>>>>,
}

impl ConnectionCollector {
    /// A collector reading the stores `stores` holds at each scrape.
    pub(super) fn new(stores: Arc<Mutex<Vec<Store<TrackViaConnection>>>>) -> Self {
        ConnectionCollector { stores }
    }
}

fn seconds(rfc3339: Option<&str>) -> Option<f64> {
    rfc3339
        .and_then(crate::connection::conditions::parse_time)
        .map(|t| t.as_second() as f64)
}

impl Collector for ConnectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stores = self.stores.lock().clone();
        let connections: Vec<_> = stores.iter().flat_map(|s| s.state()).collect();
        encode_values(&mut encoder, &connections)?;
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

/// The instants of each connection's status, in Unix seconds, and its verify interval.
fn encode_values(
    encoder: &mut DescriptorEncoder,
    connections: &Connections,
) -> Result<(), std::fmt::Error> {
    let gauges: [(&str, &str, ValueOf); 4] = [
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
        (
            "trackvia_connection_verify_interval_seconds",
            "How often the connection is verified (seconds); 0 when periodic checks are off",
            |t| {
                crate::connection::parse_duration(&t.spec.verify_interval)
                    .ok()
                    .map(|every| every.as_secs_f64())
            },
        ),
    ];
    for (name, help, value) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for tvc in connections {
            if let Some(v) = value(tvc) {
                ConstGauge::new(v).encode(family.encode_family(&labels(tvc))?)?;
            }
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
            .map(|c| c.reason.to_string())
            .unwrap_or_else(|| "VerificationPending".into());
        let value = i64::from(cond.is_some_and(|c| c.status == ConditionStatus::True));
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
    use crate::metrics::Metrics;
    use kube::runtime::{reflector, watcher};
    use prometheus_client::registry::Registry;
    use std::time::Duration;

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
        metrics.source_watch_changed("namespace", 1);

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
