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
mod recorded;
mod server;
mod state;
mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use behavior::{Behavior, UnknownBehavior};
pub use recorded::{RecordedRequest, TokenSource};
pub use state::FakeOptions;

use state::{State, lock};

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
