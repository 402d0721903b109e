//! What is known of the source Secrets the connections read: the version each
//! watch last reported, and the credentials read at that version. Credentials
//! are kept only while a watch reports that same version (before a watch has
//! reported the Secret, for a few seconds), so a thousand connections sharing
//! one Secret read it once: passes that need it while it is being read wait
//! for that read ([`Sources::read_turn`]) instead of reading it too.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use super::credentials::CredentialsError;
use crate::tables::GiveBack;
use crate::trackvia::Credentials;

/// A Secret by (namespace, name).
pub type SecretKey = (String, String);

/// Credentials read from a source Secret, or why there are none.
pub type CredentialsRead = std::result::Result<Credentials, CredentialsError>;

/// The keys of the API key and auth token in a Secret.
type KeyPair = (String, String);

/// Credentials read with one key pair: the resourceVersion they were read at,
/// when, and what was found.
type Read = (String, Instant, CredentialsRead);

/// How long credentials read before any watch reported their Secret answer
/// other passes. The first report sends every reader through again, so this
/// bounds only how stale a read can be served when no watch ever reports (one
/// the operator may not open).
pub const UNWATCHED_READ_SERVED_FOR: Duration = Duration::from_secs(10);

/// How long after the watches are first planned (or, before that, after this
/// process started leading) a pass that may go by its status's record waits
/// for the first report of its Secret rather than read it ([`Sources::reported`]).
pub const FIRST_REPORT_WAIT: Duration = Duration::from_secs(10);

/// What is known of the referenced source Secrets.
pub struct Sources {
    inner: Mutex<SourcesInner>,
    /// The Secrets being read now, each with its turn and whether the last
    /// read made in it failed.
    reading: Mutex<HashMap<SecretKey, Arc<tokio::sync::Mutex<bool>>>>,
    /// Woken by every report that sends readers through, and by the first plan.
    reports: tokio::sync::Notify,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            inner: Mutex::new(SourcesInner {
                seen: HashMap::new(),
                referenced: HashMap::new(),
                plans: 0,
                read: HashMap::new(),
                swept_at: None,
                since: Instant::now(),
                planned: false,
            }),
            reading: Mutex::default(),
            reports: tokio::sync::Notify::new(),
        }
    }
}

/// One pass's turn to read a source Secret from the API server; the next waits
/// until it is dropped.
pub struct ReadTurn<'a> {
    sources: &'a Sources,
    turn: Option<OwnedMutexGuard<bool>>,
}

impl ReadTurn<'_> {
    /// Whether the read made in the turn before this one could not answer the
    /// others (it failed, or what it found is not served from memory: a
    /// Secret deleted, or newer than its watch reported). Then each waiting
    /// pass reads for itself, all at once, rather than one after the other.
    pub fn after_an_unshared_read(&self) -> bool {
        self.turn.as_deref().copied().unwrap_or(false)
    }

    /// The read made in this turn cannot answer the passes waiting for it.
    pub fn not_shared(&mut self) {
        if let Some(turn) = self.turn.as_mut() {
            **turn = true;
        }
    }

    /// Let the passes waiting for this Secret go on.
    pub fn release(&mut self) {
        drop(self.turn.take());
    }
}

impl Drop for ReadTurn<'_> {
    fn drop(&mut self) {
        self.release();
        // Secrets nobody reads or waits for go (this one, and any whose
        // waiting pass was cancelled before its turn).
        self.sources
            .reading
            .lock()
            .retain(|_, turn| Arc::strong_count(turn) > 1);
    }
}

struct SourcesInner {
    /// Referenced Secrets → the resourceVersion a watch last reported
    /// (`None` once deleted). Absent until a watch has reported it.
    seen: HashMap<SecretKey, Option<String>>,
    /// Secrets some connection reads its credentials from, each with the plan
    /// since which it has been read without a break.
    referenced: HashMap<SecretKey, u64>,
    /// Plans made so far ([`Sources::set_referenced`]).
    plans: u64,
    /// Credentials (or why there are none) per Secret, then per key pair: a
    /// watch's report touches only its Secret's reads. Never an empty map.
    read: HashMap<SecretKey, HashMap<KeyPair, Read>>,
    /// When `read` was last swept of what can no longer be served.
    swept_at: Option<Instant>,
    /// When this started, then when a Secret was first referenced: the first
    /// reports are waited for until [`FIRST_REPORT_WAIT`] past it.
    since: Instant,
    /// Whether a Secret was ever referenced.
    planned: bool,
}

