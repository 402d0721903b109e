//! The watches that queue a connection: its own, and those of Secrets
//! (metadata only).
//!
//! - Output Secrets: one watch per scope, selected by the operator's
//!   `app.kubernetes.io/managed-by` label, kept in a store (only the fields
//!   read, see [`kept`]) so a reconcile knows whether its Secret still holds what it
//!   wrote without reading it.
//! - Source Secrets: one watch per referenced Secret, selected by name; a
//!   namespace that references more than `--source-watch-limit` Secrets gets
//!   one namespace-wide watch instead, and a scope that would need more than
//!   `--source-watch-total-limit` watches gets one watch of all its Secrets
//!   (each watch is an HTTP connection of its own). Those wider watches keep
//!   nothing of the Secrets no connection references. Unrelated Secrets are
//!   never cached.
//! - Connections: one watch per scope, feeding the controller's store and
//!   queue (spec changes and verify requests only, not its own status writes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, StreamExt, TryStreamExt, future, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::sync::{Semaphore, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info};

use super::checks::Checks;
use super::kept::{self, KeptSecret};
use super::relist::Relist;
use super::source_plan::{SourceWatch, SourceWatchLimits, plan_source_watches, whole_scope};
use super::sources::{SecretKey, Sources};
use super::spec_changes::SpecChanges;
use super::written::{Outputs, Written};
use crate::crd::{MANAGED_BY_LABEL, MANAGER_NAME, TrackViaConnection};
use crate::kube_helpers::{WatchBackoff, scoped_api};
use crate::metrics::Metrics;

/// A Secret's metadata, as the watches deliver it.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// The connections of one scope, kept in `store` (see [`kept::slim_connection`]):
/// the controller's trigger stream. A pass is queued on a spec change and on a
/// new verify-requested-at value, not on the operator's own status writes.
/// `changes` follows every event, and tells its receivers when the Secrets the
/// connections read change, for the source watches' re-plan (which also borrow
/// it to find the readers of a Secret that changed); `written` is told
/// of every connection delivered or deleted, and `checks` of every connection
/// deleted or missing from a relist.
pub fn connection_events(
    client: &Client,
    namespace: Option<&str>,
    store: reflector::store::Writer<TrackViaConnection>,
    changes: watch::Sender<SpecChanges>,
    written: Written,
    checks: Arc<Checks>,
) -> impl Stream<Item = Result<TrackViaConnection, watcher::Error>> + Send + 'static {
    let connections: Api<TrackViaConnection> = scoped_api(client, namespace);
    watcher::watcher(connections, watcher::Config::default().any_semantic())
        .backoff(WatchBackoff::default())
        .modify(kept::slim_connection)
        .reflect(store)
        .inspect(move |event| {
            match event {
                // Not `InitApply`: a relist reaches the store only at its end.
                Ok(Event::Apply(tvc)) => written.delivered(tvc),
                Ok(Event::Delete(tvc)) => written.deleted(tvc),
                _ => {}
            }
        })
        .try_filter_map(move |event| {
            let mut start = None;
            changes.send_if_modified(|spec| {
                let followed = spec.follow(event, |gone| checks.forget(&gone));
                start = followed.start;
                followed.replan
            });
            future::ready(Ok(start))
        })
}

/// The output Secrets of one scope (metadata, the operator's label only), kept
/// in `store` as [`KeptSecret`]s, and the connections to reconcile for their
/// changes: not for the echo of this process's own write. An output Secret
/// deleted while the watch was away is missing from its relist, which raises no
/// event: its connection is sent to `vanished` at the end of the relist. A
/// deleted Secret is forgotten in `written`, so that publishing there again is
/// a create.
pub fn output_events(
    client: &Client,
    metrics: Arc<Metrics>,
    namespace: Option<&str>,
    store: reflector::store::Writer<KeptSecret>,
    vanished: UnboundedSender<ObjectRef<TrackViaConnection>>,
    written: Outputs,
) -> impl Stream<Item = ObjectRef<TrackViaConnection>> + Send + 'static {
    let outputs: Api<SecretMeta> = scoped_api(client, namespace);
    let selector = format!("{MANAGED_BY_LABEL}={MANAGER_NAME}");
    let stored = store.as_reader();
    let mut relist = Relist::default();
    let events = watcher::watcher(
        outputs,
        watcher::Config::default().labels(&selector).any_semantic(),
    )
    .backoff(WatchBackoff::default())
    .map_ok(kept::keep_event)
    .inspect(move |event| {
        let Some(listed) = event.as_ref().ok().and_then(|e| relist.follow(e)) else {
            return;
        };
        for gone in stored.state() {
            if let (Some(ns), Some(owner)) = (gone.namespace(), gone.connection())
                && !listed.contains(&(ns.to_string(), gone.name().to_string()))
            {
                let _ = vanished.unbounded_send(ObjectRef::new(owner).within(ns));
            }
        }
    });
    let echoes = written.clone();
    let scope = namespace.unwrap_or("").to_string();
    reflector::reflector(store, events)
        .inspect(move |event| {
            if let Ok(Event::Delete(gone)) = event
                && let Some(ns) = gone.namespace()
            {
                written.forget(ns, gone.name());
            }
            if let Ok(Event::Apply(_) | Event::InitApply(_) | Event::Delete(_)) = event {
                metrics.secret_watch_events.inc();
            }
        })
        .touched_objects()
        .filter_map(move |touched| {
            future::ready(match touched {
                Ok(kept) => echoes.owner_unless_echo(&kept),
                Err(e) => {
                    debug!(namespace = %scope, error = %e, "output Secret watch");
                    None
                }
            })
        })
}

