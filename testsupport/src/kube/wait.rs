//! Waiting on the bed: polling an object until a condition holds or it is gone, and on
//! timeout a panic with the object (Secrets redacted) and the recent events around it.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use ::kube::Resource;
use ::kube::api::{Api, ListParams};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often the wait helpers look at the server.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Polls `name` until `pred` holds and returns the object. On timeout panics with `what`, the
/// object (Secrets: metadata and key names only) and the recent events of its namespace.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    let mut last_seen: Option<K> = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => {
                if pred(&obj) {
                    return obj;
                }
                last_seen = Some(obj);
            }
            Ok(None) => last_seen = None,
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let object = match &last_seen {
        Some(obj) => describe_object(obj),
        None => format!("{name} does not exist"),
    };
    let error = last_error
        .map(|e| format!("\nlast error: {e}"))
        .unwrap_or_default();
    let events = recent_events(api, name).await;
    panic!(
        "timed out after {timeout:?} waiting for {what}\n--- object ---\n{object}{error}\n--- events ---\n{events}"
    );
}

/// Polls until `name` no longer exists. On timeout panics like [`wait_for`].
pub async fn wait_for_absent<K>(api: &Api<K>, name: &str, timeout: Duration, what: &str)
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let deadline = Instant::now() + timeout;
    loop {
        match api.get_opt(name).await {
            Ok(None) => return,
            Ok(Some(obj)) => {
                if Instant::now() >= deadline {
                    let events = recent_events(api, name).await;
                    panic!(
                        "timed out after {timeout:?} waiting for {what}\n--- object ---\n{}\n--- events ---\n{events}",
                        describe_object(&obj)
                    );
                }
            }
            Err(e) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last error: {e}");
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// YAML of `obj` without managed fields; for Secrets, data values are replaced by their size.
pub fn describe_object<K: Serialize>(obj: &K) -> String {
    let mut value = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => return format!("(cannot serialize: {e})"),
    };
    if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
    }
    let is_secret = value.get("kind").and_then(|k| k.as_str()) == Some("Secret")
        || std::any::type_name::<K>().ends_with("::Secret");
    if is_secret {
        redact_secret(&mut value);
    }
    serde_yaml_ng::to_string(&value).unwrap_or_else(|e| format!("(cannot render: {e})"))
}

/// Replaces every value under `data` and `stringData` with a note of its size, and drops the
/// last-applied annotation, which would repeat them.
fn redact_secret(value: &mut serde_json::Value) {
    for field in ["data", "stringData"] {
        if let Some(map) = value.get_mut(field).and_then(|d| d.as_object_mut()) {
            for v in map.values_mut() {
                let len = v.as_str().map(str::len).unwrap_or(0);
                *v = serde_json::Value::String(format!("<redacted, {len} chars>"));
            }
        }
    }
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(|a| a.as_object_mut())
    {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The last events of the namespace `api` is bound to (or, for a cluster-scoped kind, the
/// events about `name` anywhere), one per line, oldest first.
pub async fn recent_events<K>(api: &Api<K>, name: &str) -> String
where
    K: Resource + Clone,
{
    let client = api.clone().into_client();
    let (events_api, params) = match api.namespace() {
        Some(ns) => (Api::<Event>::namespaced(client, ns), ListParams::default()),
        None => (
            Api::<Event>::all(client),
            ListParams::default().fields(&format!("involvedObject.name={name}")),
        ),
    };
    let mut events = match events_api.list(&params).await {
        Ok(list) => list.items,
        Err(e) => return format!("(could not list events: {e})"),
    };
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .or_else(|| {
                e.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
            })
            .unwrap_or_default()
    };
    events.sort_by_key(|e| when(e));
    if events.is_empty() {
        return "(no events)".to_string();
    }
    let start = events.len().saturating_sub(40);
    events[start..]
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}/{}: {} (x{})",
                when(e),
                e.type_.as_deref().unwrap_or("-"),
                e.reason.as_deref().unwrap_or("-"),
                e.involved_object.kind.as_deref().unwrap_or("-"),
                e.involved_object.name.as_deref().unwrap_or("-"),
                e.message.as_deref().unwrap_or(""),
                e.count.unwrap_or(1),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `crd` is Established (its resource is about to be served).
pub fn crd_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Waits (at most 30 s) until CRD `name` is Established.
pub async fn wait_crd_established(api: &Api<CustomResourceDefinition>, name: &str) {
    wait_for(
        api,
        name,
        Duration::from_secs(30),
        "the CRD to be Established",
        crd_established,
    )
    .await;
}
