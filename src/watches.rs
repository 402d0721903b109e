//! Secret watches, metadata only.
//!
//! - Output Secrets: one watch per scope, selected by the operator's
//!   `app.kubernetes.io/managed-by` label, kept in a store (managed fields
//!   stripped) so a reconcile knows whether its Secret still holds what it
//!   wrote without reading it.
//! - Source Secrets: one watch per referenced Secret, selected by name; a
//!   namespace that references more than `--source-watch-limit` Secrets gets
//!   one namespace-wide watch instead, which keeps nothing of the Secrets no
//!   connection references. Unrelated Secrets are never cached.
//!
//! Credentials read from a source Secret are kept with the resourceVersion
//! they were read at, only while a watch reports that same version, so a
//! thousand connections sharing one Secret read it once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info};

use crate::crd::TrackViaConnection;
use crate::kube_helpers::WatchBackoff;
use crate::metrics::Metrics;
use crate::trackvia::Credentials;

/// A Secret's metadata, as the watches deliver it.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// A Secret by (namespace, name).
pub type SecretKey = (String, String);

type ReadKey = (SecretKey, String, String);

/// What is known of the referenced source Secrets.
#[derive(Default)]
pub struct Sources {
    inner: Mutex<SourcesInner>,
}

#[derive(Default)]
struct SourcesInner {
    /// Referenced Secrets → the resourceVersion a watch last reported
    /// (`None` once deleted). Absent until a watch has reported it.
    seen: HashMap<SecretKey, Option<String>>,
    /// Secrets some connection reads its credentials from.
    referenced: HashSet<SecretKey>,
    /// Credentials (or why there are none) per Secret and key pair, with the
    /// resourceVersion they were read at.
    read: HashMap<ReadKey, (String, std::result::Result<Credentials, String>)>,
}

impl Sources {
    fn lock(&self) -> std::sync::MutexGuard<'_, SourcesInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Credentials read earlier, when the watch reports the Secret unchanged since.
    pub fn cached(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
    ) -> Option<std::result::Result<Credentials, String>> {
        let inner = self.lock();
        let seen = inner.seen.get(key)?.as_deref()?;
        let read_key = (
            key.clone(),
            api_key_key.to_string(),
            auth_token_key.to_string(),
        );
        match inner.read.get(&read_key) {
            Some((rv, result)) if rv == seen => Some(result.clone()),
            _ => None,
        }
    }

    /// The resourceVersion the watch last reported: a read should return at least that one.
    pub fn seen_version(&self, key: &SecretKey) -> Option<String> {
        self.lock().seen.get(key).cloned().flatten()
    }

    /// Keep what was read at `resource_version`, if the Secret is still referenced.
    pub fn remember(
        &self,
        key: &SecretKey,
        api_key_key: &str,
        auth_token_key: &str,
        resource_version: String,
        result: std::result::Result<Credentials, String>,
    ) {
        let mut inner = self.lock();
        if !inner.referenced.contains(key) {
            return;
        }
        let read_key = (
            key.clone(),
            api_key_key.to_string(),
            auth_token_key.to_string(),
        );
        inner.read.insert(read_key, (resource_version, result));
    }

    /// A watch reports `key` at `resource_version` (`None`: deleted). True when
    /// the connections reading it must look again: on the first report, and
    /// whenever the version changes.
    pub fn observe(&self, key: &SecretKey, resource_version: Option<String>) -> bool {
        let mut inner = self.lock();
        if !inner.referenced.contains(key) {
            return false;
        }
        let previous = inner.seen.insert(key.clone(), resource_version.clone());
        inner
            .read
            .retain(|(k, _, _), (rv, _)| k != key || Some(&*rv) == resource_version.as_ref());
        // On the first report every reader looks again: some may have read
        // another version before the watch started (reads are not tracked per
        // connection). Those that read this version are answered from memory.
        previous.is_none_or(|previous| previous != resource_version)
    }

    /// Is `key` read by some connection?
    pub fn is_referenced(&self, key: &SecretKey) -> bool {
        self.lock().referenced.contains(key)
    }

    /// Referenced Secrets of one namespace.
    fn referenced_in(&self, namespace: &str) -> Vec<SecretKey> {
        self.lock()
            .referenced
            .iter()
            .filter(|(ns, _)| ns == namespace)
            .cloned()
            .collect()
    }

    /// The Secrets referenced now in `scope` (a namespace, or all); everything
    /// known of other Secrets of that scope is dropped. Other scopes are left alone.
    fn set_referenced(&self, scope: Option<&str>, referenced: HashSet<SecretKey>) {
        let mut inner = self.lock();
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
        self.lock()
            .read
            .keys()
            .map(|(k, _, _)| k)
            .collect::<HashSet<_>>()
            .len()
    }
}

