//! Which events of the connection watch start a pass: a connection new under
//! its name (a new uid), a new spec (a new `metadata.generation`) or a new
//! `trackvia.io/verify-requested-at` value; not the operator's own status
//! writes. One 8-byte hash per connection under a 48-byte [`Key`], nothing on
//! the heap for names of up to 24 bytes; a connection's entry goes with its deletion, and a relist keeps
//! only the connections it lists. The connections that go are reported, so
//! that the operator's other tables forget them too. Whether an event may
//! change which Secrets the connections read (the source watches are planned
//! again) is decided here too: never for a status write.

use std::collections::HashMap;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::key::Key;
use super::plan::stable_hash;
use crate::crd::{TrackViaConnection, VERIFY_REQUESTED_ANNOTATION};

/// What each connection's last event carried that a pass depends on.
#[derive(Debug, Default)]
pub struct SpecChanges {
    seen: HashMap<Key, u64>,
    /// What a relist in progress has listed.
    relisting: Option<HashMap<Key, u64>>,
}

/// What one event of the connection watch asks for.
#[derive(Debug)]
pub struct Followed {
    /// The connection to start a pass for.
    pub start: Option<TrackViaConnection>,
    /// Whether the Secrets the connections read may have changed: a pass
    /// started (a new connection, spec or verify request) outside a relist, a
    /// connection gone, or the end of a relist (the store takes a relist in
    /// only then).
    pub replan: bool,
}

/// What of a connection starts a pass when it changes.
fn relevant(tvc: &TrackViaConnection) -> u64 {
    let requested = tvc.annotations().get(VERIFY_REQUESTED_ANNOTATION);
    stable_hash(&(tvc.uid(), tvc.metadata.generation, requested))
}

impl SpecChanges {
    /// What `event` asks for; `gone` is told of each connection deleted, or
    /// missing from a relist.
    pub fn follow(&mut self, event: Event<TrackViaConnection>, gone: impl FnMut(Key)) -> Followed {
        // A deletion and the end of a relist always may; a watched change only
        // when it starts a pass; a connection a relist lists reaches the store
        // only at the relist's end.
        let always = matches!(event, Event::Delete(_) | Event::InitDone);
        let if_started = matches!(event, Event::Apply(_));
        let start = self.start_for(event, gone);
        Followed {
            replan: always || (if_started && start.is_some()),
            start,
        }
    }

