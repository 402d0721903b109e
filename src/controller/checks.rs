//! When each connection is looked at again without a change to wake it: the
//! instant its last pass asked for (the next verification, a retry, a
//! restart's debounce), one per connection.
//!
//! kube-runtime's controller could keep these (a pass returning
//! `Action::requeue`), but its scheduler holds two copies of the object
//! reference per connection, each with four texts on the heap: about 0.6 KB per
//! connection, 5.8 MB at 10,000. [`Checks`] holds a [`Key`] and an instant
//! twice (by connection and by instant), and hands a due connection to its
//! scope's controller as a trigger. A pass's answer replaces the one before it:
//! the latest pass knows best. A pass that fails is retried by the controller
//! (`error_policy`, a few seconds), which keeps those few in its scheduler; the
//! check pending from before stays.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::key::Key;
use crate::crd::TrackViaConnection;
use crate::tables::GiveBack;

/// The pending checks, and where due ones are sent.
#[derive(Default)]
pub struct Checks {
    table: Mutex<Table>,
    /// Told when the earliest check moved earlier.
    sooner: Notify,
    subscribers: Mutex<Vec<Subscriber>>,
}

/// A scope (a namespace, or all) and where its due checks go.
type Subscriber = (
    Option<String>,
    UnboundedSender<ObjectRef<TrackViaConnection>>,
);

/// The pure bookkeeping: one instant per connection, in order.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_key: HashMap<Key, Instant>,
    by_instant: BTreeSet<(Instant, Key)>,
}

impl Table {
    /// Look at `key` again at `at`, instead of when asked before. True when
    /// this is now the earliest check.
    pub fn set(&mut self, key: Key, at: Instant) -> bool {
        if let Some(before) = self.by_key.insert(key.clone(), at) {
            self.by_instant.remove(&(before, key.clone()));
        }
        self.by_instant.insert((at, key));
        self.earliest() == Some(at)
    }

    /// No check for `key`.
    pub fn forget(&mut self, key: &Key) {
        if let Some(before) = self.by_key.remove(key) {
            self.by_instant.remove(&(before, key.clone()));
            self.by_key.give_back();
        }
    }

    /// The instant of the earliest check.
    pub fn earliest(&self) -> Option<Instant> {
        self.by_instant.first().map(|(at, _)| *at)
    }

    /// Take every check due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<Key> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_instant.first()
            && *at <= now
        {
            if let Some((_, key)) = self.by_instant.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        self.by_key.give_back();
        due
    }

    /// When `key` is checked next.
    pub fn at(&self, key: &Key) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// Connections with a check pending.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// No check pending.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Later than any check a pass asks for (a century).
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Checks {
    /// Look at `key` again `after` from now (replacing its pending check), or
    /// only on a change when `after` is `None`.
    pub fn after(&self, key: Key, after: Option<Duration>) {
        let mut table = self.table.lock();
        match after {
            Some(d) => {
                // Later than a century: as good as never (and never past what an
                // instant can hold).
                if table.set(key, Instant::now() + d.min(NEVER)) {
                    self.sooner.notify_one();
                }
            }
            None => table.forget(&key),
        }
    }

    /// No check for `key` (its connection is gone).
    pub fn forget(&self, key: &Key) {
        self.table.lock().forget(key);
    }

    /// When `key` is checked next.
    pub fn at(&self, key: &Key) -> Option<Instant> {
        self.table.lock().at(key)
    }

    /// Connections with a check pending.
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    /// Whether no check is pending.
    pub fn is_empty(&self) -> bool {
        self.table.lock().is_empty()
    }

    /// The due connections of `scope` (a namespace, or all).
    pub fn due(&self, scope: Option<&str>) -> UnboundedReceiver<ObjectRef<TrackViaConnection>> {
        let (tx, rx) = unbounded();
        self.subscribers
            .lock()
            .push((scope.map(str::to_string), tx));
        rx
    }

    /// Send each check to its scope when due; runs until dropped.
    pub async fn run(&self) {
        loop {
            let earliest = self.table.lock().earliest();
            match earliest {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.sooner.notified() => continue,
                    }
                }
                None => {
                    self.sooner.notified().await;
                    continue;
                }
            }
            let due = self.table.lock().take_due(Instant::now());
            let subscribers = self.subscribers.lock();
            for key in due {
                if let Some((_, tx)) = subscribers
                    .iter()
                    .find(|(scope, _)| scope.as_deref().is_none_or(|s| s == key.namespace()))
                {
                    let _ = tx.unbounded_send(key.to_ref());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
