//! The controller: watches, reads, calls and writes. Every decision is delegated
//! to the pure modules (`status`, `secret`, `trackvia`'s classifier).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt, future};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, GetParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::adoption::{self, LetGo};
use crate::kube_helpers::{WatchBackoff, scoped_api, short_kube_error};
use crate::crd::{
    CONNECTION_ANNOTATION, MANAGED_BY_LABEL, MANAGER_NAME, TrackViaConnection,
    TrackViaConnectionStatus, VERIFY_REQUESTED_ANNOTATION,
};
use crate::metrics::{Metrics, ResultLabel};
use crate::restart::{self, RestartResult};
use crate::secret::{self, Ownership};
use crate::source_read::{self, ReadFailures};
use crate::status::{self, Observation, SecretOutcome, Settings, Verification};
use crate::trackvia::{
    AllowedHosts, Ask, CallerId, Credentials, Freshness, Verifier, VerifyRequest,
};
use crate::watches::{self, Relist, SecretMeta, SourceWatchContext, Sources};
use crate::{Error, Result};

/// Field manager for every write.
pub const FIELD_MANAGER: &str = "trackvia-operator";

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
    /// Source Secrets of one namespace watched one by one, by name; above
    /// this, one namespace-wide watch.
    pub source_watch_limit: usize,
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
    /// The last status written per connection (by uid), with the resourceVersion
    /// the write produced: a reconcile that runs before the watch has delivered
    /// that write starts from it instead of the stale cached copy.
    pub written:
        std::sync::Mutex<std::collections::HashMap<String, (u64, TrackViaConnectionStatus)>>,
    /// Output Secrets this process wrote or checked, so neither the watch event
    /// of its own apply nor a later reconcile needs to read them again.
    pub outputs: Outputs,
    /// The output Secrets (metadata only), one store per watched scope.
    pub owned: Vec<Store<SecretMeta>>,
    /// Source Secrets: versions reported by their watches and credentials read.
    pub sources: Arc<Sources>,
    /// Source Secrets that could not be read, since when.
    pub source_failures: ReadFailures,
}

/// Output Secrets (namespace, name) → (resourceVersion, fingerprint of the
/// desired Secret) at which this process last wrote or found them as wanted.
pub type Outputs =
    Arc<std::sync::Mutex<std::collections::HashMap<(String, String), (String, u64)>>>;

impl Context {
    /// The status to start from: the cached one, or the one this process wrote
    /// last when the cache has not caught up with that write yet.
    fn freshest_status(&self, tvc: &TrackViaConnection) -> Option<TrackViaConnectionStatus> {
        let uid = tvc.uid()?;
        let cached_rv = tvc.resource_version().and_then(|rv| rv.parse::<u64>().ok());
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        match (written.get(&uid), cached_rv) {
            (Some((rv, status)), Some(cached)) if cached < *rv => Some(status.clone()),
            (Some(_), _) => {
                written.remove(&uid);
                None
            }
            _ => None,
        }
    }

    /// The output Secret `ns/name` as the owned-Secret watch last saw it.
    fn owned_meta(&self, ns: &str, name: &str) -> Option<Arc<SecretMeta>> {
        let key = ObjectRef::new(name).within(ns);
        self.owned.iter().find_map(|store| store.get(&key))
    }

    fn output_state(&self, ns: &str, name: &str) -> Option<(String, u64)> {
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    fn set_output_state(&self, ns: &str, name: &str, resource_version: Option<String>, fp: u64) {
        let mut outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ns.to_string(), name.to_string());
        match resource_version {
            Some(rv) => {
                if outputs.len() >= 50_000 {
                    outputs.clear();
                }
                outputs.insert(key, (rv, fp));
            }
            None => {
                outputs.remove(&key);
            }
        }
    }

