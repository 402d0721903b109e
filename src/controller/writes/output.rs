//! The output Secret: created when nothing is at its name, read only when it
//! is not known unchanged (by this process's memory of its writes, or without
//! that by the status's record), applied when it differs, and retired after a
//! rename; and [`get_secret`], the one read of a Secret, which passes also use
//! for their source Secrets.

use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, GetParams, Patch, PatchParams, PostParams};
use tracing::{info, warn};

use super::emit;
use crate::connection::{SecretOutcome, Transition};
use crate::controller::adoption::{self, LetGo};
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::kept::KeptSecret;
use crate::controller::managed;
use crate::controller::plan::{self, SecretStep};
use crate::controller::published;
use crate::controller::secret::{self, Ownership};
use crate::crd::{TrackViaConnection, TrackViaConnectionStatus};
use crate::kube_helpers::short_kube_error;
use crate::trackvia::Credentials;

/// Read a Secret, `None` when it does not exist.
pub async fn get_secret(
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

/// The previous output Secret and what to do with it ([`adoption::after_rename`]),
/// with the fields of the request that created it handed to the operator's apply
/// entry when it is to be let go. A Secret that changed between the read and the
/// hand-over is read again, once.
async fn read_for_retirement(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    old_name: &str,
) -> Option<(Secret, LetGo)> {
    let warn_of = |e: &kube::Error, what: &str| {
        warn!(namespace = %ns, name = %tvc.name_any(), secret = %old_name, error = %short_kube_error(e), "{what}");
    };
    for attempt in 1..=2 {
        let existing = match get_secret(ctx, ns, old_name, &GetParams::default()).await {
            Ok(found) => found?,
            Err(e) => {
                warn_of(&e, "reading the previous output Secret");
                return None;
            }
        };
        let decision = adoption::after_rename(&existing, tvc);
        if matches!(decision, LetGo::Keep(_)) {
            return Some((existing, decision));
        }
        match upgrade_fields(ctx, ns, &existing).await {
            Ok(()) => return Some((existing, decision)),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt == 1 => continue,
            Err(e) => {
                warn_of(&e, "taking over the fields of the previous output Secret");
                return None;
            }
        }
    }
    None
}

/// The output Secret `name` as its watch keeps it, and the version it reports.
fn watched_output(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> (Option<Arc<KeptSecret>>, Option<String>) {
    let key = kube::runtime::reflector::ObjectRef::new(name).within(ns);
    let watched = ctx.owned.iter().find_map(|store| store.get(&key));
    let version = watched
        .as_ref()
        .and_then(|kept| kept.seen_version().map(str::to_string));
    (watched, version)
}

/// The outcome of a pass that finds the watched output Secret known to hold
/// `hash` rendered as `fingerprint` ([`published::known_unchanged`]) and ours.
fn known_unchanged(
    tvc: &TrackViaConnection,
    old: Option<&TrackViaConnectionStatus>,
    watched: &Option<Arc<KeptSecret>>,
    remembered: Option<&(String, u64)>,
    hash: &str,
    fingerprint: u64,
) -> Option<SecretOutcome> {
    let meta = watched.as_ref()?;
    let version = meta.seen_version()?;
    (published::known_unchanged(remembered, old, version, fingerprint)
        && secret::ownership(&meta.metadata(), tvc) == Ownership::Ours)
        .then(|| published::synced(hash, Some(version), fingerprint))
}

/// The outcome publishing would have without the credentials to hand: the
/// output Secret holds what the status records as published (its content hash
/// `publishedHash`, rendered for this spec and host), when the credentials are
/// known unchanged since. `None`: publishing needs them.
pub fn as_recorded(
    ctx: &Context,
    tvc: &TrackViaConnection,
    old: Option<&TrackViaConnectionStatus>,
    ns: &str,
) -> Option<SecretOutcome> {
    let hash = old?.published_hash.as_deref()?;
    let fingerprint =
        published::fingerprint(&secret::rendered_without_values(tvc, hash.to_string()));
    let name = tvc.target_name();
    let (watched, _) = watched_output(ctx, ns, &name);
    let remembered = ctx.outputs.get(ns, &name);
    known_unchanged(tvc, old, &watched, remembered.as_ref(), hash, fingerprint)
}

/// Publish the connection's Secret, unless a Secret the operator may not
/// write is at its name. `old` is the freshest status known of the connection.
pub async fn sync_secret(
    ctx: &Context,
    tvc: &TrackViaConnection,
    old: Option<&TrackViaConnectionStatus>,
    ns: &str,
    host: &str,
    creds: &Credentials,
) -> SecretOutcome {
    let name = tvc.target_name();
    let desired = secret::desired_secret(tvc, host, creds);
    let hash = secret::hash_of(&desired).unwrap_or_default().to_string();
    let fingerprint = published::fingerprint(&desired);
    let (watched, watched_version) = watched_output(ctx, ns, &name);
    // Known unchanged since this process (or, when it has no memory of the Secret,
    // the one that wrote the status) wrote or checked it for the same content:
    // nothing to read, nothing to write.
    let remembered = ctx.outputs.get(ns, &name);
    if let Some(outcome) =
        known_unchanged(tvc, old, &watched, remembered.as_ref(), &hash, fingerprint)
    {
        return outcome;
    }
    // Not seen by the watch (absent, or not labelled as ours) and not written by this
    // process: create it, a request that fails when any Secret has the name. Only then is
    // it read, consistently, and decided on like any other.
    if watched.is_none()
        && remembered.is_none()
        && outputs_listed(ctx)
        && let Some(outcome) = create_secret(ctx, tvc, ns, &desired, fingerprint, &hash).await
    {
        return outcome;
    }
    // At least the version the watch saw; a Secret it has not seen is read
    // consistently: a stale "not found" must not let the apply merge into a
    // Secret someone else just created.
    let params = match &watched_version {
        Some(rv) => GetParams::at(rv),
        None => GetParams::default(),
    };
    let existing = match get_secret(ctx, ns, &name, &params).await {
        Ok(s) => s,
        Err(e) => {
            let e = short_kube_error(&e);
            return SecretOutcome::Error(format!("reading Secret {name}: {e}"));
        }
    };
    match plan::secret_step(existing.as_ref(), desired, tvc) {
        SecretStep::Conflict(message) => SecretOutcome::Conflict(message),
        SecretStep::UpToDate => {
            let version = existing.as_ref().and_then(|e| e.resource_version());
            ctx.outputs.set(ns, &name, version.clone(), fingerprint);
            published::synced(&hash, version.as_deref(), fingerprint)
        }
        SecretStep::Apply(desired) => {
            apply_secret(ctx, tvc, ns, existing.as_ref(), &desired, fingerprint, hash).await
        }
    }
}

/// Have the watches of output Secrets listed what is there? Until then a
/// Secret missing from them may simply not be listed yet, and the pass reads
/// instead of creating. Never waits: a watch that cannot list (a namespace the
/// operator may not read) must not hold up passes elsewhere.
fn outputs_listed(ctx: &Context) -> bool {
    ctx.owned.iter().all(|store| {
        store
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|ready| ready.is_ok())
    })
}

/// Create the output Secret: `None` when a Secret of that name already exists.
async fn create_secret(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    desired: &Secret,
    fingerprint: u64,
    hash: &str,
) -> Option<SecretOutcome> {
    let name = tvc.target_name();
    let SecretStep::Apply(body) = plan::secret_step(None, desired.clone(), tvc) else {
        return None;
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match api.create(&params, &body).await {
        Ok(written) => {
            ctx.metrics.secret_writes.inc();
            let version = written.resource_version();
            ctx.outputs.set(ns, &name, version.clone(), fingerprint);
            info!(namespace = %ns, name = %tvc.name_any(), secret = %name, "output Secret created");
            Some(published::synced(hash, version.as_deref(), fingerprint))
        }
        Err(kube::Error::Api(status)) if status.code == 409 => None,
        Err(e) => {
            let e = short_kube_error(&e);
            Some(SecretOutcome::Error(format!("creating Secret {name}: {e}")))
        }
    }
}

/// Apply `desired` over `existing` (absent or read just before), first handing
/// the fields of the operator's create to its apply when the apply drops one.
async fn apply_secret(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    existing: Option<&Secret>,
    desired: &Secret,
    fingerprint: u64,
    hash: String,
) -> SecretOutcome {
    let name = tvc.target_name();
    if let Some(existing) = existing
        && managed::must_upgrade_before(existing, desired)
        && let Err(e) = upgrade_fields(ctx, ns, existing).await
    {
        let e = short_kube_error(&e);
        return SecretOutcome::Error(format!("taking over the fields of Secret {name}: {e}"));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&name, &params, &Patch::Apply(desired)).await {
        Ok(written) => {
            ctx.metrics.secret_writes.inc();
            let version = written.resource_version();
            ctx.outputs.set(ns, &name, version.clone(), fingerprint);
            info!(namespace = %ns, name = %tvc.name_any(), secret = %name, "output Secret written");
            published::synced(&hash, version.as_deref(), fingerprint)
        }
        Err(e) => {
            let e = short_kube_error(&e);
            SecretOutcome::Error(format!("writing Secret {name}: {e}"))
        }
    }
}

/// Hand the fields the operator's create owns in `existing` to its apply (see
/// [`managed`]); refused when the Secret changed since it was read.
async fn upgrade_fields(ctx: &Context, ns: &str, existing: &Secret) -> Result<(), kube::Error> {
    let (Some(entries), Some(version)) = (
        managed::upgraded(&existing.metadata),
        existing.resource_version(),
    ) else {
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let body = managed::upgrade_patch(&version, &entries);
    api.patch(
        &existing.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    ctx.metrics.secret_writes.inc();
    Ok(())
}

/// After `spec.target.name` changed: let go of the Secret published under the
/// old name as [`adoption::after_rename`] decides. A Secret the operator
/// created under `Delete` is emptied and handed to the garbage collector (the
/// operator has no `delete` on Secrets; an owner reference to an owner that
/// does not exist makes the collector remove it); an adopted one loses only
/// the operator's fields; under `Retain` nothing is touched.
pub async fn retire_secret(ctx: &Context, tvc: &TrackViaConnection, ns: &str, old_name: &str) {
    let Some((existing, decision)) = read_for_retirement(ctx, tvc, ns, old_name).await else {
        return;
    };
    let new_name = tvc.target_name();
    let moved = format!("output Secret moved from {old_name} to {new_name}");
    let (result, message) = match decision {
        LetGo::Keep(why) => {
            if secret::ownership(&existing.metadata, tvc) == Ownership::Ours {
                let message = format!("{moved}; {old_name} is left as it is: {why}");
                emit(ctx, tvc, &secret_moved(message)).await;
            }
            return;
        }
        LetGo::Release => (
            crate::controller::orphans::release(&ctx.client, ns, old_name).await,
            format!(
                "{moved}; the operator's keys were removed from the adopted Secret {old_name}, which stays with its other keys"
            ),
        ),
        LetGo::Collect => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let body = adoption::collect_body(old_name, tvc);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            (
                api.patch(old_name, &params, &Patch::Apply(&body)).await,
                format!("{moved}; {old_name} was emptied and is garbage-collected"),
            )
        }
    };
    match result {
        Ok(_) => {
            ctx.metrics.secret_writes.inc();
            emit(ctx, tvc, &secret_moved(message)).await;
        }
        Err(e) => {
            warn!(namespace = %ns, name = %tvc.name_any(), secret = %old_name, error = %short_kube_error(&e), "retiring the previous output Secret")
        }
    }
}

fn secret_moved(message: String) -> Transition {
    Transition {
        warning: false,
        reason: "SecretMoved".into(),
        message,
    }
}