    fn start_for(
        &mut self,
        event: Event<TrackViaConnection>,
        mut gone: impl FnMut(Key),
    ) -> Option<TrackViaConnection> {
        match event {
            Event::Apply(tvc) => {
                let now = relevant(&tvc);
                let before = self.seen.insert(Key::of(&tvc), now);
                (before != Some(now)).then_some(tvc)
            }
            Event::Delete(tvc) => {
                let key = Key::of(&tvc);
                self.seen.remove(&key);
                gone(key);
                None
            }
            Event::Init => {
                self.relisting = Some(HashMap::new());
                None
            }
            Event::InitApply(tvc) => {
                let (key, now) = (Key::of(&tvc), relevant(&tvc));
                let changed = self.seen.get(&key) != Some(&now);
                self.relisting.get_or_insert_default().insert(key, now);
                changed.then_some(tvc)
            }
            Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    let before = std::mem::replace(&mut self.seen, listed);
                    for key in before.into_keys() {
                        if !self.seen.contains_key(&key) {
                            gone(key);
                        }
                    }
                }
                None
            }
        }
    }

    /// Connections remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no connection is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tvc(name: &str, uid: &str, generation: i64, requested: Option<&str>) -> TrackViaConnection {
        let mut annotations = serde_json::Map::new();
        if let Some(at) = requested {
            annotations.insert(VERIFY_REQUESTED_ANNOTATION.into(), at.into());
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
            "metadata": {"name": name, "namespace": "ns", "uid": uid,
                         "generation": generation, "annotations": annotations},
            "spec": {"host": "acme.trackvia.com", "credentialsSecretRef": {"name": "src"}},
        }))
        .expect("a connection")
    }

    fn starts(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> bool {
        changes
            .follow(event, |key| panic!("{key:?} reported gone"))
            .start
            .is_some()
    }

    fn replans(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> bool {
        changes.follow(event, |_| {}).replan
    }

    /// The connections `event` reports gone.
    fn gone(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> Vec<Key> {
        let mut gone = Vec::new();
        changes.follow(event, |key| gone.push(key));
        gone
    }

    #[test]
    fn a_pass_starts_for_a_new_spec_request_or_object_only() {
        let mut c = SpecChanges::default();
        assert!(starts(&mut c, Event::Apply(tvc("a", "u1", 1, None))));
        // The operator's status write: same generation.
        assert!(!starts(&mut c, Event::Apply(tvc("a", "u1", 1, None))));
        assert!(starts(&mut c, Event::Apply(tvc("a", "u1", 2, None))));
        assert!(starts(&mut c, Event::Apply(tvc("a", "u1", 2, Some("1")))));
        assert!(!starts(&mut c, Event::Apply(tvc("a", "u1", 2, Some("1")))));
        // Deleted and applied again under the same name: a new uid.
        let deleted = gone(&mut c, Event::Delete(tvc("a", "u1", 2, Some("1"))));
        assert_eq!(deleted, vec![Key::new(Some("ns"), "a")]);
        assert!(c.is_empty(), "a deleted connection is forgotten");
        assert!(starts(&mut c, Event::Apply(tvc("a", "u2", 1, None))));
        assert!(starts(&mut c, Event::Apply(tvc("b", "u3", 1, None))));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn the_source_watches_are_planned_again_for_what_can_change_the_secrets_read_only() {
        let mut c = SpecChanges::default();
        assert!(replans(&mut c, Event::Apply(tvc("a", "u1", 1, None))));
        // The operator's status writes, thousands of them at start-up: no re-plan.
        assert!(!replans(&mut c, Event::Apply(tvc("a", "u1", 1, None))));
        // A new spec may name another Secret.
        assert!(replans(&mut c, Event::Apply(tvc("a", "u1", 2, None))));
        assert!(replans(&mut c, Event::Delete(tvc("a", "u1", 2, None))));
        // A relist reaches the store at its end: re-planned then, whatever it held,
        // not for each connection it lists.
        assert!(!replans(&mut c, Event::Init));
        assert!(!replans(&mut c, Event::InitApply(tvc("b", "u2", 1, None))));
        assert!(replans(&mut c, Event::InitDone));
    }

    #[test]
    fn a_relist_starts_passes_for_changes_only_and_keeps_what_it_listed() {
        let mut c = SpecChanges::default();
        for name in ["a", "b", "gone"] {
            starts(&mut c, Event::Apply(tvc(name, name, 1, None)));
        }
        assert!(!starts(&mut c, Event::Init));
        assert!(!starts(&mut c, Event::InitApply(tvc("a", "a", 1, None))));
        assert!(starts(&mut c, Event::InitApply(tvc("b", "b", 2, None))));
        assert!(starts(&mut c, Event::InitApply(tvc("new", "new", 1, None))));
        // Deleted and applied again under its name while the watch was away.
        assert!(starts(
            &mut c,
            Event::InitApply(tvc("a", "a-again", 1, None))
        ));
        assert_eq!(
            c.len(),
            3,
            "until the relist ends, what was seen before counts"
        );
        // Deleted while the watch was away: not listed, so forgotten.
        let missing = gone(&mut c, Event::InitDone);
        assert_eq!(missing, vec![Key::new(Some("ns"), "gone")]);
        assert_eq!(c.len(), 3);
        assert!(starts(&mut c, Event::Apply(tvc("gone", "gone", 1, None))));
    }
}
