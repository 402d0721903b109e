//! Every call a pass makes to the API server. Reading a Secret and the output
//! Secret (create, read, apply, and the retirement of a renamed one) are in
//! [`output`]; here are events, rollout restarts and the status.
//! Decisions come from [`super::plan`]; what was written is remembered in the
//! [`Context`].

mod output;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::context::{Context, Error, FIELD_MANAGER, Result};
use super::restart;
use crate::connection::{self, Transition};
use crate::crd::{TrackViaConnection, TrackViaConnectionStatus};
use crate::metrics::ResultLabel;

pub use output::{as_recorded, get_secret, retire_secret, sync_secret};

/// Log and publish one transition as an event.
pub async fn emit(ctx: &Context, tvc: &TrackViaConnection, t: &Transition) {
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
pub async fn restart_consumers(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    hash: &str,
    next: &mut TrackViaConnectionStatus,
    now: Timestamp,
) {
    let now_text = connection::fmt_time(now);
    let mut results = Vec::new();
    for target in &tvc.spec.rollout_restart_targets {
        let result = restart::restart(&ctx.client, ns, target, hash, &now_text).await;
        let label = ResultLabel {
            result: result.label().into(),
        };
        ctx.metrics.rollout_restarts.get_or_create(&label).inc();
        let what = restart::describe(target);
        if let Some(t) = restart::restart_event(&what, &result, ns) {
            emit(ctx, tvc, &t).await;
        }
        results.push((what, result));
    }
    let (state, reason, message) = restart::restart_condition(&results, &now_text);
    let generation = tvc.meta().generation;
    connection::set_condition(
        &mut next.conditions,
        restart::CONDITION,
        state,
        reason,
        &message,
        generation,
        now,
    );
}

/// Write the status when it differs from the one it started from (timestamps
/// of unchanged conditions do not count), and remember it.
pub async fn status_if_changed(
    ctx: &Context,
    tvc: &TrackViaConnection,
    old: Option<&TrackViaConnectionStatus>,
    next: &TrackViaConnectionStatus,
) -> Result<()> {
    if !connection::changed(old, next) {
        return Ok(());
    }
    let ns = tvc.namespace().unwrap_or_default();
    let name = tvc.name_any();
    let api: Api<TrackViaConnection> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": TrackViaConnection::api_version(&()),
        "kind": TrackViaConnection::kind(&()),
        "status": next,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch_status(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Kube {
            context: format!("patching status of {ns}/{name}"),
            source,
        })?;
    ctx.metrics.status_writes.inc();
    ctx.written.remember(tvc, written.resource_version(), next);
    Ok(())
}
