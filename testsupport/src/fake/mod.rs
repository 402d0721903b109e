//! A fake TrackVia API over HTTPS, for tests of the operator's verification calls.
//!
//! It serves `GET /openapi/views` and `GET /openapi/apps` the way TrackVia does: the API key in
//! the `user_key` query parameter, the token in `Authorization: Bearer` or in the
//! `access_token` query parameter, an optional numeric `account-id` header. What each
//! credential gets back is set per test with [`FakeTrackVia::set`]. Every request is recorded.
//!
//! The server has its own certificate authority; point the operator at [`FakeTrackVia::ca_file`]
//! (`--extra-ca-file`) and at [`FakeTrackVia::host`].

mod behavior;
mod server;
mod tls;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use behavior::{Behavior, UnknownBehavior};

use behavior::{Action, Endpoint};

/// Settings for [`FakeTrackVia::start_with`]. `FakeOptions::default()` is what
/// [`FakeTrackVia::start`] uses.
#[derive(Clone, Debug, Default)]
pub struct FakeOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where to write the CA certificate (PEM); `None` writes it into a temporary directory
    /// owned by the server and removed with it.
    pub ca_path: Option<PathBuf>,
    /// Names added to the server certificate besides `localhost` and `127.0.0.1`.
    pub extra_sans: Vec<String>,
    /// Answer for a known API key with a token that has no behaviour configured (for the
    /// requested account). `None`: 401 `Invalid access token`, as TrackVia does.
    pub default_behavior: Option<Behavior>,
    /// Answer for an API key that is not known. `None`: 401 with the plain-text body
    /// `Authentication failed`. (The real body is not documented.)
    pub unknown_key_behavior: Option<Behavior>,
    /// Answer for a request without `user_key`. `None`: same as an unknown key.
    pub missing_key_behavior: Option<Behavior>,
    /// Answer for a known API key without any token. `None`: 401, OAuth shape
    /// (`Full authentication is required ...`).
    pub missing_token_behavior: Option<Behavior>,
    /// When set, a request whose `api-version` header differs gets 410 Gone. A request without
    /// the header is always served.
    pub api_version: Option<String>,
}

/// Where the token of a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    BearerHeader,
    /// `access_token=<token>` in the query string.
    QueryParameter,
}

/// One request as the fake received it, with what it resolved to.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// All headers in order, names in lower case, values decoded lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// When the request head was received.
    pub received_at: SystemTime,
    /// The `user_key` query parameter.
    pub api_key: Option<String>,
    /// The token, from the header when both are present.
    pub token: Option<String>,
    /// Where [`RecordedRequest::token`] came from.
    pub token_source: Option<TokenSource>,
    /// The numeric `account-id` header; `None` for the primary account (or an invalid header).
    pub account_id: Option<u64>,
    /// Status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Key of a configured behaviour: API key, token, account (`None` = primary).
type CredentialKey = (String, String, Option<u64>);

/// Everything the request handler reads and writes, behind one mutex so that counting and
/// recording are atomic with respect to each other.
#[derive(Default)]
pub(crate) struct State {
    options: FakeOptions,
    known_keys: HashSet<String>,
    behaviors: HashMap<CredentialKey, Behavior>,
    requests: Vec<RecordedRequest>,
}

/// What a request looks like to the decision logic.
pub(crate) struct IncomingRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl State {
    /// Decides the answer to `req`, records the request, and returns the action to perform.
    pub(crate) fn handle(&mut self, req: IncomingRequest) -> Action {
        let first_query = |name: &str| {
            req.query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let first_header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        };
        let api_key = first_query("user_key").filter(|k| !k.is_empty());
        let bearer = first_header("authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
        });
        let (token, token_source) = match bearer {
            Some(t) => (Some(t), Some(TokenSource::BearerHeader)),
            None => match first_query("access_token").filter(|t| !t.is_empty()) {
                Some(t) => (Some(t), Some(TokenSource::QueryParameter)),
                None => (None, None),
            },
        };
        let account_header = first_header("account-id");
        let account_id = account_header
            .as_deref()
            .and_then(|a| a.parse::<u64>().ok());

        // A header that is present but not a number is a client error, not the primary account.
        let account = match (&account_header, account_id) {
            (None, _) => Some(None),
            (Some(_), Some(id)) => Some(Some(id)),
            (Some(_), None) => None,
        };
        let action = self.decide(&req, api_key.as_deref(), token.as_deref(), account);

        self.requests.push(RecordedRequest {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            received_at: SystemTime::now(),
            api_key,
            token,
            token_source,
            account_id,
            status: action.status(),
        });
        action
    }

    fn decide(
        &self,
        req: &IncomingRequest,
        api_key: Option<&str>,
        token: Option<&str>,
        account: Option<Option<u64>>,
    ) -> Action {
        let endpoint = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/openapi/views") => Endpoint::Views,
            ("GET", "/openapi/apps") => Endpoint::Apps,
            _ => return Action::Reply(behavior::not_found()),
        };
        let opts = &self.options;
        let Some(api_key) = api_key else {
            let b = opts
                .missing_key_behavior
                .clone()
                .or_else(|| opts.unknown_key_behavior.clone())
                .unwrap_or_else(behavior::authentication_failed);
            return b.action(endpoint);
        };
        if !self.known_keys.contains(api_key) {
            let b = opts
                .unknown_key_behavior
                .clone()
                .unwrap_or_else(behavior::authentication_failed);
            return b.action(endpoint);
        }
        if let Some(wanted) = &opts.api_version {
            let sent = req
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("api-version"))
                .map(|(_, v)| v.trim());
            if sent.is_some_and(|sent| sent != wanted) {
                return Action::Reply(behavior::version_mismatch());
            }
        }
        let Some(token) = token else {
            let b = opts
                .missing_token_behavior
                .clone()
                .unwrap_or_else(behavior::token_missing);
            return b.action(endpoint);
        };
        let Some(account) = account else {
            return Action::Reply(behavior::bad_account_id());
        };
        let key = (api_key.to_string(), token.to_string(), account);
        let b = self
            .behaviors
            .get(&key)
            .cloned()
            .or_else(|| opts.default_behavior.clone())
            .unwrap_or(Behavior::UnknownToken);
        b.action(endpoint)
    }
}

