//! Pure: building the model from what was read (connections, workloads, events) and `now`.

use std::collections::BTreeSet;

use compact_str::CompactString;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, Event, PodSpec, PodTemplateSpec};
use kube::ResourceExt;

use crate::connection::{fmt_time, parse_spec, token_expiry_instant};
use crate::crd::{Condition, TrackViaConnection, condition};

use super::*;

/// Adds the Secrets one container's `env[].valueFrom.secretKeyRef` and
/// `envFrom[].secretRef` refer to.
fn secrets_in_env(
    names: &mut BTreeSet<String>,
    env: Option<&[EnvVar]>,
    from: Option<&[EnvFromSource]>,
) {
    for var in env.into_iter().flatten() {
        if let Some(r) = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            names.insert(r.name.clone());
        }
    }
    for source in from.into_iter().flatten() {
        if let Some(r) = &source.secret_ref {
            names.insert(r.name.clone());
        }
    }
}

/// Names of the Secrets a pod spec refers to: `env[].valueFrom.secretKeyRef`,
/// `envFrom[].secretRef`, `volumes[].secret` and projected volume sources, in
/// containers, init containers and ephemeral containers.
pub fn secrets_in_pod_spec(spec: &PodSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        secrets_in_env(&mut names, c.env.as_deref(), c.env_from.as_deref());
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        secrets_in_env(&mut names, c.env.as_deref(), c.env_from.as_deref());
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            names.insert(name);
        }
        let sources = volume
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten();
        for source in sources {
            if let Some(s) = &source.secret {
                names.insert(s.name.clone());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

pub(crate) fn workload(
    kind: &str,
    namespace: Option<String>,
    name: String,
    template: Option<&PodTemplateSpec>,
) -> Workload {
    Workload {
        namespace: namespace.unwrap_or_default(),
        workload: WorkloadRef {
            kind: kind.to_string(),
            name,
        },
        secrets: template
            .and_then(|t| t.spec.as_ref())
            .map(secrets_in_pod_spec)
            .unwrap_or_default(),
    }
}

/// A Deployment as a [`Workload`].
pub fn from_deployment(d: &Deployment) -> Workload {
    workload(
        "Deployment",
        d.namespace(),
        d.name_any(),
        d.spec.as_ref().map(|s| &s.template),
    )
}

/// A StatefulSet as a [`Workload`].
pub fn from_stateful_set(s: &StatefulSet) -> Workload {
    workload(
        "StatefulSet",
        s.namespace(),
        s.name_any(),
        s.spec.as_ref().map(|s| &s.template),
    )
}

/// A DaemonSet as a [`Workload`].
pub fn from_daemon_set(d: &DaemonSet) -> Workload {
    workload(
        "DaemonSet",
        d.namespace(),
        d.name_any(),
        d.spec.as_ref().map(|s| &s.template),
    )
}

/// The workloads in `namespace` that use Secret `secret`, sorted.
pub fn consumers_of(workloads: &[Workload], namespace: &str, secret: &str) -> Vec<WorkloadRef> {
    let mut found: Vec<WorkloadRef> = workloads
        .iter()
        .filter(|w| w.namespace == namespace && w.secrets.contains(secret))
        .map(|w| w.workload.clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

pub(crate) fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|t| t.parse::<Timestamp>().ok())
}

/// The instant the token stops working: from the status, else from the spec's date.
pub(crate) fn expiry_of(tvc: &TrackViaConnection) -> Option<Timestamp> {
    let from_status = tvc
        .status
        .as_ref()
        .and_then(|s| parse_time(s.token_expires_at.as_deref()));
    from_status.or_else(|| {
        tvc.spec
            .token_expires_on
            .as_deref()
            .and_then(|d| token_expiry_instant(d).ok())
    })
}

/// The instant the warning window opens: from the status, else from the spec.
pub(crate) fn warning_of(tvc: &TrackViaConnection) -> Option<Timestamp> {
    let from_status = tvc
        .status
        .as_ref()
        .and_then(|s| parse_time(s.expiry_warning_at.as_deref()));
    from_status.or_else(|| parse_spec(&tvc.spec).ok().and_then(|p| p.expiry_warning_at))
}

/// The table row of a connection. `workloads` is `None` when they could not be listed.
pub fn summarize(
    tvc: &TrackViaConnection,
    workloads: Option<&[Workload]>,
    now: Timestamp,
) -> ConnectionSummary {
    let namespace = tvc.namespace().unwrap_or_default();
    let status = tvc.status.clone().unwrap_or_default();
    let ready = status.condition(condition::READY);
    let secret_name = status
        .secret_name
        .as_deref()
        .map_or_else(|| tvc.target_name(), String::from);
    let expires_at = expiry_of(tvc);
    let expires_in = expires_at.map(|at| at.as_second() - now.as_second());
    let expired = expires_in.is_some_and(|s| s <= 0);
    let expiring = !expired && warning_of(tvc).is_some_and(|w| w <= now);
    ConnectionSummary {
        consumers: workloads.map(|w| consumers_of(w, &namespace, &secret_name)),
        namespace,
        name: tvc.name_any(),
        ready: ready.map(|c| c.status.to_string()),
        reason: ready.map(|c| c.reason.to_string()),
        message: ready.map(|c| c.message.to_string()),
        host: tvc.spec.host.to_string(),
        account_id: tvc.spec.account_id,
        token_name: owned(&tvc.spec.token_name),
        api_user: owned(&tvc.spec.api_user),
        token_expires_on: owned(&tvc.spec.token_expires_on),
        token_expires_at: expires_at.map(|t| fmt_time(t).into()),
        expires_in_seconds: expires_in,
        expired,
        expiring,
        last_verified_time: owned(&status.last_verified_time),
        last_successful_verification_time: owned(&status.last_successful_verification_time),
        next_verification_time: owned(&status.next_verification_time),
        last_http_status: status.last_http_status,
        consecutive_failures: status.consecutive_failures,
        published: status.published_hash.is_some(),
        secret_name,
    }
}

/// An optional text of a connection, as the views hold it.
fn owned(text: &Option<CompactString>) -> Option<String> {
    text.as_deref().map(String::from)
}

pub(crate) fn condition_view(c: &Condition) -> ConditionView {
    ConditionView {
        type_: c.type_.to_string(),
        status: c.status.to_string(),
        reason: c.reason.to_string(),
        message: c.message.to_string(),
        last_transition_time: c.last_transition_time.to_string(),
        observed_generation: c.observed_generation,
    }
}

/// When an event last happened, whichever API wrote it.
pub(crate) fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The events about `tvc` (by kind, name and, when known, uid), oldest first, at most
/// the latest [`MAX_EVENTS`].
pub fn events_for(tvc: &TrackViaConnection, events: &[Event]) -> Vec<EventView> {
    let name = tvc.name_any();
    let uid = tvc.uid();
    let mut about: Vec<&Event> = events
        .iter()
        .filter(|e| {
            let o = &e.involved_object;
            o.kind.as_deref() == Some("TrackViaConnection")
                && o.name.as_deref() == Some(name.as_str())
                && (uid.is_none() || o.uid.is_none() || o.uid == uid)
        })
        .collect();
    about.sort_by_key(|e| event_time(e));
    let skip = about.len().saturating_sub(MAX_EVENTS);
    about
        .into_iter()
        .skip(skip)
        .map(|e| EventView {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1)
                .max(1),
            last_time: event_time(e).map(|t| fmt_time(t).into()),
        })
        .collect()
}

/// The detailed view of a connection. `events` is `None` when they could not be listed.
pub fn detail(
    tvc: &TrackViaConnection,
    workloads: Option<&[Workload]>,
    events: Option<&[Event]>,
    now: Timestamp,
) -> ConnectionDetail {
    let status = tvc.status.clone().unwrap_or_default();
    let spec = &tvc.spec;
    ConnectionDetail {
        summary: summarize(tvc, workloads, now),
        generation: tvc.metadata.generation,
        observed_generation: status.observed_generation,
        expiry_warning_at: warning_of(tvc).map(|t| fmt_time(t).into()),
        credentials_fingerprint: owned(&status.credentials_fingerprint),
        spec: SpecSummary {
            credentials_secret: spec.credentials_secret_ref.name.to_string(),
            api_key_key: spec.credentials_secret_ref.api_key_key.to_string(),
            auth_token_key: spec.credentials_secret_ref.auth_token_key.to_string(),
            expiry_warning: spec.expiry_warning.to_string(),
            verify_interval: spec.verify_interval.to_string(),
            publish: format!("{:?}", spec.publish),
            deletion_policy: format!("{:?}", spec.target.deletion_policy),
            rollout_restart_targets: spec
                .rollout_restart_targets
                .iter()
                .map(|t| WorkloadRef {
                    kind: format!("{:?}", t.kind),
                    name: t.name.to_string(),
                })
                .collect(),
        },
        conditions: status.conditions.iter().map(condition_view).collect(),
        events: events.map(|e| events_for(tvc, e)),
    }
}
