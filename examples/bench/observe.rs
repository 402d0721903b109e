//! Watching the outcome: connections Ready and output Secrets published, as they happen.

use super::*;

// ---------------------------------------------------------------------------------------------
// Watching the outcome
// ---------------------------------------------------------------------------------------------

/// What the benchmark's watches have seen, with the instant each state was first seen.
#[derive(Default)]
pub(crate) struct Observed {
    pub(crate) connections_synced: bool,
    pub(crate) secrets_synced: bool,
    pub(crate) ready_since: HashMap<String, Instant>,
    pub(crate) next_verification: HashMap<String, String>,
    pub(crate) connection_rv: HashMap<String, String>,
    pub(crate) connection_changes: u64,
    pub(crate) token: HashMap<String, (String, Instant)>,
    pub(crate) secret_rv: HashMap<String, String>,
    pub(crate) secret_changes: u64,
}

impl Observed {
    pub(crate) fn connection(&mut self, tvc: &TrackViaConnection, at: Instant) {
        let name = tvc.name_any();
        let rv = tvc.resource_version().unwrap_or_default();
        if self.connection_rv.insert(name.clone(), rv.clone()) != Some(rv) {
            self.connection_changes += 1;
        }
        let status = tvc.status.as_ref();
        let ready = status
            .and_then(|s| s.condition("Ready"))
            .is_some_and(|c| c.status == "True" && c.reason == "Verified");
        if ready {
            self.ready_since.entry(name.clone()).or_insert(at);
        } else {
            self.ready_since.remove(&name);
        }
        if let Some(next) = status.and_then(|s| s.next_verification_time.as_deref()) {
            self.next_verification.insert(name, next.into());
        }
    }

    /// A connection is gone: forget what was seen of it.
    pub(crate) fn connection_deleted(&mut self, tvc: &TrackViaConnection) {
        let name = tvc.name_any();
        self.connection_rv.remove(&name);
        self.ready_since.remove(&name);
        self.next_verification.remove(&name);
    }

    /// A relist of the connections is done: forget those it did not list (deleted while
    /// the watch was away, which raises no event).
    pub(crate) fn connections_listed(&mut self, listed: &HashSet<String>) {
        self.connection_rv.retain(|name, _| listed.contains(name));
        self.ready_since.retain(|name, _| listed.contains(name));
        self.next_verification
            .retain(|name, _| listed.contains(name));
        self.connections_synced = true;
    }

    /// Both watches have listed their objects once.
    pub(crate) fn listed(&self) -> bool {
        self.connections_synced && self.secrets_synced
    }

    /// A relist of the output Secrets is done: forget those it did not list.
    pub(crate) fn secrets_listed(&mut self, listed: &HashSet<String>) {
        self.secret_rv.retain(|name, _| listed.contains(name));
        self.token.retain(|name, _| listed.contains(name));
        self.secrets_synced = true;
    }

    /// An output Secret is gone: forget what was seen of it.
    pub(crate) fn secret_deleted(&mut self, secret: &Secret) {
        let name = secret.name_any();
        self.secret_rv.remove(&name);
        self.token.remove(&name);
    }

    pub(crate) fn secret(&mut self, secret: &Secret, at: Instant) {
        let name = secret.name_any();
        let rv = secret.resource_version().unwrap_or_default();
        if self.secret_rv.insert(name.clone(), rv.clone()) != Some(rv) {
            self.secret_changes += 1;
        }
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get("authToken"))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default();
        let changed = self.token.get(&name).is_none_or(|(t, _)| *t != token);
        if changed {
            self.token.insert(name, (token, at));
        }
    }
}

pub(crate) type Shared = Arc<Mutex<Observed>>;

pub(crate) fn spawn_watches(
    client: &Client,
    ns: &str,
    shared: Shared,
) -> Vec<tokio::task::JoinHandle<()>> {
    let connections: Api<TrackViaConnection> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s1 = shared.clone();
    let a = tokio::spawn(async move {
        let mut events = watcher(connections, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listed = HashSet::new();
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(o)) => {
                    listed.insert(o.name_any());
                    s1.lock().connection(&o, at)
                }
                Ok(watcher::Event::Apply(o)) => s1.lock().connection(&o, at),
                Ok(watcher::Event::Delete(o)) => s1.lock().connection_deleted(&o),
                Ok(watcher::Event::InitDone) => s1.lock().connections_listed(&listed),
                Err(e) => eprintln!("bench: watching connections: {e}"),
            }
        }
    });
    let s2 = shared;
    let b = tokio::spawn(async move {
        let config = watcher::Config::default().labels(MANAGED_SELECTOR);
        let mut events = watcher(secrets, config).default_backoff().boxed();
        let mut listed = HashSet::new();
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(o)) => {
                    listed.insert(o.name_any());
                    s2.lock().secret(&o, at)
                }
                Ok(watcher::Event::Apply(o)) => s2.lock().secret(&o, at),
                Ok(watcher::Event::Delete(o)) => s2.lock().secret_deleted(&o),
                Ok(watcher::Event::InitDone) => s2.lock().secrets_listed(&listed),
                Err(e) => eprintln!("bench: watching output Secrets: {e}"),
            }
        }
    });
    vec![a, b]
}

/// The benchmark's watches over a namespace without an operator (a floor's), once they have
/// listed it: the floor's writes are watched as the operator's are, which costs the API
/// server the same. They stop when this is dropped.
pub(crate) struct Observers(Vec<tokio::task::JoinHandle<()>>);

impl Observers {
    pub(crate) async fn listed(client: &Client, ns: &str, timeout: Duration) -> BenchResult<Self> {
        let shared: Shared = Arc::default();
        let observers = Observers(spawn_watches(client, ns, shared.clone()));
        let deadline = Instant::now() + timeout;
        loop {
            let listed = shared.lock().listed();
            if listed {
                return Ok(observers);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "watching {ns}: not listed after {} s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Observers {
    fn drop(&mut self) {
        for watch in &self.0 {
            watch.abort();
        }
    }
}

/// How often [`wait_until`] looks at what the watches have seen.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Poll `check` until it returns `Ok`; its `Err` describes the progress for the timeout message.
pub(crate) async fn wait_until<T>(
    shared: &Shared,
    timeout: Duration,
    what: &str,
    operator: &mut OperatorProcess,
    check: impl Fn(&Observed) -> Result<T, String>,
) -> BenchResult<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let progress = match check(&shared.lock()) {
            Ok(v) => return Ok(v),
            Err(p) => p,
        };
        if !operator.is_running() {
            return Err(format!(
                "the operator exited while waiting for {what} ({progress}); last log lines:\n{}",
                log_tail(operator, 40)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {} s waiting for {what}: {progress}; last operator log lines:\n{}",
                timeout.as_secs(),
                log_tail(operator, 40)
            ));
        }
        // The times come from the instants the watches saw each change, not from when a look
        // finds them: looking less often costs them no precision (CPU figures read after a
        // wait include up to one interval more), and looks over 10,000 connections every
        // 20 ms took CPU-seconds per run from the cores the API server needs.
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

pub(crate) fn log_tail(operator: &OperatorProcess, n: usize) -> String {
    let logs = operator.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