    fn remember_written(
        &self,
        tvc: &TrackViaConnection,
        resource_version: Option<String>,
        status: &TrackViaConnectionStatus,
    ) {
        let (Some(uid), Some(rv)) = (
            tvc.uid(),
            resource_version.and_then(|rv| rv.parse::<u64>().ok()),
        ) else {
            return;
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.len() >= 50_000 {
            // Entries of deleted connections are never looked up again; start afresh.
            written.clear();
        }
        written.insert(uid, (rv, status.clone()));
    }
}

/// Run the controllers (one per watched namespace, or one for all) until shutdown.
pub async fn run(
    client: Client,
    config: Config,
    verifier: Arc<Verifier>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) {
    let reporter = Reporter {
        controller: MANAGER_NAME.into(),
        instance: Some(config.instance.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let owned: Vec<_> = scopes.iter().map(|_| reflector::store()).collect();
    let clock = config.clock;
    let observed = metrics.clone();
    verifier.start(
        move || clock.now(),
        move |answer| {
            observed.observe_verification(&answer.outcome);
            observed.observe_api_duration(answer.took);
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        verifier,
        recorder,
        metrics: metrics.clone(),
        config: config.clone(),
        written: std::sync::Mutex::new(std::collections::HashMap::new()),
        outputs: Outputs::default(),
        owned: owned.iter().map(|(reader, _)| reader.clone()).collect(),
        sources: Arc::new(Sources::default()),
        source_failures: ReadFailures::default(),
    });

    let mut runs = Vec::new();
    let mut stores = Vec::new();
    for (scope, (_, owned_writer)) in scopes.into_iter().zip(owned) {
        let (controller, store, source_watches) =
            build_controller(&ctx, scope.as_deref(), owned_writer);
        stores.push(store);
        let ctx = ctx.clone();
        let controller = controller
            .graceful_shutdown_on(shutdown_signal())
            .run(reconcile, error_policy, ctx)
            .for_each(|res| async move {
                match res {
                    Ok((obj, _)) => debug!(namespace = obj.namespace.as_deref().unwrap_or(""), name = %obj.name, "reconciled"),
                    Err(e) => debug!(error = %e, "reconcile loop"),
                }
            });
        // The source watches live as long as their controller.
        runs.push(
            async move {
                tokio::select! {
                    () = controller => {}
                    () = source_watches => {}
                }
            }
            .boxed(),
        );
    }
    metrics.set_stores(stores.clone());
    let orphans =
        adoption::release_orphans(client, stores.clone(), ctx.owned.clone(), metrics.clone());
    let readiness = async move {
        for store in &stores {
            let _ = store.wait_until_ready().await;
        }
        ready.store(true, Ordering::SeqCst);
        info!("caches synced; reconciling");
    };
    // The orphan scan never ends by itself: it stops with the controllers.
    tokio::select! {
        _ = async { tokio::join!(readiness, future::join_all(runs)) } => {}
        () = orphans => {}
    }
}

/// The controller of one scope (a namespace, or all), its connection store,
/// and the task keeping its source-Secret watches.
fn build_controller(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    owned_writer: reflector::store::Writer<SecretMeta>,
) -> (
    Controller<TrackViaConnection>,
    Store<TrackViaConnection>,
    future::BoxFuture<'static, ()>,
) {
    let client = &ctx.client;
    let connections: Api<TrackViaConnection> = scoped_api(client, namespace);
    // Metadata only, and only the Secrets carrying the operator's label.
    let outputs: Api<SecretMeta> = scoped_api(client, namespace);
    let (reader, writer) = reflector::store();
    // Reconcile on spec changes and on a new verify-requested-at value, not on our own status writes.
    let relevant = |obj: &TrackViaConnection| {
        let generation = obj.meta().generation.unwrap_or_default();
        let requested = obj
            .annotations()
            .get(VERIFY_REQUESTED_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        Some(hash_of(&(generation, requested)))
    };
    let connections_changed = Arc::new(tokio::sync::Notify::new());
    let notify = connections_changed.clone();
    let stream = watcher(connections, watcher::Config::default().any_semantic())
        .backoff(WatchBackoff::default())
        .modify(|tvc: &mut TrackViaConnection| {
            tvc.managed_fields_mut().clear();
        })
        .reflect(writer)
        .inspect(move |_| notify.notify_one())
        .applied_objects()
        .predicate_filter(relevant, PredicateConfig::default());
    let selector = format!("{MANAGED_BY_LABEL}={MANAGER_NAME}");
    let metrics = ctx.metrics.clone();
    let (trigger, triggered) = futures::channel::mpsc::unbounded();
    // An output Secret deleted while the watch was away is missing from its
    // relist, which raises no event: its connection is told at the end of the relist.
    let vanished = trigger.clone();
    let stored = owned_writer.as_reader();
    let mut relist = Relist::default();
    let output_events = watcher(
        outputs,
        watcher::Config::default().labels(&selector).any_semantic(),
    )
    .backoff(WatchBackoff::default())
    .modify(|meta: &mut SecretMeta| {
        meta.managed_fields_mut().clear();
    })
    .inspect(move |event| {
        let Some(listed) = event.as_ref().ok().and_then(|e| relist.follow(e)) else {
            return;
        };
        for gone in stored.state() {
            if let (Some(ns), Some(owner)) = (
                gone.namespace(),
                gone.annotations().get(CONNECTION_ANNOTATION),
            ) && !listed.contains(&(ns.clone(), gone.name_any()))
            {
                let _ = vanished.unbounded_send(ObjectRef::new(owner).within(&ns));
            }
        }
    })
    .reflect(owned_writer)
    .inspect(move |event| {
        if let Ok(
            watcher::Event::Apply(_) | watcher::Event::InitApply(_) | watcher::Event::Delete(_),
        ) = event
        {
            metrics.secret_watch_events.inc();
        }
    })
    .touched_objects();
    let source_watches = watches::run_source_watches(
        SourceWatchContext {
            scope: namespace.map(str::to_string),
            client: client.clone(),
            connections: reader.clone(),
            sources: ctx.sources.clone(),
            trigger,
            metrics: ctx.metrics.clone(),
        },
        connections_changed,
        ctx.config.source_watch_limit,
    )
    .boxed();
    let store = reader.clone();
    let outputs_seen = ctx.outputs.clone();
    let controller = Controller::for_stream(stream, reader)
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        // Each watch backs off on its own; a second backoff over the merged
        // streams would let one watch's errors stall all of them.
        .trigger_backoff(WatchBackoff::constant(Duration::from_millis(100)))
        .watches_stream(output_events, move |meta: SecretMeta| {
            output_owner(&outputs_seen, &meta)
        })
        .reconcile_on(triggered)
        .reconcile_on(
            ctx.verifier
                .wakeups(namespace)
                .map(|(ns, name)| ObjectRef::new(&name).within(&ns)),
        );
    (controller, store, source_watches)
}

fn hash_of<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The connection an output Secret was published for, unless the event is
/// the echo of this process's own write (nothing to repair).
fn output_owner(outputs: &Outputs, meta: &SecretMeta) -> Option<ObjectRef<TrackViaConnection>> {
    let ns = meta.namespace()?;
    let owner = meta.annotations().get(CONNECTION_ANNOTATION)?;
    let own_echo = meta.resource_version().is_some_and(|rv| {
        outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(ns.clone(), meta.name_any()))
            .is_some_and(|(seen, _)| *seen == rv)
    });
    (!own_echo).then(|| ObjectRef::new(owner).within(&ns))
}

/// SIGTERM (what Kubernetes sends) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A fraction in [0, 1) fixed per connection, so a fleet spreads its checks.
fn jitter_for(tvc: &TrackViaConnection) -> f64 {
    let seed = tvc.uid().unwrap_or_else(|| tvc.name_any());
    (hash_of(&seed) % 10_000) as f64 / 10_000.0
}

/// Read a Secret, `None` when it does not exist.
async fn get_secret(
    ctx: &Context,
    ns: &str,
    name: &str,
    params: &GetParams,
) -> Result<Option<Secret>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    ctx.metrics.secret_reads.inc();
    match api.get_with(name, params).await {
        Ok(secret) => Ok(Some(secret)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read the credentials. `Ok(Err(message))` when the Secret or a key is missing.
/// Connections sharing a Secret read it once per version: its watch tells
/// when the copy read earlier is still current.
async fn read_credentials(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
) -> Result<Result<Credentials, String>> {
    let r = &tvc.spec.credentials_secret_ref;
    let key = (ns.to_string(), r.name.clone());
    if let Some(known) = ctx.sources.cached(&key, &r.api_key_key, &r.auth_token_key) {
        return Ok(known);
    }
    // At least the version the watch reported, served by the API server's cache.
    let params = ctx
        .sources
        .seen_version(&key)
        .map(|rv| GetParams::at(&rv))
        .unwrap_or_default();
    let secret = get_secret(ctx, ns, &r.name, &params)
        .await
        .map_err(|source| Error::Kube {
            context: format!("reading Secret {ns}/{}", r.name),
            source,
        })?;
    let Some(secret) = secret else {
        let missing = format!("Secret {} not found in namespace {ns}", r.name);
        ctx.sources.remember(
            &key,
            &r.api_key_key,
            &r.auth_token_key,
            String::new(),
            Err(missing.clone()),
        );
        return Ok(Err(missing));
    };
    let version = secret.resource_version().unwrap_or_default();
    let data = secret.data.unwrap_or_default();
    let creds = secret::credentials_from_data(&r.name, &data, &r.api_key_key, &r.auth_token_key);
    ctx.sources.remember(
        &key,
        &r.api_key_key,
        &r.auth_token_key,
        version,
        creds.clone(),
    );
    Ok(creds)
}

/// When to look again at a connection whose check is queued, should the
/// verifier's wake-up not come first.
const VERIFICATION_RECHECK: Duration = Duration::from_secs(60);

/// The credentials, or the observation standing for their absence: missing,
/// or unreadable once the failure to read them lasts (see [`source_read`]).
/// A failure that may still pass by itself stays an error (retried shortly).
fn unreadable_or(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    read: Result<Result<Credentials, String>>,
) -> Result<Result<Credentials, Observation>> {
    let key = (ns.to_string(), tvc.spec.credentials_secret_ref.name.clone());
    match read {
        Ok(found) => {
            ctx.source_failures.succeeded(&key);
            Ok(found.map_err(Observation::CredentialsNotFound))
        }
        Err(Error::Kube { context, source }) => {
            let code = match &source {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            };
            let failing_for = ctx.source_failures.failed(&key, Instant::now());
            if source_read::lasting(code, failing_for) {
                Ok(Err(Observation::CredentialsUnreadable(format!(
                    "{context}: {}",
                    short_kube_error(&source)
                ))))
            } else {
                Err(Error::Kube { context, source })
            }
        }
        Err(other) => Err(other),
    }
}

/// One pass over one connection.
pub async fn reconcile(tvc: Arc<TrackViaConnection>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&tvc, &ctx).await;
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.is_ok());
    result
}

async fn reconcile_inner(tvc: &TrackViaConnection, ctx: &Context) -> Result<Action> {
    let ns = tvc
        .namespace()
        .ok_or_else(|| Error::Config("TrackViaConnection without namespace".into()))?;
    let name = tvc.name_any();
    let now = ctx.config.clock.now();
    let fresher = ctx.freshest_status(tvc);
    let old = fresher.as_ref().or(tvc.status.as_ref());
    let generation = tvc.meta().generation;
    let verify_requested = tvc
        .annotations()
        .get(VERIFY_REQUESTED_ANNOTATION)
        .map(String::as_str);
    // The output Secret is never the source: refused before anything is read or written.
    let parsed =
        status::parse_spec(&tvc.spec).and_then(|p| adoption::check_target(tvc).map(|()| p));
    let uid = tvc.uid().unwrap_or_default();

    let mut credentials = None;
    // A check waiting for its answer (or for the forced-check limit): whether it
    // was forced, and when to look again if no wake-up comes first.
    let mut waiting: Option<(bool, Duration)> = None;
    let observation = match &parsed {
        Err(msg) => Observation::InvalidSpec(msg.clone()),
        Ok(p) if !ctx.config.allowed_hosts.allows(&p.host) => Observation::HostNotAllowed(format!(
            "host {} is not in the operator's allowed hosts ({}); no request was made",
            p.host, ctx.config.allowed_hosts_text
        )),
        Ok(p) => match unreadable_or(ctx, tvc, &ns, read_credentials(ctx, tvc, &ns).await)? {
            Err(observation) => observation,
            Ok(creds) => {
                let fingerprint = creds.fingerprint(uid.as_bytes());
                let (due, forced) = status::verification_due(
                    p,
                    generation,
                    old,
                    &fingerprint,
                    verify_requested,
                    now,
                );
                let verification = if due {
                    let caller = CallerId {
                        namespace: ns.clone(),
                        name: name.clone(),
                        uid: uid.clone(),
                    };
                    let freshness = Freshness {
                        max_age: p.verify_interval.unwrap_or(Duration::from_secs(3600)),
                        force: forced,
                        last_verified: old
                            .and_then(|o| o.last_verified_time.as_deref())
                            .and_then(|t| t.parse().ok()),
                    };
                    let request = VerifyRequest {
                        caller: &caller,
                        host: &p.host,
                        account_id: tvc.spec.account_id,
                        creds: &creds,
                        freshness,
                        now,
                    };
                    // The call is made by the verifier's scheduler; this pass never waits for it.
                    match ctx.verifier.ask(&request) {
                        Ask::Answer(answer) => {
                            debug!(namespace = %ns, name = %name, outcome = answer.outcome.label(), "verified");
                            Some(Verification {
                                outcome: answer.outcome,
                                at: answer.at,
                            })
                        }
                        Ask::Pending => {
                            waiting = Some((forced, VERIFICATION_RECHECK));
                            None
                        }
                        Ask::Deferred(wait) => {
                            waiting = Some((forced, wait));
                            None
                        }
                    }
                } else {
                    None
                };
                credentials = Some(creds);
                Observation::Credentials {
                    fingerprint,
                    verification,
                    awaiting: waiting.is_some(),
                }
            }
        },
    };

    if let Some((_, wait)) = waiting
        && old.is_none()
    {
        // Nothing to say about a new connection until its first answer.
        return Ok(Action::requeue(wait));
    }
    // A forced check still waiting is recorded as done only with its answer.
    let verify_requested = match waiting {
        Some((true, _)) => old.and_then(|o| o.verify_requested_at.as_deref()),
        _ => verify_requested,
    };
    let target_name = tvc.target_name();
    let input = status::Input {
        spec: parsed.as_ref().ok(),
        generation,
        old,
        observation: &observation,
        jitter: jitter_for(tvc),
        verify_requested,
        secret_name: &target_name,
        now,
        settings: ctx.config.settings,
    };
    let next = status::desired_status(&input);

    let secret_outcome = match (&credentials, &parsed) {
        (Some(creds), Ok(p)) if status::should_publish(tvc.spec.publish, &next) => {
            sync_secret(ctx, tvc, &ns, &p.host, creds).await
        }
        _ => SecretOutcome::NotPublished,
    };
    let mut next = next;
    if let SecretOutcome::Synced { .. } = &secret_outcome {
        next.secret_name = Some(target_name.clone());
    }
    let mut next = status::finish(next, &secret_outcome, tvc.spec.publish, generation, now);

    if let SecretOutcome::Synced { .. } = &secret_outcome
        && let Some(previous) = old.and_then(|o| o.secret_name.as_deref())
        && previous != target_name
    {
        retire_secret(ctx, tvc, &ns, previous).await;
    }

    for t in status::transitions(old, &next) {
        emit(ctx, tvc, &t).await;
    }

    // Consumers restart once the published content has been stable for the
    // debounce window, so a burst of changes causes one restart.
    let mut restart_wake = None;
    if tvc.spec.rollout_restart_targets.is_empty() {
        next.pending_restart_since = None;
    } else {
        if let SecretOutcome::Synced { hash } = &secret_outcome
            && restart::restart_needed(old.and_then(|o| o.published_hash.as_deref()), hash)
        {
            next.pending_restart_since = Some(status::fmt_time(now));
        }
        if let Some(since) = next
            .pending_restart_since
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
        {
            let due = since
                .checked_add(
                    SignedDuration::try_from(ctx.config.restart_debounce)
                        .unwrap_or(SignedDuration::ZERO),
                )
                .unwrap_or(since);
            if now >= due {
                next.pending_restart_since = None;
                if let Some(hash) = next.published_hash.clone() {
                    restart_consumers(ctx, tvc, &ns, &hash, &mut next, now).await;
                }
            } else {
                restart_wake = Some(due.duration_since(now).unsigned_abs());
            }
        }
    }

    if status::changed(old, &next) {
        let written = patch_status(ctx, &ns, &name, &next).await?;
        ctx.remember_written(tvc, written.resource_version(), &next);
    }
    // A Secret that could not be written is tried again soon, one that could
    // not be read now and then.
    let secret_retry =
        matches!(secret_outcome, SecretOutcome::Error(_)).then(|| Duration::from_secs(15));
    let scheduled = match waiting {
        // The due check is asked for already: wake for the other instants only.
        Some(_) => status::next_wakeup(
            &TrackViaConnectionStatus {
                next_verification_time: None,
                ..next.clone()
            },
            now,
        ),
        None => status::next_wakeup(&next, now),
    };
    let source_retry = matches!(observation, Observation::CredentialsUnreadable(_))
        .then_some(source_read::RETRY_EVERY);
    let wake = [
        scheduled,
        restart_wake,
        secret_retry,
        source_retry,
        waiting.map(|w| w.1),
    ]
    .into_iter()
    .flatten()
    .min();
    Ok(match wake {
        // A little past the instant, so the next pass sees it as reached.
        Some(d) => Action::requeue(d + Duration::from_millis(250)),
        None => Action::await_change(),
    })
}

/// After `spec.target.name` changed: let go of the Secret published under the
/// old name as [`adoption::after_rename`] decides. A Secret the operator
/// created under `Delete` is emptied and handed to the garbage collector (the
/// operator has no `delete` on Secrets; an owner reference to an owner that
/// does not exist makes the collector remove it); an adopted one loses only
/// the operator's fields; under `Retain` nothing is touched.
async fn retire_secret(ctx: &Context, tvc: &TrackViaConnection, ns: &str, old_name: &str) {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let existing = match get_secret(ctx, ns, old_name, &GetParams::default()).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            warn!(namespace = %ns, name = %tvc.name_any(), secret = %old_name, error = %short_kube_error(&e), "reading the previous output Secret");
            return;
        }
    };
    let new_name = tvc.target_name();
    let (result, message) = match adoption::after_rename(&existing, tvc) {
        LetGo::Keep(why) => {
            if secret::ownership(&existing.metadata, tvc) == Ownership::Ours {
                let t = status::Transition {
                    warning: false,
                    reason: "SecretMoved".into(),
                    message: format!(
                        "output Secret moved from {old_name} to {new_name}; {old_name} is left as it is: {why}"
                    ),
                };
                emit(ctx, tvc, &t).await;
            }
            return;
        }
        LetGo::Release => (
            adoption::release(&ctx.client, ns, old_name).await,
            format!(
                "output Secret moved from {old_name} to {new_name}; the operator's keys were removed from the adopted Secret {old_name}, which stays with its other keys"
            ),
        ),
        LetGo::Collect => {
            let body = adoption::collect_body(old_name, tvc);
            let result = api
                .patch(
                    old_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await;
            (
                result,
                format!(
                    "output Secret moved from {old_name} to {new_name}; {old_name} was emptied and is garbage-collected"
                ),
            )
        }
    };
    match result {
        Ok(_) => {
            ctx.metrics.secret_writes.inc();
            let t = status::Transition {
                warning: false,
                reason: "SecretMoved".into(),
                message,
            };
            emit(ctx, tvc, &t).await;
        }
        Err(e) => {
            warn!(namespace = %ns, name = %tvc.name_any(), secret = %old_name, error = %short_kube_error(&e), "retiring the previous output Secret")
        }
    }
}

/// Log and publish one transition as an event.
async fn emit(ctx: &Context, tvc: &TrackViaConnection, t: &status::Transition) {
    let ns = tvc.namespace().unwrap_or_default();
    let name = tvc.name_any();
    if t.warning {
        warn!(namespace = %ns, name = %name, reason = %t.reason, "{}", t.message);
    } else {
        info!(namespace = %ns, name = %name, reason = %t.reason, "{}", t.message);
    }
    let event = Event {
        type_: if t.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: t.reason.clone(),
        note: Some(t.message.clone()),
        action: "Verify".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &tvc.object_ref(&())).await {
        warn!(namespace = %ns, name = %name, error = %e, "could not publish event");
    }
}

/// Restart the consumers after a real change of the published content, and
/// report it in the `RolloutRestart` condition and events.
async fn restart_consumers(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    hash: &str,
    next: &mut TrackViaConnectionStatus,
    now: Timestamp,
) {
    let now_text = status::fmt_time(now);
    let (mut done, mut problems) = (Vec::new(), Vec::new());
    for target in &tvc.spec.rollout_restart_targets {
        let result = restart::restart(&ctx.client, ns, target, hash, &now_text).await;
        ctx.metrics
            .rollout_restarts
            .get_or_create(&ResultLabel {
                result: result.label().into(),
            })
            .inc();
        let what = restart::describe(target);
        let transition = match &result {
            RestartResult::Restarted => {
                done.push(what.clone());
                Some(status::Transition {
                    warning: false,
                    reason: "RolloutRestarted".into(),
                    message: format!("restarted {what}: the published credentials changed"),
                })
            }
            RestartResult::AlreadyDone => {
                done.push(what.clone());
                None
            }
            RestartResult::Missing => {
                problems.push(format!("{what} not found"));
                Some(status::Transition {
                    warning: true,
                    reason: "RolloutTargetMissing".into(),
                    message: format!("{what} not found in namespace {ns}; nothing restarted"),
                })
            }
            RestartResult::Failed(msg) => {
                problems.push(format!("{what}: {msg}"));
                Some(status::Transition {
                    warning: true,
                    reason: "RolloutRestartFailed".into(),
                    message: format!("restarting {what} failed: {msg}"),
                })
            }
        };
        if let Some(t) = transition {
            emit(ctx, tvc, &t).await;
        }
    }
    let generation = tvc.meta().generation;
    if problems.is_empty() {
        let message = format!(
            "restarted {} for the credentials published at {now_text}",
            done.join(", ")
        );
        status::set_condition(
            &mut next.conditions,
            restart::CONDITION,
            "True",
            "Restarted",
            &message,
            generation,
            now,
        );
    } else {
        let message = problems.join("; ");
        status::set_condition(
            &mut next.conditions,
            restart::CONDITION,
            "False",
            "RestartIncomplete",
            &message,
            generation,
            now,
        );
    }
}

async fn patch_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &TrackViaConnectionStatus,
) -> Result<TrackViaConnection> {
    let api: Api<TrackViaConnection> = Api::namespaced(ctx.client.clone(), ns);
    let body = serde_json::json!({
        "apiVersion": TrackViaConnection::api_version(&()),
        "kind": TrackViaConnection::kind(&()),
        "status": status,
    });
    let updated = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| Error::Kube {
            context: format!("patching status of {ns}/{name}"),
            source,
        })?;
    ctx.metrics.status_writes.inc();
    Ok(updated)
}

