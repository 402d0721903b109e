//! Which events of the connection watch start a pass: a connection new under
//! its name (a new uid), a new spec (a new `metadata.generation`) or a new
//! `trackvia.io/verify-requested-at` value; not the operator's own status
//! writes. One 8-byte hash and the name of the Secret read per connection under
//! a 48-byte [`Key`], nothing on the heap for names of up to 24 bytes; a
//! connection's entry goes with its deletion, and a relist keeps only the
//! connections it lists. The connections that go are reported, so that the
//! operator's other tables forget them too.
//!
//! The source Secrets the connections read are counted here as the events
//! arrive, so the source watches are planned from the distinct Secrets (a few,
//! for thousands of connections) rather than from a walk over every connection,
//! and planned again only when that set of Secrets changes.

use std::collections::{HashMap, HashSet};

use compact_str::CompactString;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::key::Key;
use super::plan::stable_hash;
use super::sources::SecretKey;
use crate::crd::{TrackViaConnection, VERIFY_REQUESTED_ANNOTATION};

/// What each connection's last event carried that a pass depends on, and the
/// Secrets the connections read.
#[derive(Debug, Default)]
pub struct SpecChanges {
    seen: HashMap<Key, Seen>,
    /// What a relist in progress has listed.
    relisting: Option<HashMap<Key, Seen>>,
    /// Connections reading each source Secret (namespace, name), counted over
    /// `seen` (not over a relist in progress).
    readers: HashMap<(CompactString, CompactString), u32>,
}

/// What one connection's last event carried.
#[derive(Debug, PartialEq)]
struct Seen {
    /// The hash of what starts a pass when it changes (see [`relevant`]).
    relevant: u64,
    /// The Secret it reads its credentials from, in its own namespace.
    reads: CompactString,
}

/// What one event of the connection watch asks for.
#[derive(Debug)]
pub struct Followed {
    /// The connection to start a pass for.
    pub start: Option<TrackViaConnection>,
    /// Whether the Secrets the connections read changed: one read by no
    /// connection before, or by none now. A relist counts at its end (the store
    /// takes it in only then).
    pub replan: bool,
}

/// What of a connection starts a pass when it changes.
fn relevant(tvc: &TrackViaConnection) -> u64 {
    let requested = tvc.annotations().get(VERIFY_REQUESTED_ANNOTATION);
    stable_hash(&(tvc.uid(), tvc.metadata.generation, requested))
}

fn seen(tvc: &TrackViaConnection) -> Seen {
    Seen {
        relevant: relevant(tvc),
        reads: tvc.spec.credentials_secret_ref.name.as_str().into(),
    }
}

impl SpecChanges {
    /// What `event` asks for; `gone` is told of each connection deleted, or
    /// missing from a relist.
    pub fn follow(
        &mut self,
        event: Event<TrackViaConnection>,
        mut gone: impl FnMut(Key),
    ) -> Followed {
        let mut replan = false;
        let start = match event {
            Event::Apply(tvc) => {
                let (key, now) = (Key::of(&tvc), seen(&tvc));
                let before = self.seen.get(&key);
                let started = before.map(|s| s.relevant) != Some(now.relevant);
                if before.map(|s| &s.reads) != Some(&now.reads) {
                    let before = before.map(|s| s.reads.clone());
                    replan = self.one_more(&key, &now.reads);
                    if let Some(reads) = before {
                        replan |= self.one_fewer(&key, &reads);
                    }
                }
                self.seen.insert(key, now);
                started.then_some(tvc)
            }
            Event::Delete(tvc) => {
                let key = Key::of(&tvc);
                if let Some(before) = self.seen.remove(&key) {
                    replan = self.one_fewer(&key, &before.reads);
                }
                gone(key);
                None
            }
            Event::Init => {
                self.relisting = Some(HashMap::new());
                None
            }
            Event::InitApply(tvc) => {
                let (key, now) = (Key::of(&tvc), seen(&tvc));
                let changed = self.seen.get(&key).map(|s| s.relevant) != Some(now.relevant);
                self.relisting.get_or_insert_default().insert(key, now);
                changed.then_some(tvc)
            }
            Event::InitDone => {
                if let Some(listed) = self.relisting.take() {
                    replan = self.relisted(listed, gone);
                }
                None
            }
        };
        Followed { start, replan }
    }