/// Locks the state; a panic in another holder leaves the data usable, so poisoning is ignored.
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake TrackVia server. Clones share the server; it stops when the last clone is
/// dropped or on [`FakeTrackVia::shutdown`].
#[derive(Clone)]
pub struct FakeTrackVia {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<Mutex<State>>,
    port: u16,
    ca_pem: String,
    ca_path: PathBuf,
    task: Mutex<Option<JoinHandle<()>>>,
    // Held for its Drop: removes the CA file's directory.
    _ca_dir: Option<tempfile::TempDir>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for FakeTrackVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTrackVia")
            .field("port", &self.inner.port)
            .field("ca_path", &self.inner.ca_path)
            .finish_non_exhaustive()
    }
}

impl FakeTrackVia {
    /// Starts a server on a random port of 127.0.0.1. Panics if it cannot.
    pub async fn start() -> FakeTrackVia {
        FakeTrackVia::start_with(FakeOptions::default()).await
    }

    /// Starts a server with `opts`. Panics if it cannot (port taken, CA path not writable).
    pub async fn start_with(opts: FakeOptions) -> FakeTrackVia {
        match FakeTrackVia::try_start_with(opts).await {
            Ok(fake) => fake,
            Err(e) => panic!("could not start the fake TrackVia server: {e}"),
        }
    }

    /// Starts a server with `opts`, returning an error instead of panicking.
    pub async fn try_start_with(
        opts: FakeOptions,
    ) -> Result<FakeTrackVia, Box<dyn std::error::Error>> {
        let identity = tls::generate(&opts.extra_sans)?;
        let (ca_path, ca_dir) = match &opts.ca_path {
            Some(path) => (path.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("fake-trackvia-")
                    .tempdir()?;
                (dir.path().join("ca.pem"), Some(dir))
            }
        };
        write_ca(&ca_path, &identity.ca_pem)
            .map_err(|e| format!("writing the CA to {}: {e}", ca_path.display()))?;

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))?;
        let port = listener.local_addr()?.port();

        let state = Arc::new(Mutex::new(State {
            options: opts,
            ..State::default()
        }));
        let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config);
        let task = tokio::spawn(server::serve(listener, acceptor, state.clone()));

        Ok(FakeTrackVia {
            inner: Arc::new(Inner {
                state,
                port,
                ca_pem: identity.ca_pem,
                ca_path,
                task: Mutex::new(Some(task)),
                _ca_dir: ca_dir,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// `localhost:PORT`, what a TrackViaConnection's `spec.host` holds.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.inner.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.inner.port)
    }

    /// Path of the PEM file holding the CA certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.inner.ca_path.clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// Makes `api_key` a known `user_key`. Requests with any other key get the plain-text 401.
    pub fn add_api_key(&self, api_key: &str) {
        self.state().known_keys.insert(api_key.to_string());
    }

    /// Sets the answer for `api_key` + `token` on the primary account (no `account-id`
    /// header). Also makes `api_key` known.
    pub fn set(&self, api_key: &str, token: &str, b: Behavior) {
        self.set_entry(api_key, token, None, b);
    }

    /// Sets the answer for `api_key` + `token` when the `account-id` header is `account_id`.
    /// Also makes `api_key` known.
    pub fn set_for_account(&self, api_key: &str, token: &str, account_id: u64, b: Behavior) {
        self.set_entry(api_key, token, Some(account_id), b);
    }

    fn set_entry(&self, api_key: &str, token: &str, account: Option<u64>, b: Behavior) {
        let mut state = self.state();
        state.known_keys.insert(api_key.to_string());
        state
            .behaviors
            .insert((api_key.to_string(), token.to_string(), account), b);
    }

    /// Forgets the behaviour of `api_key` + `token` on every account: the token becomes
    /// unknown (or gets [`FakeOptions::default_behavior`]). The key stays known.
    pub fn forget(&self, api_key: &str, token: &str) {
        self.state()
            .behaviors
            .retain(|(k, t, _), _| !(k == api_key && t == token));
    }

    /// Replaces the answer for known keys with unconfigured tokens.
    pub fn set_default_behavior(&self, b: Option<Behavior>) {
        self.state().options.default_behavior = b;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.state().requests.last().cloned()
    }

    /// Number of requests that carried this API key and token (any account, any answer).
    pub fn calls_for(&self, api_key: &str, token: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(api_key) && r.token.as_deref() == Some(token))
            .count()
    }

    /// Number of requests received.
    pub fn total_calls(&self) -> usize {
        self.state().requests.len()
    }

    /// Forgets the recorded requests (and so resets the counts).
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Stops the server and closes its connections; other clones stop serving too.
    pub async fn shutdown(self) {
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
            // The task ends with a cancellation error; that is the expected outcome.
            let _ = task.await;
        }
    }
}

fn write_ca(path: &Path, pem: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, pem)
}
