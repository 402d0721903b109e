//! Rollout restarts of the workloads that consume a connection's Secret: a
//! pod-template annotation patched only when the published content really
//! changed. The hash acted on is stored on the workload itself, so a crash or a
//! restart of the operator never restarts a workload twice for one change.
//! The debounce, the condition and the events are decided here, purely; the
//! patch is [`restart`].

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};

use crate::connection::{self, ConditionStatus, SecretOutcome, Transition};
use crate::crd::{
    RolloutRestartTarget, TrackViaConnection, TrackViaConnectionStatus, WorkloadKind,
};
use crate::kube_helpers::short_kube_error;

/// Condition type reporting the last rollout restart.
pub const CONDITION: &str = "RolloutRestart";
/// Pod-template annotation: when the operator restarted the workload.
pub const RESTARTED_AT_ANNOTATION: &str = "trackvia.io/restartedAt";
/// Pod-template annotation: the content hash the restart was for.
pub const RESTART_HASH_ANNOTATION: &str = "trackvia.io/credentials-hash";

/// Should consumers restart? Only when something was published before and the
/// content hash changed — never on first publish.
pub fn restart_needed(previous_hash: Option<&str>, new_hash: &str) -> bool {
    previous_hash.is_some_and(|old| old != new_hash)
}

/// What happened to one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartResult {
    /// The pod template was patched.
    Restarted,
    /// The workload already carries this hash (restarted before).
    AlreadyDone,
    /// No such workload.
    Missing,
    /// The patch failed.
    Failed(String),
}

impl RestartResult {
    /// A bounded metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            RestartResult::Restarted => "restarted",
            RestartResult::AlreadyDone => "already_done",
            RestartResult::Missing => "missing",
            RestartResult::Failed(_) => "failed",
        }
    }
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
    }
}

/// The annotation value a workload carries, if any.
pub fn template_hash(obj: &DynamicObject) -> Option<&str> {
    obj.data
        .pointer(&format!(
            "/spec/template/metadata/annotations/{}",
            RESTART_HASH_ANNOTATION.replace('/', "~1")
        ))
        .and_then(|v| v.as_str())
}

/// The merge patch restarting a workload for `hash`. It carries the resourceVersion the
/// decision was made on: the API server refuses it (409) if the workload changed since, so a
/// writer working from a stale read never restarts a workload a second time.
pub fn restart_patch(resource_version: &str, hash: &str, now: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"resourceVersion": resource_version},
        "spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: now,
            RESTART_HASH_ANNOTATION: hash,
        }}}}
    })
}

/// Reads a workload and patches it, a few rounds when it keeps changing under us.
const RESTART_ATTEMPTS: usize = 3;

/// Restart one target for `hash`, unless it already was.
pub async fn restart(
    client: &Client,
    namespace: &str,
    target: &RolloutRestartTarget,
    hash: &str,
    now: &str,
) -> RestartResult {
    let gvk = GroupVersionKind::gvk("apps", "v1", kind_name(target.kind));
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    for _ in 0..RESTART_ATTEMPTS {
        let current = match api.get_opt(&target.name).await {
            Ok(Some(obj)) => obj,
            Ok(None) => return RestartResult::Missing,
            Err(e) => return RestartResult::Failed(short_kube_error(&e)),
        };
        if template_hash(&current) == Some(hash) {
            return RestartResult::AlreadyDone;
        }
        let Some(version) = current.metadata.resource_version.as_deref() else {
            return RestartResult::Failed("the workload has no resourceVersion".into());
        };
        let patch = restart_patch(version, hash, now);
        match api
            .patch(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return RestartResult::Restarted,
            // Changed since it was read: read it again (someone may have restarted it).
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return RestartResult::Failed(short_kube_error(&e)),
        }
    }
    RestartResult::Failed(format!(
        "the workload changed during each of {RESTART_ATTEMPTS} attempts"
    ))
}

/// `Kind/name` for messages.
pub fn describe(target: &RolloutRestartTarget) -> String {
    format!("{}/{}", kind_name(target.kind), target.name)
}

