//! Objects the tests make again and again: a TrackViaConnection and its server-side apply, a
//! consumer Deployment, the RFC 7396 merge of JSON documents, and random name parts.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The field manager of the tests' server-side applies.
pub const FIELD_MANAGER: &str = "trackvia-tests";

/// `patch` merged into `base` as RFC 7396 says: objects recursively, a `null` removes the key,
/// anything else replaces.
pub fn merged(mut base: Value, patch: &Value) -> Value {
    json_patch::merge(&mut base, patch);
    base
}

/// A TrackViaConnection named `name` with exactly `spec`.
pub fn connection(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Server-side apply (forced, as `manager`) of connection `name` with exactly `spec`, in the
/// namespace of `api`.
pub async fn apply_connection<K>(
    api: &Api<K>,
    manager: &str,
    name: &str,
    spec: Value,
) -> Result<K, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&connection(name, spec)),
    )
    .await
}

/// A Deployment `name` whose pods run one placeholder container (no pod runs on the bed).
pub fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
            }
        }
    }))
    .expect("deployment literal")
}

/// `len` random lower-case letters and digits: a suffix that keeps names apart, or the tail of
/// a credential recognisable in a leak search.
pub fn random_lowercase(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
        })
        .collect()
}
