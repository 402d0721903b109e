//! The model of `status`: what is shown, with stable JSON names (`-o json` and `-o yaml`).

use std::collections::BTreeSet;

use serde::Serialize;

/// A workload in the connection's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// A workload and the Secrets its pod template refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Kind and name.
    pub workload: WorkloadRef,
    /// Names of the Secrets the pod template uses.
    pub secrets: BTreeSet<String>,
}

/// One connection, as in the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready's status (`True`, `False`, `Unknown`); null before the operator's first pass.
    pub ready: Option<String>,
    /// Ready's reason.
    pub reason: Option<String>,
    /// Ready's message.
    pub message: Option<String>,
    /// TrackVia host.
    pub host: String,
    /// Account id sent as `account-id`.
    pub account_id: Option<u64>,
    /// The token's name on TrackVia's API Access page.
    pub token_name: Option<String>,
    /// The API user the token belongs to.
    pub api_user: Option<String>,
    /// The expiry date as written in the spec.
    pub token_expires_on: Option<String>,
    /// The instant the token stops working (RFC 3339).
    pub token_expires_at: Option<String>,
    /// Seconds until expiry at the time of the report; negative once expired.
    pub expires_in_seconds: Option<i64>,
    /// The expiry instant has passed.
    pub expired: bool,
    /// Inside the expiry-warning window, not yet expired.
    pub expiring: bool,
    /// When TrackVia was last asked (RFC 3339).
    pub last_verified_time: Option<String>,
    /// When TrackVia last accepted the credentials (RFC 3339).
    pub last_successful_verification_time: Option<String>,
    /// When the next check is planned (RFC 3339).
    pub next_verification_time: Option<String>,
    /// HTTP status of TrackVia's last answer.
    pub last_http_status: Option<u16>,
    /// Transient failures in a row.
    pub consecutive_failures: u32,
    /// Name of the output Secret.
    pub secret_name: String,
    /// Whether the operator has written the output Secret.
    pub published: bool,
    /// Workloads whose pod templates use the output Secret; null when they could not be listed.
    pub consumers: Option<Vec<WorkloadRef>>,
}

/// The spec, without anything secret (there is nothing secret in it).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecSummary {
    /// Source Secret name.
    pub credentials_secret: String,
    /// Key of the API key in the source Secret.
    pub api_key_key: String,
    /// Key of the auth token in the source Secret.
    pub auth_token_key: String,
    /// Expiry warning window.
    pub expiry_warning: String,
    /// Verification interval.
    pub verify_interval: String,
    /// `Verified` or `Always`.
    pub publish: String,
    /// `Delete` or `Retain`.
    pub deletion_policy: String,
    /// Workloads restarted when the published credentials change.
    pub rollout_restart_targets: Vec<WorkloadRef>,
}

/// A condition as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// Generation it was computed for.
    pub observed_generation: Option<i64>,
}

/// An event as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// How often it happened.
    pub count: i32,
    /// When it last happened (RFC 3339).
    pub last_time: Option<String>,
}

/// One connection in detail.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetail {
    /// Everything of the table row.
    #[serde(flatten)]
    pub summary: ConnectionSummary,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// When `Expiring` turns True (RFC 3339).
    pub expiry_warning_at: Option<String>,
    /// Keyed-HMAC prefix identifying the credentials (not the credentials).
    pub credentials_fingerprint: Option<String>,
    /// The spec.
    pub spec: SpecSummary,
    /// All conditions.
    pub conditions: Vec<ConditionView>,
    /// Recent events, oldest first; null when they could not be listed.
    pub events: Option<Vec<EventView>>,
}

/// The list output of `-o json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionList {
    /// The connections, by namespace and name.
    pub connections: Vec<ConnectionSummary>,
}
