//! The `TrackViaConnection` custom resource: the spec and its schema rules
//! (here, with the rules several fields share in `rules`), the fixed names
//! (`names`) and the stored status (`status`).
//!
//! Texts are `CompactString`s: the operator keeps every connection in memory, and most of
//! its texts (names, keys, durations, timestamps, reasons, hashes) fit in the 24 bytes a
//! `String` takes, so they need no heap block of their own (`tests/store_memory.rs`). They
//! serialise, and appear in the schema, as plain strings.

mod names;
mod rules;
mod status;

use std::collections::BTreeMap;

use compact_str::CompactString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use names::*;
pub use status::{Condition, ConditionStatus, TrackViaConnectionStatus};

/// A verified TrackVia connection: credentials from a Secret, checked against the
/// TrackVia API and published as a complete connection Secret.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "trackvia.io",
    version = "v1alpha1",
    kind = "TrackViaConnection",
    plural = "trackviaconnections",
    shortname = "tvc",
    category = "trackvia",
    doc = "TrackViaConnection keeps one TrackVia API key and auth token verified: it reads them from a Secret, checks them against the TrackVia API and publishes them, with the host and base URL, as a connection Secret for applications. Its status tells whether the credentials work and when the token expires.",
    namespaced,
    status = "TrackViaConnectionStatus",
    validation = kube::core::Rule::new(TARGET_NOT_SOURCE_RULE).message(TARGET_NOT_SOURCE_MESSAGE),
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName","description":"The output Secret"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.tokenExpiresOn"}"#,
    printcolumn = r#"{"name":"Last Verified","type":"date","jsonPath":".status.lastVerifiedTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message","description":"Why the connection is or is not ready"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrackViaConnectionSpec {
    /// TrackVia host: the account's subdomain with an optional port, no scheme or path.
    #[serde(default = "default_host")]
    #[schemars(extend(
        "pattern" = HOST_PATTERN,
        "maxLength" = 253,
        "x-kubernetes-validations" = [
            {"rule": "!self.contains('/') && !self.contains('@') && !self.contains('://')",
             "message": "host must be host[:port] without a scheme, userinfo or path"},
            {"rule": "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$')",
             "message": "host must be a lower-case DNS name with an optional :port"}
        ]
    ))]
    pub host: CompactString,

    /// Numeric TrackVia account id, sent as the `account-id` header (sandbox accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1))]
    pub account_id: Option<u64>,

    /// The Secret, in the same namespace, holding the API key and the auth token.
    pub credentials_secret_ref: CredentialsSecretRef,

    /// The date chosen in TrackVia when the token was created (YYYY-MM-DD);
    /// the token stops working at 00:00 UTC on that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "pattern" = DATE_PATTERN,
        "maxLength" = 10,
        // The day is checked against the month's length (leap years included)
        // rather than with `timestamp()`, which fails with an evaluation error
        // instead of this message on a date such as 2027-02-30.
        "x-kubernetes-validations" = [
            {"rule": "self.matches('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$') && self >= '2000-01-01' && int(self.substring(8, 10)) <= [31, (int(self.substring(0, 4)) % 4 == 0 && (int(self.substring(0, 4)) % 100 != 0 || int(self.substring(0, 4)) % 400 == 0)) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][int(self.substring(5, 7)) - 1]",
             "message": "tokenExpiresOn must be a calendar date YYYY-MM-DD from 2000-01-01 on"}
        ]
    ))]
    pub token_expires_on: Option<CompactString>,

    /// The token's name on TrackVia's API Access page (informational; no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = rules::printable_text("tokenName"))]
    pub token_name: Option<CompactString>,

    /// The API user the token belongs to (informational; no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = rules::printable_text("apiUser"))]
    pub api_user: Option<CompactString>,

    /// How long before expiry `Expiring` turns True (a duration such as `336h`).
    #[serde(default = "default_expiry_warning")]
    #[schemars(transform = rules::duration(
        "duration(self) >= duration('0s')",
        "expiryWarning must be a non-negative duration such as 336h"
    ))]
    pub expiry_warning: CompactString,

    /// How often to verify against TrackVia (minimum 1m); `0` turns periodic checks off.
    #[serde(default = "default_verify_interval")]
    #[schemars(transform = rules::duration(
        "(duration(self) == duration('0s') || duration(self) >= duration('1m'))",
        "verifyInterval must be at least 1m, or 0 to turn periodic checks off"
    ))]
    pub verify_interval: CompactString,

    /// The output Secret.
    #[serde(default)]
    pub target: Target,

    /// Which credentials are published: only those TrackVia accepted, or always.
    #[serde(default)]
    pub publish: Publish,

    /// Workloads restarted when the published credentials really change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 32))]
    pub rollout_restart_targets: Vec<RolloutRestartTarget>,
}

