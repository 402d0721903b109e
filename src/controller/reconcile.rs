//! One pass over one connection: read (its credentials, the verifier's reply,
//! the output Secret) → decide (pure, in [`plan`] and `status`) → write
//! (through [`writes`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use compact_str::CompactString;
use jiff::Timestamp;
use kube::api::GetParams;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::debug;

use super::context::{Context, Error, Result};
use super::key::Key;
use super::plan::{self, PublishStep, Seen, WakeInputs};
use super::restart::{self, RestartStep};
use super::secret::{self, CredentialsError};
use super::sources::{CredentialsRead, ReadTurn, SecretKey};
use super::{recorded, source_read, writes};
use crate::connection::{self, Observation, ParsedSpec, SecretOutcome};
use crate::crd::{
    CredentialsSecretRef, TrackViaConnection, TrackViaConnectionStatus, VERIFY_REQUESTED_ANNOTATION,
};
use crate::kube_helpers::short_kube_error;
use crate::trackvia::{CallerId, Credentials, VerifyRequest};

/// One pass over one connection, timed. The next check it asks for is kept in
/// [`Checks`](super::checks::Checks), not by the controller.
pub async fn reconcile(tvc: Arc<TrackViaConnection>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    // With what was written (before any await: the watch cannot deliver in between).
    let tvc = ctx.latest(tvc);
    let result = reconcile_inner(&tvc, &ctx).await;
    ctx.metrics
        .observe_reconcile(started.elapsed(), result.is_ok());
    let next = result?;
    if ctx.still_stored(&tvc) {
        ctx.checks.after(Key::of(&tvc), next);
    }
    Ok(Action::await_change())
}

async fn reconcile_inner(tvc: &TrackViaConnection, ctx: &Context) -> Result<Option<Duration>> {
    let ns = tvc
        .namespace()
        .ok_or_else(|| Error::NoNamespace(tvc.name_any()))?;
    let now = ctx.config.clock.now();
    let fresher = ctx.written.fresher_than_cache(tvc);
    let old = fresher.as_ref().or(tvc.status.as_ref());
    let parsed = plan::parse(tvc);
    // Read: the credentials and, when a check is due, the verifier's reply.
    let seen = observe(ctx, tvc, &ns, old, &parsed, now).await?;
    if let Some(wait) = plan::quiet_until_first_answer(old, seen.waiting) {
        return Ok(Some(wait));
    }
    // Decide the status, then publish what it allows.
    let next = plan::status_before_publishing(tvc, old, &parsed, &seen, now, ctx.config.settings);
    let outcome = match plan::to_publish(tvc, &parsed, &seen, &next) {
        PublishStep::Write(host, creds) => {
            writes::sync_secret(ctx, tvc, old, &ns, host, creds).await
        }
        PublishStep::AsRecorded(outcome) => outcome,
        PublishStep::Nothing => SecretOutcome::NotPublished,
    };
    let mut next = plan::status_after_publishing(next, &outcome, tvc, now);
    if let Some(previous) = plan::retired_name(old, &outcome, tvc) {
        writes::retire_secret(ctx, tvc, &ns, previous).await;
    }
    for t in connection::transitions(old, &next) {
        writes::emit(ctx, tvc, &t).await;
    }
    let debounce = ctx.config.restart_debounce;
    let restarting = restart::restart_step(tvc, old, &outcome, &mut next, now, debounce);
    if let RestartStep::Now(hash) = &restarting {
        writes::restart_consumers(ctx, tvc, &ns, hash, &mut next, now).await;
    }
    writes::status_if_changed(ctx, tvc, old, &next).await?;
    Ok(plan::next_check(&WakeInputs {
        next: &next,
        waiting: seen.waiting,
        restart: &restarting,
        outcome: &outcome,
        observation: &seen.observation,
        now,
    }))
}

