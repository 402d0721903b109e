//! What a test creates on the bed and must remove: a throw-away namespace
//! ([`TestNamespace`]) and a cluster-scoped object ([`ClusterObjectGuard`]), both deleted on
//! drop unless `KEEP_NAMESPACES=1`.

use std::fmt::Debug;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use ::kube::{Client, Resource};
use k8s_openapi::api::core::v1::Namespace;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client;
use super::wait::wait_for_absent;
use crate::fixtures::random_lowercase;

/// Label put on every namespace made by [`TestNamespace::create`].
pub const TEST_NAMESPACE_LABEL: &str = "trackvia.io/test-namespace";

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

/// Whether `what` is to be kept (`KEEP_NAMESPACES=1`); says so when it is.
fn kept(what: &str) -> bool {
    let keep = keep_namespaces();
    if keep {
        eprintln!("KEEP_NAMESPACES=1: keeping {what}");
    }
    keep
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
    format!("{clean}-{}", random_lowercase(6))
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

    /// Creates the object `value` describes, of kind `K`, in this namespace and returns it as
    /// the server stored it. Panics naming the object (not its data) when `value` is not a `K`
    /// or the server refuses it.
    pub async fn create_from_json<K>(&self, value: serde_json::Value) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
        K::DynamicType: Default,
    {
        let what = format!(
            "{} {}",
            value["kind"].as_str().unwrap_or("object"),
            value["metadata"]["name"].as_str().unwrap_or("(no name)")
        );
        let object: K = serde_json::from_value(value)
            .unwrap_or_else(|e| panic!("{what} is not a valid object: {e}"));
        self.api::<K>()
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("creating {what} in {}: {e}", self.name))
    }

    /// Deletes the namespace (without waiting for it to be gone), unless `KEEP_NAMESPACES=1`.
    pub async fn cleanup(mut self) {
        self.done = true;
        if kept(&format!("namespace {}", self.name)) {
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
        if kept(&format!("namespace {}", self.name)) {
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
        if kept(&format!("{} {}", self.resource.kind, self.name)) {
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
        if kept(&format!("{} {}", self.resource.kind, self.name)) {
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