/// One watch of source Secrets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceWatch {
    /// One Secret, selected by name.
    Name(String, String),
    /// Every Secret of a namespace; only referenced ones are looked at.
    Namespace(String),
}

/// The watches that cover `referenced`: one per Secret, or one per namespace
/// when a namespace references more than `limit` Secrets.
pub fn plan_source_watches(referenced: &HashSet<SecretKey>, limit: usize) -> BTreeSet<SourceWatch> {
    let mut by_namespace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (ns, name) in referenced {
        by_namespace.entry(ns).or_default().push(name);
    }
    let mut plan = BTreeSet::new();
    for (ns, names) in by_namespace {
        if names.len() > limit {
            plan.insert(SourceWatch::Namespace(ns.to_string()));
        } else {
            plan.extend(
                names
                    .into_iter()
                    .map(|n| SourceWatch::Name(ns.to_string(), n.to_string())),
            );
        }
    }
    plan
}

/// The source Secrets the connections in `store` read.
pub fn referenced_sources(store: &Store<TrackViaConnection>) -> HashSet<SecretKey> {
    store
        .state()
        .iter()
        .filter_map(|tvc| {
            Some((
                tvc.namespace()?,
                tvc.spec.credentials_secret_ref.name.clone(),
            ))
        })
        .collect()
}

/// Connections that read their credentials from `key`.
pub fn readers_of(
    store: &Store<TrackViaConnection>,
    key: &SecretKey,
) -> Vec<ObjectRef<TrackViaConnection>> {
    store
        .state()
        .iter()
        .filter(|tvc| {
            tvc.namespace().as_deref() == Some(key.0.as_str())
                && tvc.spec.credentials_secret_ref.name == key.1
        })
        .map(|tvc| ObjectRef::from_obj(&**tvc))
        .collect()
}

/// Everything a source watch needs.
#[derive(Clone)]
pub struct SourceWatchContext {
    /// The namespace of the scope, or `None` for all.
    pub scope: Option<String>,
    /// Kubernetes client.
    pub client: Client,
    /// The connections of this scope.
    pub connections: Store<TrackViaConnection>,
    /// Shared knowledge of the source Secrets.
    pub sources: Arc<Sources>,
    /// Where reconciles are requested.
    pub trigger: UnboundedSender<ObjectRef<TrackViaConnection>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// Keep one watch per planned `SourceWatch`, re-planning whenever `changed` is
/// notified (a connection was added, changed or removed). Runs until dropped;
/// dropping it stops every watch.
pub async fn run_source_watches(ctx: SourceWatchContext, changed: Arc<Notify>, limit: usize) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut running: HashMap<SourceWatch, AbortHandle> = HashMap::new();
    let _ = ctx.connections.wait_until_ready().await;
    loop {
        let referenced = referenced_sources(&ctx.connections);
        let plan = plan_source_watches(&referenced, limit.max(1));
        // Forget unreferenced Secrets first, so a new watch's first report counts.
        ctx.sources.set_referenced(ctx.scope.as_deref(), referenced);
        running.retain(|watch, handle| {
            let keep = plan.contains(watch);
            if !keep {
                handle.abort();
                ctx.metrics
                    .source_watch_changed(matches!(watch, SourceWatch::Namespace(_)), -1);
                debug!(?watch, "source watch stopped");
            }
            keep
        });
        for watch in plan {
            if running.contains_key(&watch) {
                continue;
            }
            debug!(?watch, "source watch started");
            ctx.metrics
                .source_watch_changed(matches!(watch, SourceWatch::Namespace(_)), 1);
            let handle = tasks.spawn(watch_sources(ctx.clone(), watch.clone()));
            running.insert(watch, handle);
        }
        // Reap finished tasks (aborted ones) so the set does not grow.
        while tasks.try_join_next().is_some() {}
        changed.notified().await;
        // Let a burst of connection changes settle into one re-plan.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One source watch: report versions of referenced Secrets and ask for the
/// reconcile of the connections reading one that changed.
async fn watch_sources(ctx: SourceWatchContext, watch: SourceWatch) {
    let (namespace, config) = match &watch {
        SourceWatch::Name(ns, name) => (
            ns.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
        SourceWatch::Namespace(ns) => (ns.clone(), watcher::Config::default()),
    };
    let api: Api<SecretMeta> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut stream = watcher::watcher(api, config.any_semantic())
        .backoff(WatchBackoff::default())
        .boxed();
    let mut relist = Relist::default();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                debug!(namespace = %namespace, error = %e, "source Secret watch");
                continue;
            }
        };
        if let Some(listed) = relist.follow(&event) {
            let domain = match &watch {
                SourceWatch::Name(ns, name) => vec![(ns.clone(), name.clone())],
                SourceWatch::Namespace(ns) => ctx.sources.referenced_in(ns),
            };
            for key in domain {
                if !listed.contains(&key) {
                    note(&ctx, &key, None);
                }
            }
            continue;
        }
        let (meta, deleted) = match event {
            Event::InitApply(meta) | Event::Apply(meta) => (meta, false),
            Event::Delete(meta) => (meta, true),
            Event::Init | Event::InitDone => continue,
        };
        ctx.metrics.secret_watch_events.inc();
        let key = (namespace.clone(), meta.name_any());
        let version = if deleted {
            None
        } else {
            meta.resource_version()
        };
        note(&ctx, &key, version);
    }
    info!(namespace = %namespace, "source Secret watch ended");
}

