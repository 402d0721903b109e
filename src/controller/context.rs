//! What the reconciles share: the start-up [`Config`], the operator's
//! [`Clock`], the [`Context`] (client, verifier, recorder, metrics, caches)
//! and the controller's [`Error`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};

use super::checks::Checks;
use super::kept::KeptSecret;
use super::source_plan::SourceWatchLimits;
use super::source_read::ReadFailures;
use super::sources::Sources;
use super::written::{Outputs, Written, version_of};
use crate::connection::Settings;
use crate::crd::{MANAGER_NAME, TrackViaConnection};
use crate::metrics::Metrics;
use crate::trackvia::{AllowedHosts, Verifier};

/// Field manager for every write.
pub const FIELD_MANAGER: &str = "trackvia-operator";

/// Errors of a reconcile. Their text never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A connection came without a namespace (never from the API server).
    #[error("configuration: TrackViaConnection {0} without namespace")]
    NoNamespace(String),
}

/// Result with the controller's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operator's clock; tests may shift it (`--clock-offset`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// Added to the system time.
    pub offset: SignedDuration,
}

impl Clock {
    /// The current instant as the operator sees it.
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.offset)
            .unwrap_or_else(|_| Timestamp::now())
    }
}

/// Start-up configuration of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// Hosts the operator may call.
    pub allowed_hosts: AllowedHosts,
    /// The allow list as given, for messages.
    pub allowed_hosts_text: String,
    /// Status knobs.
    pub settings: Settings,
    /// Reconciles at once.
    pub concurrency: u16,
    /// The clock.
    pub clock: Clock,
    /// Name reported on events.
    pub instance: String,
    /// Quiet period before consumers restart after a change.
    pub restart_debounce: Duration,
    /// How many source-Secret watches may be open.
    pub source_watch_limits: SourceWatchLimits,
}

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// TrackVia calls, deduplicated and rate-limited.
    pub verifier: Arc<Verifier>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Configuration.
    pub config: Config,
    /// The last status written per connection, so a reconcile that runs before
    /// the watch has delivered that write starts from it.
    pub written: Written,
    /// Output Secrets this process wrote or checked, so neither the watch event
    /// of its own apply nor a later reconcile needs to read them again.
    pub outputs: Outputs,
    /// The output Secrets, as much as passes read of them ([`KeptSecret`]), one store per
    /// watched scope.
    pub owned: Vec<Store<KeptSecret>>,
    /// Source Secrets: versions reported by their watches and credentials read.
    pub sources: Arc<Sources>,
    /// Source Secrets that could not be read, since when.
    pub source_failures: ReadFailures,
    /// When each connection is looked at again without a change.
    pub checks: Arc<Checks>,
    /// The connections, one store per watched scope (set once they exist).
    pub connections: OnceLock<Vec<Store<TrackViaConnection>>>,
}

impl Context {
    /// The shared state for `config`, reading the output Secrets from `owned`.
    pub fn new(
        client: Client,
        config: Config,
        verifier: Arc<Verifier>,
        metrics: Arc<Metrics>,
        owned: Vec<Store<KeptSecret>>,
    ) -> Context {
        let reporter = Reporter {
            controller: MANAGER_NAME.into(),
            instance: Some(config.instance.clone()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            verifier,
            metrics,
            config,
            written: Written::default(),
            outputs: Outputs::default(),
            owned,
            sources: Arc::new(Sources::default()),
            source_failures: ReadFailures::default(),
            checks: Arc::default(),
            connections: OnceLock::new(),
        }
    }

    /// The connection a pass works on: the store's copy when the watch has
    /// delivered a later version since the pass was queued (what was written
    /// is then no longer kept in [`Written`]).
    pub fn latest(&self, tvc: Arc<TrackViaConnection>) -> Arc<TrackViaConnection> {
        let key = ObjectRef::from_obj(&*tvc);
        let cached = self
            .connections
            .get()
            .and_then(|stores| stores.iter().find_map(|s| s.get(&key)));
        newer(tvc, cached)
    }

    /// Whether `tvc` is still in its scope's store (always, before the stores
    /// exist): a pass that ends after its connection was deleted sets no check.
    pub fn still_stored(&self, tvc: &TrackViaConnection) -> bool {
        stored_in(self.connections.get(), tvc)
    }
}

/// Whether `tvc` is in one of `stores`, or there are no stores yet.
fn stored_in(stores: Option<&Vec<Store<TrackViaConnection>>>, tvc: &TrackViaConnection) -> bool {
    let key = ObjectRef::from_obj(tvc);
    stores.is_none_or(|stores| stores.iter().any(|s| s.get(&key).is_some()))
}

/// `cached` when its resourceVersion is later than `tvc`'s.
pub fn newer(
    tvc: Arc<TrackViaConnection>,
    cached: Option<Arc<TrackViaConnection>>,
) -> Arc<TrackViaConnection> {
    match cached {
        Some(c) if version_of(&c) > version_of(&tvc) => c,
        _ => tvc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: &str, failures: u32) -> Arc<TrackViaConnection> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
                "metadata": {"name": "crm", "namespace": "ns", "resourceVersion": version},
                "spec": {"host": "acme.trackvia.com", "credentialsSecretRef": {"name": "src"}},
                "status": {"consecutiveFailures": failures},
            }))
            .expect("a connection"),
        )
    }

    #[test]
    fn a_pass_starts_from_the_later_of_its_copy_and_the_stores() {
        let failures =
            |c: Arc<TrackViaConnection>| c.status.as_ref().map(|s| s.consecutive_failures);
        // The watch delivered the pass's own write after the pass was queued.
        assert_eq!(failures(newer(at("6", 1), Some(at("7", 2)))), Some(2));
        // The store is not later (or has nothing): the pass's copy.
        assert_eq!(failures(newer(at("7", 2), Some(at("6", 1)))), Some(2));
        assert_eq!(failures(newer(at("7", 2), Some(at("7", 3)))), Some(2));
        assert_eq!(failures(newer(at("7", 2), None)), Some(2));
        // Numbers, not text: "10" is later than "9".
        assert_eq!(failures(newer(at("9", 1), Some(at("10", 2)))), Some(2));
    }

    #[test]
    fn a_connection_is_stored_until_its_scopes_watch_reports_it_deleted() {
        use kube::runtime::{reflector, watcher};
        let (other_scope, _) = reflector::store::<TrackViaConnection>();
        let (scope, mut writer) = reflector::store::<TrackViaConnection>();
        let stores = vec![other_scope, scope];
        let crm = at("7", 0);
        // Before the stores exist, every connection counts as stored.
        assert!(stored_in(None, &crm));
        assert!(!stored_in(Some(&stores), &crm));
        writer.apply_watcher_event(&watcher::Event::Apply((*crm).clone()));
        assert!(stored_in(Some(&stores), &crm));
        // Any version of it: the key is namespace and name.
        assert!(stored_in(Some(&stores), &at("9", 1)));
        writer.apply_watcher_event(&watcher::Event::Delete((*crm).clone()));
        assert!(!stored_in(Some(&stores), &crm));
    }
}
