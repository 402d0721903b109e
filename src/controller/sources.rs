//! What is known of the source Secrets the connections read: the version each
//! watch last reported, and the credentials read at that version. Credentials
//! are kept only while a watch reports that same version (before a watch has
//! reported the Secret, for a few seconds), so a thousand connections sharing
//! one Secret read it once: passes that need it while it is being read wait
//! for that read ([`Sources::read_turn`]) instead of reading it too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use super::credentials::CredentialsError;
use crate::trackvia::Credentials;

/// A Secret by (namespace, name).
pub type SecretKey = (String, String);

/// Credentials read from a source Secret, or why there are none.
pub type CredentialsRead = std::result::Result<Credentials, CredentialsError>;

type ReadKey = (SecretKey, String, String);

/// How long credentials read before any watch reported their Secret answer
/// other passes. The first report sends every reader through again, so this
/// bounds only how stale a read can be served when no watch ever reports (one
/// the operator may not open).
pub const UNWATCHED_READ_SERVED_FOR: Duration = Duration::from_secs(10);

/// What is known of the referenced source Secrets.
#[derive(Default)]
pub struct Sources {
    inner: Mutex<SourcesInner>,
    /// The Secrets being read now, each with its turn and whether the last
    /// read made in it failed.
    reading: Mutex<HashMap<SecretKey, Arc<tokio::sync::Mutex<bool>>>>,
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

#[derive(Default)]
struct SourcesInner {
    /// Referenced Secrets → the resourceVersion a watch last reported
    /// (`None` once deleted). Absent until a watch has reported it.
    seen: HashMap<SecretKey, Option<String>>,
    /// Secrets some connection reads its credentials from.
    referenced: HashSet<SecretKey>,
    /// Credentials (or why there are none) per Secret and key pair, with the
    /// resourceVersion they were read at and when.
    read: HashMap<ReadKey, (String, Instant, CredentialsRead)>,
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

    /// Credentials read earlier, when the watch reports the Secret unchanged
    /// since, or, before any watch reported it, read in the last
    /// [`UNWATCHED_READ_SERVED_FOR`].
    pub fn cached(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
    ) -> Option<CredentialsRead> {
        self.cached_at(key, api_key_key, auth_token_key, Instant::now())
    }

    fn cached_at(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
        now: Instant,
    ) -> Option<CredentialsRead> {
        let inner = self.inner.lock();
        let read_key = (
            key.clone(),
            api_key_key.to_string(),
            auth_token_key.to_string(),
        );
        let (version, at, result) = inner.read.get(&read_key)?;
        let current = match inner.seen.get(key) {
            None => now.saturating_duration_since(*at) < UNWATCHED_READ_SERVED_FOR,
            Some(seen) => seen.as_ref() == Some(version),
        };
        current.then(|| result.clone())
    }

    /// The resourceVersion the watch last reported: a read should return at least that one.
    pub fn seen_version(&self, key: &SecretKey) -> Option<String> {
        self.inner.lock().seen.get(key).cloned().flatten()
    }

    /// Keep what was read at `resource_version` for a connection that reads
    /// it, until a re-plan of the watches finds the Secret unreferenced (the
    /// first read of a new connection's Secret can come before that re-plan).
    /// What can no longer be served goes here too: a read of a Secret no watch
    /// has reported, older than [`UNWATCHED_READ_SERVED_FOR`] (one that ended
    /// after its Secret's last reader went, which no re-plan will drop).
    pub fn remember(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
        resource_version: String,
        result: CredentialsRead,
    ) {
        let read_key = (
            key.clone(),
            api_key_key.to_string(),
            auth_token_key.to_string(),
        );
        self.remember_at(read_key, resource_version, result, Instant::now());
    }

    fn remember_at(
        &self,
        read_key: ReadKey,
        resource_version: String,
        result: CredentialsRead,
        now: Instant,
    ) {
        let mut inner = self.inner.lock();
        let SourcesInner { seen, read, .. } = &mut *inner;
        read.retain(|(k, _, _), (_, at, _)| {
            seen.contains_key(k) || now.saturating_duration_since(*at) < UNWATCHED_READ_SERVED_FOR
        });
        read.insert(read_key, (resource_version, now, result));
    }

    /// A watch reports `key` at `resource_version` (`None`: deleted). True when
    /// the connections reading it must look again: on the first report, and
    /// whenever the version changes.
    pub fn observe(&self, key: &SecretKey, resource_version: Option<String>) -> bool {
        let mut inner = self.inner.lock();
        if !inner.referenced.contains(key) {
            return false;
        }
        let previous = inner.seen.insert(key.clone(), resource_version.clone());
        inner
            .read
            .retain(|(k, _, _), (rv, _, _)| k != key || Some(&*rv) == resource_version.as_ref());
        // On the first report every reader looks again: some may have read
        // another version before the watch started (reads are not tracked per
        // connection). Those that read this version are answered from memory.
        previous.is_none_or(|previous| previous != resource_version)
    }