async fn sync_secret(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    host: &str,
    creds: &Credentials,
) -> SecretOutcome {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = tvc.target_name();
    let desired = secret::desired_secret(tvc, host, creds);
    let hash = secret::hash_of(&desired).unwrap_or_default().to_string();
    let fingerprint = serde_json::to_vec(&desired)
        .map(|bytes| hash_of(&bytes))
        .unwrap_or_default();
    // Unchanged since this process wrote (or checked) it for the same content:
    // nothing to read, nothing to write.
    let watched = ctx.owned_meta(ns, &name);
    let watched_version = watched.as_ref().and_then(|m| m.resource_version());
    if let (Some(meta), Some(version)) = (&watched, &watched_version)
        && ctx.output_state(ns, &name) == Some((version.clone(), fingerprint))
        && secret::ownership(&meta.metadata, tvc) == Ownership::Ours
    {
        return SecretOutcome::Synced { hash };
    }
    // At least the version the watch saw. A Secret it has not seen (absent, or
    // not labelled as ours) is read consistently: a stale "not found" must not
    // let the apply merge into a Secret someone else just created.
    let params = match &watched_version {
        Some(rv) => GetParams::at(rv),
        None => GetParams::default(),
    };
    let existing = match get_secret(ctx, ns, &name, &params).await {
        Ok(s) => s,
        Err(e) => {
            return SecretOutcome::Error(format!(
                "reading Secret {name}: {}",
                short_kube_error(&e)
            ));
        }
    };
    if let Some(existing) = &existing {
        match secret::ownership(&existing.metadata, tvc) {
            Ownership::Ours => {}
            Ownership::OtherConnection(other) => {
                return SecretOutcome::Conflict(format!(
                    "Secret {name} is published by TrackViaConnection {other}; choose another spec.target.name"
                ));
            }
            Ownership::Foreign if !tvc.spec.target.adopt => {
                return SecretOutcome::Conflict(format!(
                    "Secret {name} exists and is not managed by trackvia-operator; it is left untouched (set spec.target.adopt: true to take it over)"
                ));
            }
            Ownership::Foreign if existing.type_.as_deref().unwrap_or("Opaque") != "Opaque" => {
                return SecretOutcome::Conflict(format!(
                    "Secret {name} has type {}; only Opaque Secrets are adopted",
                    existing.type_.as_deref().unwrap_or_default()
                ));
            }
            Ownership::Foreign => {}
        }
    }
    // An adopted Secret keeps its other keys, so it never carries an ownerReference.
    let desired = if adoption::is_adopted(existing.as_ref(), tvc) {
        adoption::as_adopted(desired, tvc.spec.target.deletion_policy)
    } else {
        desired
    };
    if !secret::needs_apply(existing.as_ref(), &desired) {
        ctx.set_output_state(
            ns,
            &name,
            existing.as_ref().and_then(|e| e.resource_version()),
            fingerprint,
        );
        return SecretOutcome::Synced { hash };
    }
    match api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(written) => {
            ctx.metrics.secret_writes.inc();
            ctx.set_output_state(ns, &name, written.resource_version(), fingerprint);
            info!(namespace = %ns, name = %tvc.name_any(), secret = %name, "output Secret written");
            SecretOutcome::Synced { hash }
        }
        Err(e) => SecretOutcome::Error(format!("writing Secret {name}: {}", short_kube_error(&e))),
    }
}

/// Requeue after an error, with a short backoff; the error text carries no secrets.
pub fn error_policy(tvc: Arc<TrackViaConnection>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(namespace = tvc.namespace().as_deref().unwrap_or(""), name = %tvc.name_any(), error = %error, "reconcile failed; retrying");
    let jitter = jitter_for(&tvc);
    Action::requeue(Duration::from_secs(5).mul_f64(1.0 + jitter))
}

/// Labels of the output Secrets, for selectors.
pub fn managed_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGER_NAME.to_string())])
}
