//! Helpers for tests against the real test bed: a client, throw-away namespaces, waiting for
//! objects with useful diagnostics on timeout, and running the operator binary.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ::kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config, Resource};
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::process::{OperatorProcess, free_port};

/// What a test says when the test bed is missing.
const NEEDS_TESTBED: &str =
    "this test needs the test bed: run `eval \"$(hack/testbed up)\"` first, or run hack/test";

/// Label put on every namespace made by [`TestNamespace::create`].
pub const TEST_NAMESPACE_LABEL: &str = "trackvia.io/test-namespace";

/// How often the wait helpers look at the server.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Installs aws-lc-rs as the process's rustls provider, so that nothing that builds a TLS
/// configuration from the process default finds two candidates. Safe to call repeatedly.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all this needs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Paths named by `KUBECONFIG`; panics unless it is set and every file is readable.
fn kubeconfig_paths() -> Vec<PathBuf> {
    let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) else {
        panic!("KUBECONFIG is not set; {NEEDS_TESTBED}");
    };
    let paths: Vec<PathBuf> = std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    for path in &paths {
        if let Err(e) = std::fs::read(path) {
            panic!(
                "KUBECONFIG names {} which cannot be read ({e}); {NEEDS_TESTBED}",
                path.display()
            );
        }
    }
    paths
}

/// A client for the cluster `KUBECONFIG` points at. Panics with instructions when it is not
/// set or unreadable: tests that need the bed never skip silently.
pub async fn client() -> Client {
    install_crypto_provider();
    let paths = kubeconfig_paths();
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let config = Kubeconfig::read_from(path)
            .unwrap_or_else(|e| panic!("reading kubeconfig {}: {e}", path.display()));
        merged = Some(match merged {
            None => config,
            Some(m) => m
                .merge(config)
                .unwrap_or_else(|e| panic!("merging kubeconfig {}: {e}", path.display())),
        });
    }
    let Some(kubeconfig) = merged else {
        panic!("KUBECONFIG names no file; {NEEDS_TESTBED}");
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig is not usable: {e}; {NEEDS_TESTBED}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("building a Kubernetes client: {e}"))
}

/// A fresh namespace for one test, deleted by [`TestNamespace::cleanup`] or on drop, unless
/// the environment has `KEEP_NAMESPACES=1` (then its name is printed instead).
pub struct TestNamespace {
    name: String,
    client: Client,
    done: bool,
}

fn keep_namespaces() -> bool {
    std::env::var("KEEP_NAMESPACES").is_ok_and(|v| v == "1")
}

/// `prefix` reduced to what a namespace name allows, leaving room for the random suffix.
fn namespace_name(prefix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean.truncate(48);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "test" } else { clean };
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
        })
        .collect();
    format!("{clean}-{suffix}")
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`. Panics if the server refuses.
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let name = namespace_name(prefix);
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": { TEST_NAMESPACE_LABEL: "true" },
            },
        }))
        .expect("a namespace literal is a valid Namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace {
            name,
            client: client.clone(),
            done: false,
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An `Api` for namespaced objects of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (without waiting for it to be gone), unless `KEEP_NAMESPACES=1`.
    pub async fn cleanup(mut self) {
        self.done = true;
        if keep_namespaces() {
            eprintln!("KEEP_NAMESPACES=1: keeping namespace {}", self.name);
            return;
        }
        delete_namespace(&self.client, &self.name).await;
    }

    /// Like [`TestNamespace::cleanup`], then waits until the server has removed the namespace.
    /// Panics with diagnostics if that takes longer than `timeout`.
    pub async fn cleanup_and_wait(self, timeout: Duration) {
        if keep_namespaces() {
            self.cleanup().await;
            return;
        }
        self.delete_and_wait(timeout).await;
    }

    /// Deletes the namespace even when `KEEP_NAMESPACES=1`, and waits until the server has
    /// removed it (which needs the namespace controller). Panics with diagnostics if that takes
    /// longer than `timeout`.
    pub async fn delete_and_wait(mut self, timeout: Duration) {
        self.done = true;
        delete_namespace(&self.client, &self.name).await;
        let api = Api::<Namespace>::all(self.client.clone());
        wait_for_absent(
            &api,
            &self.name,
            timeout,
            "the test namespace to be deleted",
        )
        .await;
    }
}

async fn delete_namespace(client: &Client, name: &str) {
    delete_cluster_object(client, &ApiResource::erase::<Namespace>(&()), name).await;
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if keep_namespaces() {
            eprintln!("KEEP_NAMESPACES=1: keeping namespace {}", self.name);
            return;
        }
        delete_from_drop(ApiResource::erase::<Namespace>(&()), &self.name);
    }
}

/// Deletes a cluster-scoped object (a CRD, a ClusterRole...) that a test created, on
/// [`ClusterObjectGuard::delete`] or on drop, unless `KEEP_NAMESPACES=1`.
pub struct ClusterObjectGuard {
    resource: ApiResource,
    name: String,
    done: bool,
}

impl ClusterObjectGuard {
    /// Guards the object of kind `K` named `name`.
    pub fn new<K>(name: &str) -> ClusterObjectGuard
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>,
    {
        ClusterObjectGuard {
            resource: ApiResource::erase::<K>(&()),
            name: name.to_string(),
            done: false,
        }
    }

    /// Deletes the object now (a missing object is fine).
    pub async fn delete(mut self, client: &Client) {
        self.done = true;
        if keep_namespaces() {
            eprintln!(
                "KEEP_NAMESPACES=1: keeping {} {}",
                self.resource.kind, self.name
            );
            return;
        }
        delete_cluster_object(client, &self.resource, &self.name).await;
    }
}

impl Drop for ClusterObjectGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if keep_namespaces() {
            eprintln!(
                "KEEP_NAMESPACES=1: keeping {} {}",
                self.resource.kind, self.name
            );
            return;
        }
        delete_from_drop(self.resource.clone(), &self.name);
    }
}

/// Deletes a cluster-scoped object; a 404 is success, other errors are reported, not raised.
async fn delete_cluster_object(client: &Client, resource: &ApiResource, name: &str) {
    let api = Api::<DynamicObject>::all_with(client.clone(), resource);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(::kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => eprintln!("could not delete {} {name}: {e}", resource.kind),
    }
}

/// Deletes a cluster-scoped object from a `Drop` impl. The test's runtime may be shutting down
/// and a kube `Client` is tied to the runtime it was made on, so the delete runs on a thread
/// with its own runtime and client; this waits a bounded time for it.
fn delete_from_drop(resource: ApiResource, name: &str) {
    let name = name.to_string();
    let what = format!("{} {name}", resource.kind);
    let (sent, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("delete-{name}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(async {
                    let client = client().await;
                    delete_cluster_object(&client, &resource, &name).await;
                }),
                Err(e) => eprintln!("could not delete {} {name}: {e}", resource.kind),
            }
            let _ = sent.send(());
        });
    if spawned.is_ok() && finished.recv_timeout(Duration::from_secs(15)).is_err() {
        eprintln!("deleting {what} did not finish within 15 s");
    }
}

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