    /// Is `key` read by some connection?
    pub fn is_referenced(&self, key: &SecretKey) -> bool {
        self.inner.lock().referenced.contains(key)
    }

    /// Referenced Secrets of one namespace.
    pub(super) fn referenced_in(&self, namespace: &str) -> Vec<SecretKey> {
        self.inner
            .lock()
            .referenced
            .iter()
            .filter(|(ns, _)| ns == namespace)
            .cloned()
            .collect()
    }

    /// The Secrets referenced now in `scope` (a namespace, or all); everything
    /// known of other Secrets of that scope is dropped. Other scopes are left alone.
    pub(super) fn set_referenced(&self, scope: Option<&str>, referenced: HashSet<SecretKey>) {
        let mut inner = self.inner.lock();
        let in_scope = |k: &SecretKey| scope.is_none_or(|ns| k.0 == ns);
        inner
            .referenced
            .retain(|k| !in_scope(k) || referenced.contains(k));
        inner.referenced.extend(referenced);
        let SourcesInner {
            seen,
            read,
            referenced,
        } = &mut *inner;
        seen.retain(|k, _| referenced.contains(k));
        read.retain(|(k, _, _), _| referenced.contains(k));
    }

    /// Number of Secrets with credentials kept, for tests.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.inner
            .lock()
            .read
            .keys()
            .map(|(k, _, _)| k)
            .collect::<HashSet<_>>()
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> SecretKey {
        (ns.to_string(), name.to_string())
    }

    fn creds(token: &str) -> Credentials {
        Credentials {
            api_key: "k".into(),
            auth_token: token.into(),
        }
    }

    #[test]
    fn credentials_are_kept_only_while_the_watch_reports_the_same_version() {
        let s = Sources::default();
        let k = key("a", "src");
        s.set_referenced(None, HashSet::from([k.clone()]));
        // Not reported by a watch yet: served to other passes for a few seconds.
        s.remember(&k, "apiKey", "authToken", "5".into(), Ok(creds("one")));
        assert_eq!(s.cached(&k, "apiKey", "authToken"), Some(Ok(creds("one"))));
        let later = Instant::now() + UNWATCHED_READ_SERVED_FOR;
        assert!(s.cached_at(&k, "apiKey", "authToken", later).is_none());
        // The first report: readers look again, and what was read at 5 answers them.
        assert!(s.observe(&k, Some("5".into())));
        assert_eq!(s.cached(&k, "apiKey", "authToken"), Some(Ok(creds("one"))));
        // Another key pair of the same Secret is a different read.
        assert!(s.cached(&k, "key", "token").is_none());
        // The same version again (a relist) changes nothing.
        assert!(!s.observe(&k, Some("5".into())));
        assert_eq!(s.cached(&k, "apiKey", "authToken"), Some(Ok(creds("one"))));
        // A new version invalidates.
        assert!(s.observe(&k, Some("6".into())));
        assert!(s.cached(&k, "apiKey", "authToken").is_none());
        assert_eq!(s.seen_version(&k).as_deref(), Some("6"));
        // A read that raced the watch and returned the old version is not served.
        s.remember(&k, "apiKey", "authToken", "5".into(), Ok(creds("one")));
        assert!(s.cached(&k, "apiKey", "authToken").is_none());
        // Deleted: nothing served, and the change is reported once.
        s.remember(&k, "apiKey", "authToken", "6".into(), Ok(creds("two")));
        assert!(s.observe(&k, None));
        assert!(!s.observe(&k, None));
        assert!(s.cached(&k, "apiKey", "authToken").is_none());
        assert_eq!(s.seen_version(&k), None);
    }

    #[test]
    fn a_read_no_watch_reports_is_dropped_once_it_can_no_longer_be_served() {
        let s = Sources::default();
        let (gone, other) = (key("a", "gone"), key("a", "other"));
        let read = |k: &SecretKey| (k.clone(), "apiKey".to_string(), "authToken".to_string());
        // A pass's read that ended after its Secret's last reader went: nothing
        // references it, and no re-plan will come to drop it.
        s.set_referenced(None, HashSet::from([other.clone()]));
        let start = Instant::now();
        s.remember_at(read(&gone), "1".into(), Ok(creds("one")), start);
        s.remember_at(read(&other), "1".into(), Ok(creds("one")), start);
        assert_eq!(s.kept(), 2, "both served for a while");
        assert!(s.observe(&other, Some("1".into())));
        let later = start + UNWATCHED_READ_SERVED_FOR;
        s.remember_at(read(&key("a", "new")), "1".into(), Ok(creds("two")), later);
        assert!(s.cached_at(&other, "apiKey", "authToken", later).is_some());
        assert_eq!(s.kept(), 2, "the read of the Secret nobody reads is gone");
    }

