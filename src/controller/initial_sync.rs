//! When the initial sync is done: every connection listed when the caches
//! synced has been reconciled once (successfully or not). After a restart this
//! is the moment the operator has caught up; it is logged once ("initial sync
//! done: N connections") and exported as `trackvia_initial_sync_done`,
//! `trackvia_initial_sync_connections` and `trackvia_initial_sync_seconds`.
//!
//! [`SyncTracker`] is the pure bookkeeping; [`InitialSync`] adds the clock,
//! the metrics and the log line.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tracing::info;

use super::key::Key;
use crate::metrics::Metrics;

/// Which listed connections are still to be reconciled, over `scopes` scopes.
#[derive(Debug)]
pub struct SyncTracker {
    scopes_left: usize,
    /// Reconciled before their scope was listed.
    early: HashSet<Key>,
    pending: HashSet<Key>,
    listed: usize,
    done: bool,
}

impl SyncTracker {
    /// A tracker waiting for `scopes` listings.
    pub fn new(scopes: usize) -> SyncTracker {
        SyncTracker {
            scopes_left: scopes,
            early: HashSet::new(),
            pending: HashSet::new(),
            listed: 0,
            done: false,
        }
    }

    /// One scope's cache synced holding `listed`. `Some(total listed)` when
    /// this completes the initial sync.
    pub fn listed(&mut self, listed: impl IntoIterator<Item = Key>) -> Option<usize> {
        if self.done {
            return None;
        }
        self.scopes_left = self.scopes_left.saturating_sub(1);
        for key in listed {
            self.listed += 1;
            if !self.early.contains(&key) {
                self.pending.insert(key);
            }
        }
        if self.scopes_left == 0 {
            // Read only while a scope is still to be listed.
            self.early = HashSet::new();
        }
        self.finish()
    }

    /// `key` was reconciled (or found deleted). `Some(total listed)` when this
    /// completes the initial sync.
    pub fn reconciled(&mut self, key: Key) -> Option<usize> {
        if self.done {
            return None;
        }
        if self.scopes_left > 0 {
            self.early.insert(key.clone());
        }
        self.pending.remove(&key);
        self.finish()
    }

    /// Done once, when every scope is listed and nothing listed is pending.
    fn finish(&mut self) -> Option<usize> {
        if self.done || self.scopes_left > 0 || !self.pending.is_empty() {
            return None;
        }
        self.done = true;
        // Emptied, but still as large as at the start: give the table back (`early`
        // went when the last scope was listed).
        self.pending = HashSet::new();
        Some(self.listed)
    }
}

/// The tracker of the running process, shared by the scopes' controllers.
#[derive(Clone, Debug)]
pub struct InitialSync {
    tracker: Arc<Mutex<SyncTracker>>,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl InitialSync {
    /// Start the clock for `scopes` scopes.
    pub fn new(scopes: usize, metrics: Arc<Metrics>) -> InitialSync {
        InitialSync {
            tracker: Arc::new(Mutex::new(SyncTracker::new(scopes))),
            started: Instant::now(),
            metrics,
        }
    }

    /// One scope's cache synced holding `listed`.
    pub fn listed(&self, listed: impl IntoIterator<Item = Key>) {
        let done = self.tracker.lock().listed(listed);
        self.report(done);
    }

    /// `key` was reconciled.
    pub fn reconciled(&self, key: Key) {
        let done = self.tracker.lock().reconciled(key);
        self.report(done);
    }

    fn report(&self, done: Option<usize>) {
        let Some(connections) = done else {
            return;
        };
        let took = self.started.elapsed().as_secs_f64();
        self.metrics
            .initial_sync_connections
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
        self.metrics.initial_sync_seconds.set(took);
        self.metrics.initial_sync_done.set(1);
        info!(
            connections,
            seconds = took,
            "initial sync done: {connections} connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key::new(Some("ns"), name)
    }

    #[test]
    fn done_once_every_listed_connection_is_reconciled() {
        let mut t = SyncTracker::new(1);
        assert_eq!(t.reconciled(key("a")), None, "not listed yet");
        assert_eq!(t.listed([key("a"), key("b"), key("c")]), None);
        assert_eq!(t.reconciled(key("b")), None);
        assert_eq!(t.reconciled(key("b")), None, "twice is once");
        assert_eq!(t.reconciled(key("c")), Some(3));
        assert_eq!(t.reconciled(key("d")), None, "reported once");
    }

    #[test]
    fn every_scope_must_be_listed() {
        let mut t = SyncTracker::new(2);
        assert_eq!(t.listed([key("a")]), None);
        assert_eq!(
            t.reconciled(key("a")),
            None,
            "the other scope is not listed"
        );
        assert_eq!(t.listed(Vec::new()), Some(1));
    }

    #[test]
    fn done_gives_its_tables_back() {
        let mut t = SyncTracker::new(2);
        let names: Vec<String> = (0..1_000).map(|i| format!("conn-{i}")).collect();
        // Reconciled before the second scope is listed.
        for name in &names[..500] {
            assert_eq!(t.reconciled(key(name)), None);
        }
        assert_eq!(t.listed(names[..500].iter().map(|n| key(n))), None);
        assert!(t.early.capacity() > 0);
        assert_eq!(t.listed(names[500..].iter().map(|n| key(n))), None);
        assert_eq!(t.early.capacity(), 0, "not read once every scope is listed");
        for name in &names[500..999] {
            assert_eq!(t.reconciled(key(name)), None);
        }
        assert_eq!(t.reconciled(key(&names[999])), Some(1_000));
        assert_eq!(t.pending.capacity(), 0);
    }

    #[test]
    fn nothing_to_reconcile_is_done_at_the_listing() {
        assert_eq!(SyncTracker::new(1).listed(Vec::new()), Some(0));
    }
}