/// Everything a source watch needs.
#[derive(Clone)]
pub struct SourceWatchContext {
    /// The namespace of the scope, or `None` for all.
    pub scope: Option<String>,
    /// Kubernetes client.
    pub client: Client,
    /// What the connection watch knows of this scope's connections: which
    /// read each Secret.
    pub readers: watch::Receiver<SpecChanges>,
    /// Shared knowledge of the source Secrets.
    pub sources: Arc<Sources>,
    /// Where reconciles are requested.
    pub trigger: UnboundedSender<ObjectRef<TrackViaConnection>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Keep one watch per planned `SourceWatch`, re-planning whenever the Secrets
/// the connections read change (see [`SpecChanges::read_secrets`]). Runs until
/// dropped; dropping it stops every watch.
pub async fn run_source_watches(
    ctx: SourceWatchContext,
    mut secrets_read: watch::Receiver<SpecChanges>,
    limits: SourceWatchLimits,
) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<SourceWatch, AbortHandle> = HashMap::new();
    // The metadata reads of first reports, however many plans asked for them.
    let reads = Arc::new(Semaphore::new(FIRST_REPORT_READS));
    loop {
        // The first plan, before the connections are listed, is empty: the
        // list's end changes the Secrets read and plans again.
        let referenced = secrets_read.borrow_and_update().read_secrets();
        let scope = ctx.scope.as_deref();
        let whole_now = running.contains_key(&whole_scope(scope));
        let plan = plan_source_watches(&referenced, scope, limits, whole_now);
        // Forget unreferenced Secrets first, so a new watch's first report counts.
        let (new, since) = ctx.sources.set_referenced(scope, referenced);
        // A wide watch that keeps running listed the Secrets read for the first
        // time now while nobody read them, and reports them again only when they
        // change: their first report is a read of their metadata.
        let unreported: Vec<SecretKey> = new
            .into_iter()
            .filter(|key| {
                plan.iter()
                    .any(|w| running.contains_key(w) && w.covers(key))
            })
            .collect();
        if !unreported.is_empty() {
            tasks.spawn(first_reports(ctx.clone(), unreported, since, reads.clone()));
        }
        running.retain(|watch, handle| {
            let keep = plan.contains(watch);
            if !keep {
                handle.abort();
                ctx.metrics.source_watch_changed(watch.selector(), -1);
                debug!(?watch, "source watch stopped");
            }
            keep
        });
        for watch in plan {
            if running.contains_key(&watch) {
                continue;
            }
            debug!(?watch, "source watch started");
            ctx.metrics.source_watch_changed(watch.selector(), 1);
            let handle = tasks.spawn(watch_sources(ctx.clone(), watch.clone()));
            running.insert(watch, handle);
        }
        // Reap finished tasks (aborted ones) so the set does not grow.
        while tasks.try_join_next().is_some() {}
        if secrets_read.changed().await.is_err() {
            // The connection watch is gone with its controller, which may still
            // be finishing its passes: the watches stay until this is dropped.
            std::future::pending::<()>().await;
        }
        // Let a burst of connection changes settle into one re-plan.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Metadata reads of first reports made at once.
const FIRST_REPORT_READS: usize = 4;

/// The pauses after a failed metadata read of a first report, before the next
/// try (the last one ends the tries).
const FIRST_REPORT_RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::ZERO,
];

/// One source watch: report versions of referenced Secrets and ask for the
/// reconcile of the connections reading one that changed.
async fn watch_sources(ctx: SourceWatchContext, watch: SourceWatch) {
    let (api, config): (Api<SecretMeta>, _) = match &watch {
        SourceWatch::Name(ns, name) => (
            Api::namespaced(ctx.client.clone(), ns),
            watcher::Config::default()
                .fields(&format!("metadata.name={name}"))
                .any_semantic(),
        ),
        SourceWatch::Namespace(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            watcher::Config::default().any_semantic(),
        ),
        // The API server's cache would answer a list of every Secret of the cluster in
        // one piece; pages of 500 keep what is held at a time small.
        SourceWatch::All => (Api::all(ctx.client.clone()), watcher::Config::default()),
    };
    let mut stream = watcher::watcher(api, config)
        .backoff(WatchBackoff::default())
        .boxed();
    let mut relist = Relist::default();
    // What a relist judges: the Secrets read when it starts, the only ones kept of
    // what it lists. (One first read later may have been listed before: its first
    // report is a read, see `first_reports`.)
    let mut judged: HashSet<SecretKey> = HashSet::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                debug!(?watch, error = %e, "source Secret watch");
                continue;
            }
        };
        let followed = match &event {
            Event::Init => {
                judged = match &watch {
                    SourceWatch::Name(ns, name) => vec![(ns.clone(), name.clone())],
                    SourceWatch::Namespace(ns) => ctx.sources.referenced_in(Some(ns)),
                    SourceWatch::All => ctx.sources.referenced_in(None),
                }
                .into_iter()
                .collect();
                true
            }
            Event::InitApply(meta) => judged.contains(&key_of(meta)),
            _ => true,
        };
        if followed && let Some(listed) = relist.follow(&event) {
            for key in judged.drain() {
                if !listed.contains(&key) {
                    note(&ctx, &key, None);
                }
            }
            continue;
        }
        let (meta, deleted) = match event {
            Event::InitApply(meta) | Event::Apply(meta) => (meta, false),
            Event::Delete(meta) => (meta, true),
            Event::Init | Event::InitDone => continue,
        };
        ctx.metrics.secret_watch_events.inc();
        let key = key_of(&meta);
        let version = if deleted {
            None
        } else {
            meta.resource_version()
        };
        note(&ctx, &key, version);
    }
    info!(?watch, "source Secret watch ended");
}