/// What this pass finds out about the credentials: whether they may be used,
/// are there, and, when a check is due, the verifier's reply.
async fn observe(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    old: Option<&TrackViaConnectionStatus>,
    parsed: &plan::Parsed,
    now: Timestamp,
) -> Result<Seen> {
    let p = match parsed {
        Err(invalid) => {
            let observation = Observation::InvalidSpec(invalid.to_string());
            return Ok(Seen::without_credentials(observation));
        }
        Ok(p) => p,
    };
    if !ctx.config.allowed_hosts.allows(&p.host) {
        return Ok(Seen::without_credentials(Observation::HostNotAllowed(
            format!(
                "host {} is not in the operator's allowed hosts ({}); no request was made",
                p.host, ctx.config.allowed_hosts_text
            ),
        )));
    }
    if let Some(seen) = by_the_record(ctx, tvc, ns, old, p, now).await {
        return Ok(seen);
    }
    let (version, read) = match read_credentials(ctx, tvc, ns).await {
        Ok((version, read)) => (Some(version).filter(|v| !v.is_empty()), Ok(read)),
        Err(e) => (None, Err(e)),
    };
    let creds = match unreadable_or(ctx, tvc, ns, read)? {
        Err(observation) => return Ok(Seen::without_credentials(observation)),
        Ok(creds) => creds,
    };
    let uid = tvc.uid().unwrap_or_default();
    let fingerprint = creds.fingerprint(uid.as_bytes());
    let requested = tvc.annotations().get(VERIFY_REQUESTED_ANNOTATION);
    let generation = tvc.meta().generation;
    let (due, forced) = connection::verification_due(
        p,
        generation,
        old,
        &fingerprint,
        requested.map(String::as_str),
        now,
    );
    let (verification, waiting) = if due {
        ask(ctx, tvc, p, &creds, forced, old, now)
    } else {
        (None, None)
    };
    Ok(Seen {
        observation: Observation::Credentials {
            fingerprint,
            verification,
            awaiting: waiting.is_some(),
        },
        credentials: Some(creds),
        credentials_version: version.map(CompactString::from),
        published: None,
        waiting,
    })
}

/// What this pass finds without reading the credentials, when the status's
/// record of them will do ([`recorded`]): nothing read is in memory (a
/// process that read them goes by what it read), no check is due, the
/// Secret's watch reports it at the recorded version (in the watches' first
/// seconds, once it reports), and the output Secret is as recorded too.
async fn by_the_record(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    old: Option<&TrackViaConnectionStatus>,
    p: &ParsedSpec,
    now: Timestamp,
) -> Option<Seen> {
    let generation = tvc.meta().generation;
    let (version, fingerprint) = recorded::record_of(old, generation)?;
    let r = &tvc.spec.credentials_secret_ref;
    let key = (ns.to_string(), r.name.to_string());
    if ctx
        .sources
        .cached(&key, &r.api_key_key, &r.auth_token_key)
        .is_some()
    {
        return None;
    }
    let requested = tvc.annotations().get(VERIFY_REQUESTED_ANNOTATION);
    let requested = requested.map(String::as_str);
    let (due, _) = connection::verification_due(p, generation, old, fingerprint, requested, now);
    if due || !recorded::still_at(version, ctx.sources.reported(&key).await.as_ref()) {
        return None;
    }
    Some(Seen {
        published: Some(writes::as_recorded(ctx, tvc, old, ns)?),
        observation: Observation::Credentials {
            fingerprint: fingerprint.to_string(),
            verification: None,
            awaiting: false,
        },
        credentials: None,
        credentials_version: Some(version.into()),
        waiting: None,
    })
}

