//! Metrics: counters and histograms updated by the controller, and
//! per-connection gauges computed at scrape time from the reflector stores (so a
//! deleted connection leaves no series behind). No label carries a credential
//! or free text.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use kube::runtime::reflector::Store;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::TrackViaConnection;
use crate::trackvia::VerificationOutcome;
use connections::ConnectionCollector;

mod connections;

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
    /// 1 once every connection listed at start-up has been reconciled.
    pub initial_sync_done: Gauge,
    /// Connections listed at start-up.
    pub initial_sync_connections: Gauge,
    /// Seconds from the controllers' start until the initial sync was done.
    pub initial_sync_seconds: Gauge<f64, AtomicU64>,
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
            initial_sync_done: Gauge::default(),
            initial_sync_connections: Gauge::default(),
            initial_sync_seconds: Gauge::default(),
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
        registry.register_collector(Box::new(ConnectionCollector::new(m.stores.clone())));
        m
    }

    /// Register every metric of `self` in `registry`, in this order.
    fn register(&self, registry: &mut Registry) {
        self.register_passes(registry);
        self.register_kubernetes(registry);
        self.register_process(registry);
    }

    /// TrackVia calls and reconcile passes.
    fn register_passes(&self, registry: &mut Registry) {
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
    }

    /// Requests to and watches of the API server, and rollout restarts.
    fn register_kubernetes(&self, registry: &mut Registry) {
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
    }

    /// Leadership and the initial sync of this process.
    fn register_process(&self, registry: &mut Registry) {
        registry.register(
            "trackvia_operator_leader",
            "1 while this process reconciles (leader)",
            self.leader.clone(),
        );
        registry.register(
            "trackvia_initial_sync_done",
            "1 once every connection listed at start-up has been reconciled",
            self.initial_sync_done.clone(),
        );
        registry.register(
            "trackvia_initial_sync_connections",
            "Connections listed at start-up (set when the initial sync is done)",
            self.initial_sync_connections.clone(),
        );
        registry.register(
            "trackvia_initial_sync_seconds",
            "Seconds from the start of the controllers until the initial sync was done",
            self.initial_sync_seconds.clone(),
        );
    }

    /// Point the scrape-time gauges at the controllers' stores.
    pub fn set_stores(&self, stores: Vec<Store<TrackViaConnection>>) {
        *self.stores.lock() = stores;
    }

    /// A source watch opened (`+1`) or closed (`-1`).
    pub fn source_watch_changed(&self, selector: &str, delta: i64) {
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