/// Follows the relists of a Secret watch (`Init` … `InitDone`). A relist raises
/// no delete for a Secret deleted while the watch was away; what it listed,
/// handed over at its end, tells the caller which ones are gone.
#[derive(Default)]
pub struct Relist {
    listed: Option<HashSet<SecretKey>>,
}

impl Relist {
    /// Follow one event; at the end of a relist, the Secrets it listed.
    pub fn follow(&mut self, event: &Event<SecretMeta>) -> Option<HashSet<SecretKey>> {
        match event {
            Event::Init => self.listed = Some(HashSet::new()),
            Event::InitApply(meta) => {
                if let (Some(listed), Some(ns)) = (self.listed.as_mut(), meta.namespace()) {
                    listed.insert((ns, meta.name_any()));
                }
            }
            Event::InitDone => return Some(self.listed.take().unwrap_or_default()),
            Event::Apply(_) | Event::Delete(_) => {}
        }
        None
    }
}

fn note(ctx: &SourceWatchContext, key: &SecretKey, version: Option<String>) {
    if ctx.sources.observe(key, version) {
        for r in readers_of(&ctx.connections, key) {
            let _ = ctx.trigger.unbounded_send(r);
        }
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
        // Not reported by a watch yet: nothing is served from memory.
        s.remember(&k, "apiKey", "authToken", "5".into(), Ok(creds("one")));
        assert!(s.cached(&k, "apiKey", "authToken").is_none());
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
            Err("not found".into()),
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
        s.remember(&other, "apiKey", "authToken", "1".into(), Ok(creds("x")));
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

    #[test]
    fn a_relist_hands_over_what_it_listed_at_its_end() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        use kube::core::PartialObjectMetaExt;
        let meta = |name: &str| {
            ObjectMeta {
                name: Some(name.into()),
                namespace: Some("a".into()),
                ..ObjectMeta::default()
            }
            .into_response_partial::<Secret>()
        };
        let mut relist = Relist::default();
        assert_eq!(relist.follow(&Event::Apply(meta("before"))), None);
        assert_eq!(relist.follow(&Event::Init), None);
        assert_eq!(relist.follow(&Event::InitApply(meta("one"))), None);
        assert_eq!(relist.follow(&Event::InitApply(meta("two"))), None);
        assert_eq!(
            relist.follow(&Event::InitDone),
            Some(HashSet::from([key("a", "one"), key("a", "two")]))
        );
        // Events after the relist are not collected; a new relist starts empty.
        assert_eq!(relist.follow(&Event::Apply(meta("three"))), None);
        assert_eq!(relist.follow(&Event::Init), None);
        assert_eq!(relist.follow(&Event::InitDone), Some(HashSet::new()));
    }

    #[test]
    fn a_namespace_over_the_limit_gets_one_watch() {
        let referenced: HashSet<SecretKey> = [
            key("a", "one"),
            key("a", "two"),
            key("b", "one"),
            key("b", "two"),
            key("b", "three"),
        ]
        .into_iter()
        .collect();
        let plan = plan_source_watches(&referenced, 2);
        assert_eq!(
            plan.into_iter().collect::<Vec<_>>(),
            vec![
                SourceWatch::Name("a".into(), "one".into()),
                SourceWatch::Name("a".into(), "two".into()),
                SourceWatch::Namespace("b".into()),
            ]
        );
        assert_eq!(plan_source_watches(&HashSet::new(), 2).len(), 0);
        assert_eq!(plan_source_watches(&referenced, 3).len(), 5);
    }
}
