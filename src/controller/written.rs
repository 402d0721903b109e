//! What this process wrote last, so that neither its own watch echoes nor a
//! cache that has not caught up yet make it read or write again: the status
//! per connection and the output Secrets with the content they were written for.

use std::collections::HashMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;

use compact_str::CompactString;

use super::kept::KeptSecret;
use super::key::Key;
use crate::crd::{TrackViaConnection, TrackViaConnectionStatus};
use crate::tables::GiveBack;

/// Entries kept at most; past that the memory starts afresh (entries of deleted
/// objects are never looked up again).
const MAX_ENTRIES: usize = 50_000;

/// The last status written per connection (by uid), with the resourceVersion
/// the write produced. An entry lasts until the connection watch delivers that
/// version: thousands of connections keep no second copy of their status. A
/// pass queued before the delivery starts from the store's copy instead
/// ([`super::context::Context::latest`]). Entries a delivery never meets (a pass
/// still writing when its connection is deleted) go with the next pass, or
/// with the rest at `MAX_ENTRIES`.
#[derive(Clone, Debug, Default)]
pub struct Written {
    by_uid: Arc<Mutex<HashMap<String, (u64, TrackViaConnectionStatus)>>>,
}

/// A connection's resourceVersion as a number, to compare versions.
pub(super) fn version_of(tvc: &TrackViaConnection) -> Option<u64> {
    tvc.resource_version().and_then(|rv| rv.parse::<u64>().ok())
}

impl Written {
    /// The status to start from instead of the cached one: the one written
    /// last, while the cache has not caught up with that write.
    pub fn fresher_than_cache(&self, tvc: &TrackViaConnection) -> Option<TrackViaConnectionStatus> {
        let uid = tvc.uid()?;
        let cached_rv = version_of(tvc);
        let mut written = self.by_uid.lock();
        match (written.get(&uid), cached_rv) {
            (Some((rv, status)), Some(cached)) if cached < *rv => Some(status.clone()),
            (Some(_), _) => {
                written.remove(&uid);
                written.give_back();
                None
            }
            _ => None,
        }
    }

    /// The connection watch delivered `tvc` (into the cache): what was written
    /// for it is forgotten once the cache holds that version or a later one.
    pub fn delivered(&self, tvc: &TrackViaConnection) {
        let (Some(uid), Some(cached)) = (tvc.uid(), version_of(tvc)) else {
            return;
        };
        let mut written = self.by_uid.lock();
        if written.get(&uid).is_some_and(|(rv, _)| cached >= *rv) {
            written.remove(&uid);
            written.give_back();
        }
    }

    /// The connection is deleted: nothing written for it matters any more.
    pub fn deleted(&self, tvc: &TrackViaConnection) {
        if let Some(uid) = tvc.uid() {
            let mut written = self.by_uid.lock();
            written.remove(&uid);
            written.give_back();
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
        let mut written = self.by_uid.lock();
        if written.len() >= MAX_ENTRIES {
            written.clear();
        }
        written.insert(uid, (rv, status.clone()));
    }
}

/// Output Secrets (namespace, name) → (resourceVersion, fingerprint of the
/// desired Secret) at which this process last wrote or found them as wanted,
/// one per connection: names and versions kept inside the entry, not on the heap.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    seen: Arc<Mutex<HashMap<Key, (CompactString, u64)>>>,
}

impl Outputs {
    /// The (resourceVersion, fingerprint) remembered for `ns/name`.
    pub fn get(&self, ns: &str, name: &str) -> Option<(String, u64)> {
        self.seen
            .lock()
            .get(&Key::new(Some(ns), name))
            .map(|(rv, fingerprint)| (rv.to_string(), *fingerprint))
    }

    /// Remember `ns/name` at `resource_version` holding the content
    /// `fingerprint`; forget it when there is no version.
    pub fn set(&self, ns: &str, name: &str, resource_version: Option<String>, fingerprint: u64) {
        let Some(rv) = resource_version else {
            return self.forget(ns, name);
        };
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_ENTRIES {
            seen.clear();
        }
        seen.insert(Key::new(Some(ns), name), (rv.into(), fingerprint));
    }

    /// Forget `ns/name`: its Secret is gone, so a connection publishing there
    /// again creates it rather than reading for it first.
    pub fn forget(&self, ns: &str, name: &str) {
        let mut seen = self.seen.lock();
        seen.remove(&Key::new(Some(ns), name));
        seen.give_back();
    }

    /// The connection an output Secret was published for, unless the event is
    /// the echo of this process's own write (nothing to repair).
    pub fn owner_unless_echo(&self, kept: &KeptSecret) -> Option<ObjectRef<TrackViaConnection>> {
        let ns = kept.namespace()?;
        let owner = kept.connection()?;
        let own_echo = kept.seen_version().is_some_and(|rv| {
            self.get(ns, kept.name())
                .is_some_and(|(seen, _)| seen == rv)
        });
        (!own_echo).then(|| ObjectRef::new(owner).within(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: &str) -> TrackViaConnection {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
            "metadata": {"name": "crm", "namespace": "ns", "uid": "u-1",
                         "resourceVersion": version},
            "spec": {"host": "acme.trackvia.com", "credentialsSecretRef": {"name": "src"}},
        }))
        .expect("a connection")
    }

    fn kept(w: &Written) -> usize {
        w.by_uid.lock().len()
    }

    #[test]
    fn a_written_status_is_kept_only_until_the_watch_delivers_its_version() {
        let w = Written::default();
        let status = TrackViaConnectionStatus {
            consecutive_failures: 3,
            ..TrackViaConnectionStatus::default()
        };
        w.remember(&at("5"), Some("7".into()), &status);
        // The watch is behind: a pass starts from what was written.
        w.delivered(&at("6"));
        assert_eq!(w.fresher_than_cache(&at("6")), Some(status.clone()));
        assert_eq!(kept(&w), 1);
        // The watch delivers the write: the copy is dropped without another pass.
        w.delivered(&at("7"));
        assert_eq!(kept(&w), 0);
        assert_eq!(w.fresher_than_cache(&at("7")), None);
        // A later version, and a deletion, drop it too.
        w.remember(&at("7"), Some("9".into()), &status);
        w.delivered(&at("12"));
        assert_eq!(kept(&w), 0);
        w.remember(&at("12"), Some("13".into()), &status);
        w.deleted(&at("12"));
        assert_eq!(kept(&w), 0);
    }
}