impl Sources {
    /// Wait for the turn to read `key`: passes wanting the same Secret read it
    /// one at a time, so those that waited find the first one's read in
    /// [`Sources::cached`].
    pub async fn read_turn(&self, key: &SecretKey) -> ReadTurn<'_> {
        let turn = self.reading.lock().entry(key.clone()).or_default().clone();
        ReadTurn {
            sources: self,
            turn: Some(turn.lock_owned().await),
        }
    }

    /// Secrets being read or waited for, for tests.
    #[cfg(test)]
    fn being_read(&self) -> usize {
        self.reading.lock().len()
    }

    /// Credentials read earlier, with the resourceVersion they were read at,
    /// when the watch reports the Secret unchanged since, or, before any watch
    /// reported it, read in the last [`UNWATCHED_READ_SERVED_FOR`].
    pub fn cached(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
    ) -> Option<(String, CredentialsRead)> {
        self.cached_at(key, api_key_key, auth_token_key, Instant::now())
    }

    fn cached_at(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
        now: Instant,
    ) -> Option<(String, CredentialsRead)> {
        let inner = self.inner.lock();
        let pair = (api_key_key.to_string(), auth_token_key.to_string());
        let (version, at, result) = inner.read.get(key)?.get(&pair)?;
        let current = match inner.seen.get(key) {
            None => now.saturating_duration_since(*at) < UNWATCHED_READ_SERVED_FOR,
            Some(seen) => seen.as_ref() == Some(version),
        };
        current.then(|| (version.clone(), result.clone()))
    }

    /// What the watch reports of `key`: its version (`Some(None)`: deleted).
    /// Before its first report, in the first [`FIRST_REPORT_WAIT`] of the
    /// watches, this waits for it; `None` when none came.
    pub async fn reported(&self, key: &SecretKey) -> Option<Option<String>> {
        loop {
            let report = self.reports.notified();
            tokio::pin!(report);
            report.as_mut().enable();
            let until = {
                let inner = self.inner.lock();
                if let Some(seen) = inner.seen.get(key) {
                    return Some(seen.clone());
                }
                inner.since + FIRST_REPORT_WAIT
            };
            let until = tokio::time::Instant::from_std(until);
            if tokio::time::timeout_at(until, report).await.is_err() {
                return None;
            }
        }
    }

    /// The resourceVersion the watch last reported: a read should return at least that one.
    pub fn seen_version(&self, key: &SecretKey) -> Option<String> {
        self.inner.lock().seen.get(key).cloned().flatten()
    }

    /// Keep what was read at `resource_version` for a connection that reads
    /// it, until a re-plan of the watches finds the Secret unreferenced (the
    /// first read of a new connection's Secret can come before that re-plan).
    /// What can no longer be served goes here too, swept at most once per
    /// [`UNWATCHED_READ_SERVED_FOR`]: a read of a Secret no watch has reported,
    /// older than that (one that ended after its Secret's last reader went,
    /// which no re-plan will drop).
    pub fn remember(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
        resource_version: String,
        result: CredentialsRead,
    ) {
        let pair = (api_key_key.to_string(), auth_token_key.to_string());
        self.remember_at(key, pair, resource_version, result, Instant::now());
    }

    fn remember_at(
        &self,
        key: &SecretKey,
        pair: KeyPair,
        resource_version: String,
        result: CredentialsRead,
        now: Instant,
    ) {
        let mut inner = self.inner.lock();
        let SourcesInner {
            seen,
            read,
            swept_at,
            ..
        } = &mut *inner;
        // At most one sweep per period: with a Secret per connection, a sweep
        // per read would cost the square of the connections at start-up.
        let since = |at: Instant| now.saturating_duration_since(at);
        if swept_at.is_none_or(|at| since(at) >= UNWATCHED_READ_SERVED_FOR) {
            read.retain(|k, reads| {
                seen.contains_key(k) || {
                    reads.retain(|_, (_, at, _)| since(*at) < UNWATCHED_READ_SERVED_FOR);
                    !reads.is_empty()
                }
            });
            read.give_back();
            *swept_at = Some(now);
        }
        read.entry(key.clone())
            .or_default()
            .insert(pair, (resource_version, now, result));
    }

    /// A watch reports `key` at `resource_version` (`None`: deleted). True when
    /// the connections reading it must look again: on the first report, and
    /// whenever the version changes.
    pub fn observe(&self, key: &SecretKey, resource_version: Option<String>) -> bool {
        self.observe_if(key, resource_version, None)
    }

    /// [`Sources::observe`], unless a watch has reported `key` already: a
    /// first report from a read of the Secret's metadata, for a Secret a
    /// watch listed before any connection read it (a later report is newer).
    /// `since` is the plan that made it read ([`Sources::set_referenced`]): a
    /// read made before it stopped being read and was read again may be older
    /// than a change no watch reported meanwhile, and is dropped.
    pub fn observe_first(
        &self,
        key: &SecretKey,
        since: u64,
        resource_version: Option<String>,
    ) -> bool {
        self.observe_if(key, resource_version, Some(since))
    }

    fn observe_if(
        &self,
        key: &SecretKey,
        resource_version: Option<String>,
        first_since: Option<u64>,
    ) -> bool {
        let mut inner = self.inner.lock();
        let Some(&read_since) = inner.referenced.get(key) else {
            return false;
        };
        if first_since.is_some_and(|since| since != read_since || inner.seen.contains_key(key)) {
            return false;
        }
        let previous = inner.seen.insert(key.clone(), resource_version.clone());
        if let Some(reads) = inner.read.get_mut(key) {
            reads.retain(|_, (rv, _, _)| Some(&*rv) == resource_version.as_ref());
            if reads.is_empty() {
                inner.read.remove(key);
                inner.read.give_back();
            }
        }
        // On the first report every reader looks again: some may have read
        // another version before the watch started (reads are not tracked per
        // connection). Those that read this version are answered from memory.
        let news = previous.is_none_or(|previous| previous != resource_version);
        drop(inner);
        if news {
            self.reports.notify_waiters();
        }
        news
    }

    /// Is `key` read by some connection?
    pub fn is_referenced(&self, key: &SecretKey) -> bool {
        self.inner.lock().referenced.contains_key(key)
    }

    /// Referenced Secrets of one namespace, or of all.
    pub(super) fn referenced_in(&self, namespace: Option<&str>) -> Vec<SecretKey> {
        self.inner
            .lock()
            .referenced
            .keys()
            .filter(|(ns, _)| namespace.is_none_or(|namespace| ns == namespace))
            .cloned()
            .collect()
    }

    /// The Secrets referenced now in `scope` (a namespace, or all); everything
    /// known of other Secrets of that scope is dropped. Other scopes are left alone.
    /// Returns the Secrets referenced now and not before, and this plan's number.
    pub(super) fn set_referenced(
        &self,
        scope: Option<&str>,
        referenced: HashSet<SecretKey>,
    ) -> (Vec<SecretKey>, u64) {
        let mut inner = self.inner.lock();
        if !inner.planned && !referenced.is_empty() {
            // The watches start now: their first reports are waited for from here.
            (inner.planned, inner.since) = (true, Instant::now());
            self.reports.notify_waiters();
        }
        let in_scope = |k: &SecretKey| scope.is_none_or(|ns| k.0 == ns);
        inner
            .referenced
            .retain(|k, _| !in_scope(k) || referenced.contains(k));
        inner.plans += 1;
        let plan = inner.plans;
        let mut new = Vec::new();
        for key in referenced {
            if let Entry::Vacant(entry) = inner.referenced.entry(key) {
                new.push(entry.key().clone());
                entry.insert(plan);
            }
        }
        let SourcesInner {
            seen,
            read,
            referenced,
            ..
        } = &mut *inner;
        seen.retain(|k, _| referenced.contains_key(k));
        read.retain(|k, _| referenced.contains_key(k));
        referenced.give_back();
        seen.give_back();
        read.give_back();
        (new, plan)
    }

    /// Number of Secrets with credentials kept, for tests.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.inner.lock().read.len()
    }
}

#[cfg(test)]
mod tests;