/// What the restart debounce decides this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartStep {
    /// Nothing pending.
    Idle,
    /// A restart is pending: look again after this.
    Wait(Duration),
    /// Restart the consumers now, for this published hash.
    Now(String),
}

/// Consumers restart once the published content has been stable for the
/// debounce window, so a burst of changes causes one restart. Updates
/// `next.pendingRestartSince`.
pub fn restart_step(
    tvc: &TrackViaConnection,
    old: Option<&TrackViaConnectionStatus>,
    outcome: &SecretOutcome,
    next: &mut TrackViaConnectionStatus,
    now: Timestamp,
    debounce: Duration,
) -> RestartStep {
    if tvc.spec.rollout_restart_targets.is_empty() {
        next.pending_restart_since = None;
        return RestartStep::Idle;
    }
    if let SecretOutcome::Synced { hash, .. } = outcome
        && restart_needed(old.and_then(|o| o.published_hash.as_deref()), hash)
    {
        next.pending_restart_since = Some(connection::fmt_time(now));
    }
    let Some(since) = next
        .pending_restart_since
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
    else {
        return RestartStep::Idle;
    };
    let debounce = SignedDuration::try_from(debounce).unwrap_or(SignedDuration::ZERO);
    let due = since.checked_add(debounce).unwrap_or(since);
    if now < due {
        return RestartStep::Wait(due.duration_since(now).unsigned_abs());
    }
    next.pending_restart_since = None;
    next.published_hash
        .as_deref()
        .map_or(RestartStep::Idle, |hash| RestartStep::Now(hash.into()))
}

/// The `RolloutRestart` condition after restarting the targets: (status,
/// reason, message).
pub fn restart_condition(
    results: &[(String, RestartResult)],
    published_at: &str,
) -> (ConditionStatus, &'static str, String) {
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for (what, result) in results {
        match result {
            RestartResult::Restarted | RestartResult::AlreadyDone => done.push(what.clone()),
            RestartResult::Missing => problems.push(format!("{what} not found")),
            RestartResult::Failed(msg) => problems.push(format!("{what}: {msg}")),
        }
    }
    if problems.is_empty() {
        let message = format!(
            "restarted {} for the credentials published at {published_at}",
            done.join(", ")
        );
        (ConditionStatus::True, "Restarted", message)
    } else {
        (
            ConditionStatus::False,
            "RestartIncomplete",
            problems.join("; "),
        )
    }
}

/// The event for one target's restart, if it deserves one.
pub fn restart_event(what: &str, result: &RestartResult, ns: &str) -> Option<Transition> {
    let (warning, reason, message) = match result {
        RestartResult::Restarted => (
            false,
            "RolloutRestarted",
            format!("restarted {what}: the published credentials changed"),
        ),
        RestartResult::AlreadyDone => return None,
        RestartResult::Missing => (
            true,
            "RolloutTargetMissing",
            format!("{what} not found in namespace {ns}; nothing restarted"),
        ),
        RestartResult::Failed(msg) => (
            true,
            "RolloutRestartFailed",
            format!("restarting {what} failed: {msg}"),
        ),
    };
    Some(Transition {
        warning,
        reason: reason.into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_only_on_a_real_change_after_a_first_publish() {
        assert!(!restart_needed(None, "abc"), "first publish");
        assert!(!restart_needed(Some("abc"), "abc"), "same content");
        assert!(restart_needed(Some("abc"), "def"));
    }

    #[test]
    fn the_patch_is_guarded_by_the_version_it_was_decided_on() {
        let patch = restart_patch("42", "h2", "2026-01-01T00:00:00Z");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(
            patch["spec"]["template"]["metadata"]["annotations"][RESTART_HASH_ANNOTATION],
            "h2"
        );
    }

    #[test]
    fn reads_the_hash_from_the_pod_template() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"annotations": {RESTART_HASH_ANNOTATION: "h1"}}}}
        }))
        .unwrap();
        assert_eq!(template_hash(&obj), Some("h1"));
    }
}