    /// The source Secrets (namespace, name) some connection reads.
    pub fn read_secrets(&self) -> HashSet<SecretKey> {
        self.readers
            .keys()
            .map(|(ns, name)| (ns.to_string(), name.to_string()))
            .collect()
    }

    /// `listed` replaces what was seen: the readers are counted again, and the
    /// connections not listed are gone. Whether the Secrets read changed.
    fn relisted(&mut self, listed: HashMap<Key, Seen>, mut gone: impl FnMut(Key)) -> bool {
        let before = std::mem::replace(&mut self.seen, listed);
        for key in before.into_keys() {
            if !self.seen.contains_key(&key) {
                gone(key);
            }
        }
        let secrets_before = std::mem::take(&mut self.readers);
        for (key, s) in &self.seen {
            if let Some(secret) = source(key, &s.reads) {
                *self.readers.entry(secret).or_default() += 1;
            }
        }
        secrets_before.len() != self.readers.len()
            || secrets_before.keys().any(|k| !self.readers.contains_key(k))
    }

    /// One connection more reads `reads` in `key`'s namespace; whether it is the first.
    fn one_more(&mut self, key: &Key, reads: &CompactString) -> bool {
        let Some(secret) = source(key, reads) else {
            return false;
        };
        let n = self.readers.entry(secret).or_default();
        *n += 1;
        *n == 1
    }