/// Ask the verifier; the call is made by its scheduler, this pass never waits for it.
fn ask(
    ctx: &Context,
    tvc: &TrackViaConnection,
    p: &ParsedSpec,
    creds: &Credentials,
    forced: bool,
    old: Option<&TrackViaConnectionStatus>,
    now: Timestamp,
) -> (Option<connection::Verification>, Option<plan::Waiting>) {
    let caller = CallerId {
        namespace: tvc.namespace().unwrap_or_default(),
        name: tvc.name_any(),
        uid: tvc.uid().unwrap_or_default(),
    };
    let request = VerifyRequest {
        caller: &caller,
        host: &p.host,
        account_id: tvc.spec.account_id,
        creds,
        freshness: plan::freshness(p, forced, old, now),
        now,
    };
    let reply = plan::reply(ctx.verifier.ask(&request), forced);
    if let (Some(v), _) = &reply {
        debug!(namespace = %caller.namespace, name = %caller.name, outcome = v.outcome.label(), "verified");
    }
    reply
}

/// Read the credentials, with the resourceVersion of their Secret (empty when
/// none). `Ok((_, Err(_)))` when the Secret or a key is missing. Connections
/// sharing a Secret read it once per version: its watch tells when the copy
/// read earlier is still current.
async fn read_credentials(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
) -> Result<(String, CredentialsRead)> {
    let r = &tvc.spec.credentials_secret_ref;
    let key = (ns.to_string(), r.name.to_string());
    let remember = |version: String, read: &CredentialsRead| {
        let (api_key, token) = (&r.api_key_key, &r.auth_token_key);
        ctx.sources
            .remember(&key, api_key, token, version, read.clone());
    };
    if let Some(known) = ctx.sources.cached(&key, &r.api_key_key, &r.auth_token_key) {
        return Ok(known);
    }
    // One read at a time per Secret: those that waited are answered by it,
    // unless it failed.
    let mut turn = ctx.sources.read_turn(&key).await;
    if let Some(known) = ctx.sources.cached(&key, &r.api_key_key, &r.auth_token_key) {
        return Ok(known);
    }
    if turn.after_an_unshared_read() {
        turn.release();
    }
    // At least the version the watch reported, served by the API server's cache.
    let params = ctx
        .sources
        .seen_version(&key)
        .map(|rv| GetParams::at(&rv))
        .unwrap_or_default();
    let secret = writes::get_secret(ctx, ns, &r.name, &params)
        .await
        .map_err(|source| {
            turn.not_shared();
            Error::Kube {
                context: format!("reading Secret {ns}/{}", r.name),
                source,
            }
        })?;
    let Some(secret) = secret else {
        let missing = Err(CredentialsError::SecretNotFound {
            namespace: ns.to_string(),
            secret: r.name.to_string(),
        });
        remember(String::new(), &missing);
        share_or_release(ctx, r, &key, &mut turn);
        return Ok((String::new(), missing));
    };
    let version = secret.resource_version().unwrap_or_default();
    let data = secret.data.unwrap_or_default();
    let creds = secret::credentials_from_data(&r.name, &data, &r.api_key_key, &r.auth_token_key);
    remember(version.clone(), &creds);
    share_or_release(ctx, r, &key, &mut turn);
    Ok((version, creds))
}

/// Let the passes waiting for this read go on by themselves when what it found
/// is not served to them from memory.
fn share_or_release(
    ctx: &Context,
    r: &CredentialsSecretRef,
    key: &SecretKey,
    turn: &mut ReadTurn<'_>,
) {
    if ctx
        .sources
        .cached(key, &r.api_key_key, &r.auth_token_key)
        .is_none()
    {
        turn.not_shared();
    }
}

/// The credentials, or the observation standing for their absence: missing,
/// or unreadable once the failure to read them lasts (see [`source_read`]).
/// A failure that may still pass by itself stays an error (retried shortly).
fn unreadable_or(
    ctx: &Context,
    tvc: &TrackViaConnection,
    ns: &str,
    read: Result<CredentialsRead>,
) -> Result<Result<Credentials, Observation>> {
    let key = (
        ns.to_string(),
        tvc.spec.credentials_secret_ref.name.to_string(),
    );
    match read {
        Ok(found) => {
            ctx.source_failures.succeeded(&key);
            Ok(found.map_err(|e| Observation::CredentialsNotFound(e.to_string())))
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