    #[test]
    fn a_first_report_always_asks_readers_to_look_again() {
        let s = Sources::default();
        let (a, b, c) = (key("a", "one"), key("a", "two"), key("a", "three"));
        s.set_referenced(None, HashSet::from([a.clone(), b.clone(), c.clone()]));
        // Nobody read it yet.
        assert!(s.observe(&a, Some("1".into())));
        // Read at an older version before the watch started: not served.
        s.remember(&b, "apiKey", "authToken", "1".into(), Ok(creds("old")));
        assert!(s.observe(&b, Some("2".into())));
        assert!(s.cached(&b, "apiKey", "authToken").is_none());
        // Found missing before the watch started, created since.
        s.remember(
            &c,
            "apiKey",
            "authToken",
            String::new(),
            Err(CredentialsError::SecretNotFound {
                namespace: "a".into(),
                secret: "three".into(),
            }),
        );
        assert!(s.observe(&c, Some("3".into())));
        assert!(s.cached(&c, "apiKey", "authToken").is_none());
    }

    #[test]
    fn unreferenced_secrets_are_neither_tracked_nor_kept() {
        let s = Sources::default();
        let k = key("a", "src");
        let other = key("a", "unrelated");
        s.set_referenced(None, HashSet::from([k.clone()]));
        assert!(!s.observe(&other, Some("1".into())));
        // Read for a new connection before the watches are re-planned: kept
        // until a re-plan finds it unreferenced.
        s.remember(&other, "apiKey", "authToken", "1".into(), Ok(creds("x")));
        assert_eq!(s.kept(), 1);
        s.set_referenced(None, HashSet::from([k.clone()]));
        assert_eq!(s.kept(), 0);
        assert!(s.observe(&k, Some("2".into())));
        s.remember(&k, "apiKey", "authToken", "2".into(), Ok(creds("y")));
        assert_eq!(s.kept(), 1);
        // Another scope's references leave this one's alone.
        s.set_referenced(Some("b"), HashSet::from([key("b", "src")]));
        assert_eq!(s.kept(), 1);
        assert!(s.is_referenced(&k) && s.is_referenced(&key("b", "src")));
        // No longer referenced in its scope: forgotten.
        s.set_referenced(Some("a"), HashSet::new());
        assert_eq!(s.kept(), 0);
        assert!(s.cached(&k, "apiKey", "authToken").is_none());
        assert!(!s.is_referenced(&k));
    }

    #[tokio::test(start_paused = true)]
    async fn passes_read_a_secret_one_at_a_time() {
        let s = Sources::default();
        let (k, other) = (key("a", "src"), key("a", "other"));
        let mut first = s.read_turn(&k).await;
        assert!(!first.after_an_unshared_read());
        // Another Secret is read at the same time.
        drop(s.read_turn(&other).await);
        let second = s.read_turn(&k);
        tokio::pin!(second);
        let waited = tokio::time::timeout(Duration::from_secs(1), &mut second).await;
        assert!(
            waited.is_err(),
            "the second read of a Secret waits for the first"
        );
        assert_eq!(s.being_read(), 1);
        // The first read fails: the next pass learns it, and does not hold the others up.
        first.not_shared();
        drop(first);
        let mut second = second.await;
        assert!(second.after_an_unshared_read());
        second.release();
        let third = tokio::time::timeout(Duration::from_secs(1), s.read_turn(&k)).await;
        assert!(
            third.is_ok(),
            "after a failure, waiting passes read at once"
        );
        drop((second, third));
        assert_eq!(s.being_read(), 0, "nothing kept once nobody reads");
        // A fresh turn does not carry the failure over.
        assert!(!s.read_turn(&k).await.after_an_unshared_read());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_cancelled_while_waiting_leaves_nothing_behind() {
        let s = Sources::default();
        let k = key("a", "src");
        let first = s.read_turn(&k).await;
        let mut waiting = Box::pin(s.read_turn(&k));
        let waited = tokio::time::timeout(Duration::from_secs(1), &mut waiting).await;
        assert!(waited.is_err());
        // Its turn comes, but the pass is cancelled before it takes it.
        drop(first);
        drop(waiting);
        // The next turn given back, of any Secret, clears what nobody waits for.
        drop(s.read_turn(&key("a", "other")).await);
        assert_eq!(s.being_read(), 0);
    }
}
