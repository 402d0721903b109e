//! Which events of the connection watch start a pass: a connection new under
//! its name (a new uid), a new spec (a new `metadata.generation`) or a new
//! `trackvia.io/verify-requested-at` value; not the operator's own status
//! writes. One 8-byte hash and the name of the Secret read per connection under
//! a 48-byte [`Key`], nothing on the heap of its own for names of up to 24
//! bytes (but for the table of readers of a Secret only it reads); a
//! connection's entry goes with its deletion, and a relist keeps only the
//! connections it lists. The connections that go are reported, so that the
//! operator's other tables forget them too.
//!
//! The connections reading each source Secret are indexed here as the events
//! arrive (a connection's name once more, in its Secret's set of readers), so
//! the source watches are planned from the distinct Secrets (a few, for
//! thousands of connections) rather than from a walk over every connection, and
//! planned again only when that set of Secrets changes; and a Secret's change
//! reaches its readers without a walk either ([`SpecChanges::readers_of`]): with
//! a Secret per connection, a walk per Secret reported would cost the square of
//! the connections at start-up.

use std::collections::{HashMap, HashSet};

use compact_str::CompactString;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::key::Key;
use super::plan::stable_hash;
use super::sources::SecretKey;
use crate::crd::{TrackViaConnection, VERIFY_REQUESTED_ANNOTATION};
use crate::tables::GiveBack;

/// What each connection's last event carried that a pass depends on, and the
/// Secrets the connections read.
#[derive(Debug, Default)]
pub struct SpecChanges {
    seen: HashMap<Key, Seen>,
    /// What a relist in progress has listed.
    relisting: Option<HashMap<Key, Seen>>,
    /// The connections (by name) reading each source Secret (namespace, name),
    /// as `seen` has them (not a relist in progress). Never an empty set.
    readers: HashMap<(CompactString, CompactString), HashSet<CompactString>>,
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
                    self.seen.give_back();
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

    /// The connections reading `secret` (namespace, name: theirs is the
    /// Secret's namespace), as the last events had them.
    pub fn readers_of(&self, secret: &SecretKey) -> Vec<Key> {
        let (namespace, name) = secret;
        let secret = (namespace.into(), name.into());
        self.readers
            .get(&secret)
            .into_iter()
            .flatten()
            .map(|reader| Key::new(Some(namespace), reader))
            .collect()
    }

    /// `listed` replaces what was seen: the readers are indexed again, and the
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
                self.readers
                    .entry(secret)
                    .or_default()
                    .insert(key.name().into());
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
        let readers = self.readers.entry(secret).or_default();
        readers.insert(key.name().into()) && readers.len() == 1
    }

    /// One connection fewer reads `reads` in `key`'s namespace; whether it was the last.
    fn one_fewer(&mut self, key: &Key, reads: &CompactString) -> bool {
        let Some(secret) = source(key, reads) else {
            return false;
        };
        let Some(readers) = self.readers.get_mut(&secret) else {
            return false;
        };
        if !readers.remove(key.name()) {
            return false;
        }
        if !readers.is_empty() {
            readers.give_back();
            return false;
        }
        self.readers.remove(&secret);
        self.readers.give_back();
        true
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
mod tests;
