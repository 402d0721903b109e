//! The controller: its start-up configuration, the [`Context`] its reconciles
//! share, and the assembly of one kube-rs controller per watched scope.
//!
//! The path of a connection: a watch event ([`watches`]) queues it; a pass
//! ([`reconcile`]) reads what it needs, takes every decision from pure code
//! ([`plan`], `status`, [`secret`], [`adoption`]) and hands the result to
//! [`writes`], which alone talks to the API server.

pub mod adoption;
pub mod checks;
mod context;
pub mod credentials;
pub mod initial_sync;
mod kept;
pub mod key;
mod managed;
pub mod orphans;
mod plan;
mod published;
mod reconcile;
mod recorded;
mod relist;
pub mod restart;
pub mod secret;
pub mod source_plan;
pub mod source_read;
pub mod sources;
pub mod spec_changes;
pub mod watches;
mod writes;
mod written;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt, future};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use crate::crd::{MANAGED_BY_LABEL, MANAGER_NAME, TrackViaConnection};
use crate::kube_helpers::WatchBackoff;
use crate::metrics::Metrics;
use crate::trackvia::Verifier;
use initial_sync::InitialSync;
use key::Key;
use spec_changes::SpecChanges;
use watches::SourceWatchContext;

pub use context::{Clock, Config, Context, Error, FIELD_MANAGER, Result};
pub use kept::KeptSecret;
pub use reconcile::reconcile;
pub use written::{Outputs, Written};

/// Run the controllers (one per watched namespace, or one for all) until shutdown.
pub async fn run(
    client: Client,
    config: Config,
    verifier: Arc<Verifier>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) {
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
    let readers = owned.iter().map(|(reader, _)| reader.clone()).collect();
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        verifier,
        metrics.clone(),
        readers,
    ));
    let sync = InitialSync::new(scopes.len(), metrics.clone());
    let (mut runs, mut stores) = (Vec::new(), Vec::new());
    for (scope, (_, owned_writer)) in scopes.into_iter().zip(owned) {
        let (run, store) = run_scope(&ctx, scope.as_deref(), owned_writer, sync.clone());
        stores.push(store);
        runs.push(run);
    }
    metrics.set_stores(stores.clone());
    let _ = ctx.connections.set(stores.clone());
    let orphans =
        orphans::release_orphans(client, stores.clone(), ctx.owned.clone(), metrics.clone());
    let readiness = async move {
        for store in &stores {
            let _ = store.wait_until_ready().await;
            sync.listed(store.state().iter().map(|c| Key::of(c)));
        }
        ready.store(true, Ordering::SeqCst);
        info!("caches synced; reconciling");
    };
    // The orphan scan and the checks never end by themselves: they stop with
    // the controllers.
    tokio::select! {
        _ = async { tokio::join!(readiness, future::join_all(runs)) } => {}
        () = orphans => {}
        () = ctx.checks.run() => {}
    }
}

/// The running controller of one scope with its source watches, and its
/// connection store.
fn run_scope(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    owned_writer: reflector::store::Writer<KeptSecret>,
    sync: InitialSync,
) -> (future::BoxFuture<'static, ()>, Store<TrackViaConnection>) {
    let (controller, store, source_watches) = build_controller(ctx, namespace, owned_writer);
    let controller = controller
        .graceful_shutdown_on(shutdown_signal())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(move |res| {
            match res {
                Ok((obj, _)) => {
                    debug!(namespace = obj.namespace.as_deref().unwrap_or(""), name = %obj.name, "reconciled");
                    sync.reconciled(Key::of_ref(&obj));
                }
                Err(e) => {
                    debug!(error = %e, "reconcile loop");
                    if let Some(key) = attempted(&e) {
                        sync.reconciled(key);
                    }
                }
            }
            future::ready(())
        });
    // The source watches live as long as their controller.
    let run = async move {
        tokio::select! {
            () = controller => {}
            () = source_watches => {}
        }
    }
    .boxed();
    (run, store)
}

/// The connection a failed pass was for (it counts as reconciled for the
/// initial sync), unless the error is not about one connection.
fn attempted<Q>(e: &kube::runtime::controller::Error<Error, Q>) -> Option<Key> {
    use kube::runtime::controller::Error as E;
    let (E::ReconcilerFailed(_, obj) | E::ObjectNotFound(obj)) = e else {
        return None;
    };
    Some(Key::of_ref(obj))
}

/// The controller of one scope (a namespace, or all), its connection store,
/// and the task keeping its source-Secret watches.
fn build_controller(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    owned_writer: reflector::store::Writer<KeptSecret>,
) -> (
    Controller<TrackViaConnection>,
    Store<TrackViaConnection>,
    future::BoxFuture<'static, ()>,
) {
    let (reader, writer) = reflector::store();
    let (changes, secrets_read) = tokio::sync::watch::channel(SpecChanges::default());
    let connections = watches::connection_events(
        &ctx.client,
        namespace,
        writer,
        changes,
        ctx.written.clone(),
        ctx.checks.clone(),
    );
    let (trigger, triggered) = futures::channel::mpsc::unbounded();
    let output_events = watches::output_events(
        &ctx.client,
        ctx.metrics.clone(),
        namespace,
        owned_writer,
        trigger.clone(),
        ctx.outputs.clone(),
    );
    let source_watches = watches::run_source_watches(
        SourceWatchContext {
            scope: namespace.map(str::to_string),
            client: ctx.client.clone(),
            readers: secrets_read.clone(),
            sources: ctx.sources.clone(),
            trigger,
            metrics: ctx.metrics.clone(),
        },
        secrets_read,
        ctx.config.source_watch_limits,
    )
    .boxed();
    let store = reader.clone();
    let controller = Controller::for_stream(connections, reader)
        .with_config(ControllerConfig::default().concurrency(ctx.config.concurrency))
        // Each watch backs off on its own; a second backoff over the merged
        // streams would let one watch's errors stall all of them.
        .trigger_backoff(WatchBackoff::constant(Duration::from_millis(100)))
        .reconcile_on(output_events)
        .reconcile_on(triggered)
        .reconcile_on(ctx.checks.due(namespace))
        .reconcile_on(
            ctx.verifier
                .wakeups(namespace)
                .map(|(ns, name)| ObjectRef::new(&name).within(&ns)),
        );
    (controller, store, source_watches)
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

/// Requeue after an error, with a short backoff; the error text carries no secrets.
pub fn error_policy(tvc: Arc<TrackViaConnection>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(namespace = tvc.namespace().as_deref().unwrap_or(""), name = %tvc.name_any(), error = %error, "reconcile failed; retrying");
    let jitter = plan::jitter_for(&tvc);
    Action::requeue(Duration::from_secs(5).mul_f64(1.0 + jitter))
}

/// Labels of the output Secrets, for selectors.
pub fn managed_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGER_NAME.to_string())])
}
