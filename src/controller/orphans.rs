//! The writes that let go of an adopted Secret: [`release`], and the
//! background scan [`release_orphans`] for Secrets adopted by connections that
//! no longer exist. What to let go of is decided in [`super::adoption`].

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{info, warn};

use super::adoption::{ORPHAN_SCAN_INTERVAL, orphans, release_body};
use super::kept::KeptSecret;
use crate::crd::{MANAGER_NAME, TrackViaConnection};
use crate::metrics::Metrics;

/// Remove the operator's keys, label, annotations and ownerReference from
/// Secret `ns/name`; everything others wrote stays.
pub async fn release(client: &Client, ns: &str, name: &str) -> Result<Secret, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::apply(MANAGER_NAME).force(),
        &Patch::Apply(&release_body(name)),
    )
    .await
}

/// Release, every [`ORPHAN_SCAN_INTERVAL`], the Secrets adopted under
/// `deletionPolicy: Delete` by connections that were deleted (while the
/// operator ran or not). There are no finalizers: this is how deleting such a
/// connection removes its keys without deleting the Secret. Runs until dropped.
pub async fn release_orphans(
    client: Client,
    connections: Vec<Store<TrackViaConnection>>,
    outputs: Vec<Store<KeptSecret>>,
    metrics: std::sync::Arc<Metrics>,
) {
    for store in &connections {
        let _ = store.wait_until_ready().await;
    }
    for store in &outputs {
        let _ = store.wait_until_ready().await;
    }
    // (namespace, name, resourceVersion) released, so a Secret the watch has
    // not yet seen released is not released twice.
    let mut released: HashSet<(String, String, String)> = HashSet::new();
    loop {
        // Only adopted Secrets can be orphans; their metadata is rebuilt for the decision.
        let metas: Vec<ObjectMeta> = outputs
            .iter()
            .flat_map(|store| store.state())
            .filter(|kept| kept.adopted())
            .map(|kept| kept.metadata())
            .collect();
        let exists = |ns: &str, name: &str| {
            let key = ObjectRef::new(name).within(ns);
            connections.iter().any(|store| store.get(&key).is_some())
        };
        for (ns, name, owner) in orphans(&metas, exists) {
            let version = metas
                .iter()
                .find(|m| m.namespace.as_deref() == Some(&ns) && m.name.as_deref() == Some(&name))
                .and_then(|m| m.resource_version.clone())
                .unwrap_or_default();
            let key = (ns.clone(), name.clone(), version);
            if released.contains(&key) {
                continue;
            }
            // The cache may lag: only a connection the API server does not know is gone.
            let api: Api<TrackViaConnection> = Api::namespaced(client.clone(), &ns);
            match api.get_opt(&owner).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    warn!(namespace = %ns, secret = %name, connection = %owner, error = %e, "checking the connection of an adopted Secret");
                    continue;
                }
            }
            match release(&client, &ns, &name).await {
                Ok(_) => {
                    metrics.secret_writes.inc();
                    if released.len() >= 10_000 {
                        released.clear();
                    }
                    released.insert(key);
                    info!(namespace = %ns, secret = %name, connection = %owner, "connection deleted: its keys were removed from the adopted Secret, which stays");
                }
                Err(e) => {
                    warn!(namespace = %ns, secret = %name, connection = %owner, error = %e, "releasing an adopted Secret")
                }
            }
        }
        tokio::time::sleep(ORPHAN_SCAN_INTERVAL).await;
    }
}