/// Read the metadata of `keys`, read since plan `since`, and report each as its
/// watch would, at most `reads` at a time across plans.
async fn first_reports(
    ctx: SourceWatchContext,
    keys: Vec<SecretKey>,
    since: u64,
    reads: Arc<Semaphore>,
) {
    stream::iter(keys)
        .for_each_concurrent(None, |key| first_report(&ctx, key, since, &reads))
        .await;
}

/// The first report of `key`, unless its watch reported it first. A failed
/// read is tried again a few times, then reports nothing: the passes read the
/// Secret as they do before any report.
async fn first_report(ctx: &SourceWatchContext, key: SecretKey, since: u64, reads: &Semaphore) {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.0);
    for retry in FIRST_REPORT_RETRIES {
        let found = {
            let Ok(_turn) = reads.acquire().await else {
                return;
            };
            ctx.metrics.secret_reads.inc();
            api.get_metadata_opt(&key.1).await
        };
        match found {
            Ok(found) => {
                let version = found.and_then(|meta| meta.resource_version());
                if ctx.sources.observe_first(&key, since, version) {
                    ask_readers(ctx, &key);
                }
                return;
            }
            Err(e) => debug!(namespace = %key.0, error = %e, "source Secret metadata"),
        }
        tokio::time::sleep(retry).await;
        if !ctx.sources.is_referenced(&key) || ctx.sources.seen_version(&key).is_some() {
            return;
        }
    }
}

/// A Secret's (namespace, name).
fn key_of(meta: &SecretMeta) -> SecretKey {
    (meta.namespace().unwrap_or_default(), meta.name_any())
}

fn note(ctx: &SourceWatchContext, key: &SecretKey, version: Option<String>) {
    if ctx.sources.observe(key, version) {
        ask_readers(ctx, key);
    }
}

/// Queue a pass of every connection reading `key`.
fn ask_readers(ctx: &SourceWatchContext, key: &SecretKey) {
    // Collected first: the connection watch waits while this is borrowed.
    let readers = ctx.readers.borrow().readers_of(key);
    for reader in readers {
        let _ = ctx.trigger.unbounded_send(reader.to_ref());
    }
}