    /// One connection fewer reads `reads` in `key`'s namespace; whether it was the last.
    fn one_fewer(&mut self, key: &Key, reads: &CompactString) -> bool {
        let Some(secret) = source(key, reads) else {
            return false;
        };
        match self.readers.get_mut(&secret) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => self.readers.remove(&secret).is_some(),
            None => false,
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

/// The Secret `reads` in the namespace of connection `key`; none without a
/// namespace (never delivered: the resource is namespaced).
fn source(key: &Key, reads: &CompactString) -> Option<(CompactString, CompactString)> {
    let namespace = key.namespace();
    (!namespace.is_empty()).then(|| (namespace.into(), reads.clone()))
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

    /// Whether `event` re-plans; after it, the readers counted are those of
    /// the connections remembered.
    fn replans(changes: &mut SpecChanges, event: Event<TrackViaConnection>) -> bool {
        let replan = changes.follow(event, |_| {}).replan;
        let mut recounted = HashMap::new();
        for (key, seen) in &changes.seen {
            if let Some(secret) = source(key, &seen.reads) {
                *recounted.entry(secret).or_default() += 1;
            }
        }
        assert_eq!(changes.readers, recounted, "the readers counted drifted");
        replan
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

    fn reading(name: &str, uid: &str, generation: i64, source: &str) -> TrackViaConnection {
        let mut tvc = tvc(name, uid, generation, None);
        tvc.spec.credentials_secret_ref.name = source.into();
        tvc
    }

    fn read(changes: &SpecChanges) -> Vec<String> {
        let mut names: Vec<String> = changes.read_secrets().into_iter().map(|k| k.1).collect();
        names.sort();
        names
    }

    #[test]
    fn the_source_watches_are_planned_again_only_when_the_secrets_read_change() {
        let mut c = SpecChanges::default();
        assert!(replans(&mut c, Event::Apply(reading("a", "u1", 1, "s1"))));
        // The operator's status writes, thousands of them at start-up: no re-plan.
        assert!(!replans(&mut c, Event::Apply(reading("a", "u1", 1, "s1"))));
        // Thousands of connections reading a few Secrets: one re-plan per Secret.
        for i in 0..1000 {
            let name = format!("b{i}");
            assert!(!replans(
                &mut c,
                Event::Apply(reading(&name, &name, 1, "s1"))
            ));
        }
        // A new spec reading the same Secret; then another Secret.
        assert!(!replans(&mut c, Event::Apply(reading("a", "u1", 2, "s1"))));
        assert!(replans(&mut c, Event::Apply(reading("a", "u1", 3, "s2"))));
        assert_eq!(read(&c), ["s1", "s2"]);
        // Its last reader gone, a Secret is no longer watched.
        assert!(replans(&mut c, Event::Delete(reading("a", "u1", 3, "s2"))));
        assert!(!replans(
            &mut c,
            Event::Delete(reading("b0", "b0", 1, "s1"))
        ));
        assert_eq!(read(&c), ["s1"]);
        // A relist reaches the store at its end: re-planned then if what the
        // connections read changed, not for each connection it lists.
        assert!(!replans(&mut c, Event::Init));
        assert!(!replans(
            &mut c,
            Event::InitApply(reading("b1", "b1", 1, "s1"))
        ));
        assert!(!replans(&mut c, Event::InitDone));
        assert_eq!(read(&c), ["s1"]);
        assert_eq!(c.len(), 1, "what the relist did not list is forgotten");
        assert!(!replans(&mut c, Event::Init));
        assert!(!replans(
            &mut c,
            Event::InitApply(reading("b1", "b1", 1, "s3"))
        ));
        assert!(replans(&mut c, Event::InitDone));
        assert_eq!(read(&c), ["s3"]);
        assert!(replans(&mut c, Event::Delete(reading("b1", "b1", 1, "s3"))));
        assert!(c.read_secrets().is_empty());
    }

    #[test]
    fn leaving_a_secret_for_another_read_already_replans_only_when_it_was_the_last() {
        let mut c = SpecChanges::default();
        assert!(replans(&mut c, Event::Apply(reading("a", "a", 1, "s1"))));
        assert!(replans(&mut c, Event::Apply(reading("b", "b", 1, "s2"))));
        assert!(!replans(&mut c, Event::Apply(reading("c", "c", 1, "s2"))));
        // b leaves s2, which c still reads; then c leaves it, the last.
        assert!(!replans(&mut c, Event::Apply(reading("b", "b", 2, "s1"))));
        assert!(replans(&mut c, Event::Apply(reading("c", "c", 2, "s1"))));
        assert_eq!(read(&c), ["s1"]);
        // A deletion of a connection never seen changes nothing.
        assert!(!replans(&mut c, Event::Delete(reading("x", "x", 1, "s1"))));
        assert_eq!(c.len(), 3);
        // A relist started again before its end counts only the last one's list.
        assert!(!replans(&mut c, Event::Init));
        assert!(!replans(
            &mut c,
            Event::InitApply(reading("a", "a", 2, "s9"))
        ));
        assert!(!replans(&mut c, Event::Init));
        assert!(!replans(
            &mut c,
            Event::InitApply(reading("a", "a", 2, "s1"))
        ));
        assert!(!replans(&mut c, Event::InitDone));
        assert_eq!((c.len(), read(&c)), (1, vec!["s1".to_string()]));
    }

    #[test]
    fn the_secrets_read_are_counted_per_namespace() {
        let mut c = SpecChanges::default();
        let mut other = reading("a", "u2", 1, "s1");
        other.metadata.namespace = Some("other".into());
        assert!(replans(&mut c, Event::Apply(reading("a", "u1", 1, "s1"))));
        assert!(replans(&mut c, Event::Apply(other.clone())));
        let expected: HashSet<SecretKey> = [("ns", "s1"), ("other", "s1")]
            .map(|(ns, name)| (ns.to_string(), name.to_string()))
            .into();
        assert_eq!(c.read_secrets(), expected);
        assert!(replans(&mut c, Event::Delete(other)));
        // A connection without a namespace (never delivered: the resource is
        // namespaced) reads nothing a watch could cover.
        let mut nowhere = reading("n", "u3", 1, "s1");
        nowhere.metadata.namespace = None;
        assert!(!replans(&mut c, Event::Apply(nowhere)));
        assert_eq!(read(&c), ["s1"]);
        assert_eq!(c.read_secrets().len(), 1);
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
