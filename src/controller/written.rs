//! What this process wrote last, so that neither its own watch echoes nor a
//! cache that has not caught up yet make it read or write again: the status
//! per connection and the output Secrets with the content they were written for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::sources::SecretKey;
use super::watches::SecretMeta;
use crate::crd::{CONNECTION_ANNOTATION, TrackViaConnection, TrackViaConnectionStatus};

/// Entries kept at most; past that the memory starts afresh (entries of deleted
/// objects are never looked up again).
const MAX_ENTRIES: usize = 50_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last status written per connection (by uid), with the resourceVersion
/// the write produced.
#[derive(Debug, Default)]
pub struct Written {
    by_uid: Mutex<HashMap<String, (u64, TrackViaConnectionStatus)>>,
}

impl Written {
    /// The status to start from instead of the cached one: the one written
    /// last, while the cache has not caught up with that write.
    pub fn fresher_than_cache(&self, tvc: &TrackViaConnection) -> Option<TrackViaConnectionStatus> {
        let uid = tvc.uid()?;
        let cached_rv = tvc.resource_version().and_then(|rv| rv.parse::<u64>().ok());
        let mut written = lock(&self.by_uid);
        match (written.get(&uid), cached_rv) {
            (Some((rv, status)), Some(cached)) if cached < *rv => Some(status.clone()),
            (Some(_), _) => {
                written.remove(&uid);
                None
            }
            _ => None,
        }
    }

    /// Remember the status written for `tvc` at `resource_version`.
    pub fn remember(
        &self,
        tvc: &TrackViaConnection,
        resource_version: Option<String>,
        status: &TrackViaConnectionStatus,
    ) {
        let (Some(uid), Some(rv)) = (
            tvc.uid(),
            resource_version.and_then(|rv| rv.parse::<u64>().ok()),
        ) else {
            return;
        };
        let mut written = lock(&self.by_uid);
        if written.len() >= MAX_ENTRIES {
            written.clear();
        }
        written.insert(uid, (rv, status.clone()));
    }
}

/// Output Secrets (namespace, name) → (resourceVersion, fingerprint of the
/// desired Secret) at which this process last wrote or found them as wanted.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    seen: Arc<Mutex<HashMap<SecretKey, (String, u64)>>>,
}

impl Outputs {
    /// The (resourceVersion, fingerprint) remembered for `ns/name`.
    pub fn get(&self, ns: &str, name: &str) -> Option<(String, u64)> {
        lock(&self.seen)
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Remember `ns/name` at `resource_version` holding the content
    /// `fingerprint`; forget it when there is no version.
    pub fn set(&self, ns: &str, name: &str, resource_version: Option<String>, fingerprint: u64) {
        let Some(rv) = resource_version else {
            return self.forget(ns, name);
        };
        let mut seen = lock(&self.seen);
        if seen.len() >= MAX_ENTRIES {
            seen.clear();
        }
        seen.insert((ns.to_string(), name.to_string()), (rv, fingerprint));
    }

    /// Forget `ns/name`: its Secret is gone, so a connection publishing there
    /// again creates it rather than reading for it first.
    pub fn forget(&self, ns: &str, name: &str) {
        lock(&self.seen).remove(&(ns.to_string(), name.to_string()));
    }

    /// The connection an output Secret was published for, unless the event is
    /// the echo of this process's own write (nothing to repair).
    pub fn owner_unless_echo(&self, meta: &SecretMeta) -> Option<ObjectRef<TrackViaConnection>> {
        let ns = meta.namespace()?;
        let owner = meta.annotations().get(CONNECTION_ANNOTATION)?;
        let own_echo = meta.resource_version().is_some_and(|rv| {
            self.get(&ns, &meta.name_any())
                .is_some_and(|(seen, _)| seen == rv)
        });
        (!own_echo).then(|| ObjectRef::new(owner).within(&ns))
    }
}