fn default_host() -> CompactString {
    CompactString::const_new("go.trackvia.com")
}
fn default_expiry_warning() -> CompactString {
    CompactString::const_new("336h")
}
fn default_verify_interval() -> CompactString {
    CompactString::const_new("1h")
}

/// Where the credentials are read from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret in the connection's namespace.
    #[schemars(extend("pattern" = NAME_PATTERN, "maxLength" = 253, "minLength" = 1))]
    pub name: CompactString,
    /// Key holding the TrackVia API key (`user_key`).
    #[serde(default = "default_api_key_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub api_key_key: CompactString,
    /// Key holding the TrackVia auth token.
    #[serde(default = "default_auth_token_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub auth_token_key: CompactString,
}

fn default_api_key_key() -> CompactString {
    CompactString::const_new("apiKey")
}
fn default_auth_token_key() -> CompactString {
    CompactString::const_new("authToken")
}

/// The output Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.labels) || !('app.kubernetes.io/managed-by' in self.labels)",
     "message": "target.labels must not set app.kubernetes.io/managed-by"}
]))]
pub struct Target {
    /// Name of the output Secret (default: the connection's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = NAME_PATTERN, "maxLength" = 253, "minLength" = 1))]
    pub name: Option<CompactString>,
    /// Key names in the output Secret.
    #[serde(default)]
    pub keys: TargetKeys,
    /// Extra labels for the output Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations for the output Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// What happens to the output Secret when the connection is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take over an existing Secret at the target name that the operator did not create.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
}

/// Key names in the output Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[self.apiKey, self.authToken, self.host, self.accountId, self.baseUrl].all(k, [self.apiKey, self.authToken, self.host, self.accountId, self.baseUrl].filter(j, j == k).size() == 1)",
     "message": "target.keys must all be different"}
]))]
pub struct TargetKeys {
    /// Key for the API key.
    #[serde(default = "default_api_key_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub api_key: CompactString,
    /// Key for the auth token.
    #[serde(default = "default_auth_token_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub auth_token: CompactString,
    /// Key for the host.
    #[serde(default = "default_host_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub host: CompactString,
    /// Key for the account id (written only when `accountId` is set).
    #[serde(default = "default_account_id_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub account_id: CompactString,
    /// Key for the base URL (`https://{host}`), the value TrackVia SDKs take.
    #[serde(default = "default_base_url_key")]
    #[schemars(extend("pattern" = SECRET_KEY_PATTERN, "maxLength" = 253))]
    pub base_url: CompactString,
}

impl Default for TargetKeys {
    fn default() -> Self {
        TargetKeys {
            api_key: default_api_key_key(),
            auth_token: default_auth_token_key(),
            host: default_host_key(),
            account_id: default_account_id_key(),
            base_url: default_base_url_key(),
        }
    }
}

fn default_host_key() -> CompactString {
    CompactString::const_new("host")
}
fn default_account_id_key() -> CompactString {
    CompactString::const_new("accountId")
}
fn default_base_url_key() -> CompactString {
    CompactString::const_new("baseUrl")
}

/// What happens to the output Secret when the connection is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// The Secret carries an ownerReference and is garbage-collected.
    #[default]
    Delete,
    /// The Secret is kept.
    Retain,
}

/// Which credentials are published.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Publish {
    /// Only credentials TrackVia accepted.
    #[default]
    Verified,
    /// Whatever the source Secret holds.
    Always,
}

/// A workload restarted when the published credentials change.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRestartTarget {
    /// Kind of the workload.
    pub kind: WorkloadKind,
    /// Name of the workload in the connection's namespace.
    #[schemars(extend("pattern" = NAME_PATTERN, "maxLength" = 253, "minLength" = 1))]
    pub name: CompactString,
}

/// Kinds of workload that can be restarted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl TrackViaConnection {
    /// The output Secret's name.
    pub fn target_name(&self) -> String {
        self.spec
            .target
            .name
            .as_deref()
            .map_or_else(|| kube::ResourceExt::name_any(self), String::from)
    }
}

/// The CRD as YAML, exactly as written to `crds/`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = TrackViaConnection::crd();
    // Serialising a derived CRD cannot fail: it holds only strings, maps and numbers.
    let body = serde_yaml_ng::to_string(&crd).unwrap_or_default();
    format!("# Generated by `trackvia-operator crd`. Do not edit.\n{body}")
}
