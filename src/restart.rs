//! Rollout restarts of the workloads that consume a connection's Secret: a
//! pod-template annotation patched only when the published content really
//! changed. The hash acted on is stored on the workload itself, so a crash or a
//! restart of the operator never restarts a workload twice for one change.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};

use crate::crd::{RolloutRestartTarget, WorkloadKind};

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
    let current = match api.get_opt(&target.name).await {
        Ok(Some(obj)) => obj,
        Ok(None) => return RestartResult::Missing,
        Err(e) => return RestartResult::Failed(short(&e)),
    };
    if template_hash(&current) == Some(hash) {
        return RestartResult::AlreadyDone;
    }
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: now,
            RESTART_HASH_ANNOTATION: hash,
        }}}}
    });
    match api
        .patch(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => RestartResult::Restarted,
        Err(e) => RestartResult::Failed(short(&e)),
    }
}

fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// `Kind/name` for messages.
pub fn describe(target: &RolloutRestartTarget) -> String {
    format!("{}/{}", kind_name(target.kind), target.name)
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
