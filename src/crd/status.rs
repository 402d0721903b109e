//! The status of a connection as stored: plain fields and standard
//! conditions, serialised exactly as the CRD schema says.

use compact_str::CompactString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a connection.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackViaConnectionStatus {
    /// The generation the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Verified, SecretSynced, Expiring and RolloutRestart.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The instant the token stops working (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<CompactString>,
    /// The instant `Expiring` turns True (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_at: Option<CompactString>,
    /// When TrackVia was last asked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<CompactString>,
    /// When TrackVia last accepted the credentials (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_verification_time: Option<CompactString>,
    /// When the next check is planned (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_verification_time: Option<CompactString>,
    /// HTTP status of TrackVia's last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_http_status: Option<u16>,
    /// Transient failures in a row since the last definite answer.
    #[serde(default)]
    #[schemars(extend("maximum" = 4294967295u32))]
    pub consecutive_failures: u32,
    /// When the current run of transient failures began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<CompactString>,
    /// Name of the output Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<CompactString>,
    /// Keyed-HMAC prefix identifying the current credentials (never the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_fingerprint: Option<CompactString>,
    /// The resourceVersion of the credentials Secret read for `credentialsFingerprint`.
    /// A restarted operator does not read a Secret its watch reports still at that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_version: Option<CompactString>,
    /// Fingerprint of the credentials TrackVia last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_fingerprint: Option<CompactString>,
    /// Content hash of the published output Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_hash: Option<CompactString>,
    /// The output Secret as the operator last wrote it or found it up to date:
    /// its resourceVersion and a fingerprint of the rendering
    /// ("<resourceVersion>/<16 hex digits>"). A restarted operator does not read a
    /// Secret still at that version that it would render the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_version: Option<CompactString>,
    /// The last value of the verify-requested-at annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_requested_at: Option<CompactString>,
    /// Since when a rollout restart waits for the published content to settle (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart_since: Option<CompactString>,
}

/// The status of a condition, as `metav1.Condition` writes it. A value the
/// schema would refuse reads as `Unknown`, so one odd object cannot stop a watch.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[schemars(extend("type" = "string"))]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    #[default]
    #[serde(other)]
    Unknown,
}

impl ConditionStatus {
    /// As written in a `metav1.Condition`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ConditionStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ConditionStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// A standard Kubernetes condition (`metav1.Condition`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: CompactString,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// Machine-readable reason in CamelCase.
    pub reason: CompactString,
    /// Human-readable detail.
    pub message: CompactString,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: CompactString,
    /// The generation this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl TrackViaConnectionStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
