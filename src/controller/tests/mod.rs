//! In-process tests of the controller's passes against a mocked API server: a
//! `tower-test` service behind `kube::Client` that keeps objects by path,
//! answers GET, apply and merge patches and event posts, and records every
//! call, so a scenario asserts on exactly what a pass read and wrote.

mod lifecycle;
mod publishing;
mod server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::key::Key;
use super::source_plan::SourceWatchLimits;
use super::{Clock, Config, Context, reconcile};
use crate::connection::Settings;
use crate::crd::TrackViaConnection;
use crate::metrics::Metrics;
use crate::trackvia::{AllowedHosts, Credentials, VerificationOutcome, Verifier, VerifyCall};
pub use server::Call;
use server::{Server, merge_patch};

/// Path of the test connection `ns/crm`.
pub const CONNECTION: &str = "/apis/trackvia.io/v1alpha1/namespaces/ns/trackviaconnections/crm";

/// Path of Secret `ns/name`.
pub fn secret_path(name: &str) -> String {
    format!("/api/v1/namespaces/ns/secrets/{name}")
}

/// TrackVia, answering every check with "accepted".
struct Accepting;

impl VerifyCall for Accepting {
    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn verify<'a>(
        &'a self,
        _host: &'a str,
        _account_id: Option<u64>,
        _creds: &'a Credentials,
    ) -> BoxFuture<'a, VerificationOutcome> {
        Box::pin(async { VerificationOutcome::Verified { http_status: 200 } })
    }
}

/// A controller context talking to the mocked API server.
pub struct Bed {
    /// The context the passes run with.
    pub ctx: Arc<Context>,
    server: Arc<Mutex<Server>>,
    wakeups: UnboundedReceiver<(String, String)>,
}

impl Bed {
    /// A bed holding `objects` (each at its own path), with this restart debounce.
    pub fn new(objects: Vec<(String, Value)>, restart_debounce: Duration) -> Bed {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let mut state = Server::default();
        for (path, mut object) in objects {
            state.bump(&mut object);
            state.objects.insert(path, object);
        }
        let server = Arc::new(Mutex::new(state));
        let serving = server.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.expect("a request body");
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let mut path = parts.uri.path().to_string();
                // A create names its object in the body: recorded at the object's path.
                if parts.method == Method::POST && path.ends_with("/secrets") {
                    path = format!(
                        "{path}/{}",
                        body["metadata"]["name"].as_str().unwrap_or_default()
                    );
                }
                let mut call = Call {
                    method: parts.method,
                    path,
                    body,
                    code: 0,
                };
                let (code, answer) = {
                    let mut server = serving.lock().expect("the mock server");
                    let answer = server.answer(&call);
                    call.code = answer.0;
                    server.calls.push(call);
                    answer
                };
                let body = Body::from(serde_json::to_vec(&answer).expect("JSON"));
                let response = Response::builder().status(code).body(body);
                respond.send_response(response.expect("a response"));
            }
        });
        let client = kube::Client::new(service, "default");
        let verifier = Arc::new(Verifier::new(Accepting, 600));
        let wakeups = verifier.wakeups(None);
        verifier.start(jiff::Timestamp::now, |_| {});
        let config = Config {
            namespaces: Vec::new(),
            allowed_hosts: AllowedHosts::parse("*.trackvia.com").expect("hosts"),
            allowed_hosts_text: "*.trackvia.com".into(),
            settings: Settings::default(),
            concurrency: 1,
            clock: Clock::default(),
            instance: "test".into(),
            restart_debounce,
            source_watch_limits: SourceWatchLimits {
                per_namespace: 10,
                total: 100,
            },
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::new(&mut registry);
        let ctx = Context::new(client, config, verifier, metrics, Vec::new());
        Bed {
            ctx: Arc::new(ctx),
            server,
            wakeups,
        }
    }

    /// One pass over the connection as the API server holds it now, and how
    /// long until the check it leaves pending.
    pub async fn pass(&self) -> Option<Duration> {
        let tvc = self.connection();
        let key = Key::of(&tvc);
        let pass = reconcile(Arc::new(tvc), self.ctx.clone());
        let action = tokio::time::timeout(Duration::from_secs(10), pass)
            .await
            .expect("the pass ends")
            .expect("the pass succeeds");
        assert_eq!(
            action,
            Action::await_change(),
            "checks are kept by the operator"
        );
        let at = self.ctx.checks.at(&key)?;
        Some(at.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// The first passes of a new connection: the check is asked for, its
    /// answer arrives, and the pass after it publishes.
    pub async fn verify(&mut self) -> Option<Duration> {
        self.pass().await;
        assert!(
            self.writes().is_empty(),
            "a pass before the first answer writes nothing"
        );
        self.answered().await
    }

    /// Wait for the answer to the check asked for, and pass again.
    pub async fn answered(&mut self) -> Option<Duration> {
        let woken = tokio::time::timeout(Duration::from_secs(10), self.wakeups.next()).await;
        assert!(
            matches!(woken, Ok(Some(_))),
            "the answer wakes the connection"
        );
        self.pass().await
    }

    /// The connection as the API server holds it.
    pub fn connection(&self) -> TrackViaConnection {
        let found = self.object(CONNECTION).expect("the connection exists");
        serde_json::from_value(found).expect("a connection")
    }

    /// An object as the API server holds it.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.server
            .lock()
            .expect("server")
            .objects
            .get(path)
            .cloned()
    }

    /// Put an object at `path`, as a user would.
    /// Replace the object at `path`.
    ///
    /// A changed Secret is reported as its watch would: the credentials read
    /// before are no longer served.
    pub fn put(&self, path: &str, mut object: Value) {
        let mut server = self.server.lock().expect("server");
        server.bump(&mut object);
        if let Some(name) = path.strip_prefix(&secret_path("")) {
            let key = ("ns".to_string(), name.to_string());
            let version = object["metadata"]["resourceVersion"]
                .as_str()
                .map(String::from);
            let mut referenced = self.ctx.sources.referenced_in(Some("ns"));
            referenced.push(key.clone());
            self.ctx
                .sources
                .set_referenced(Some("ns"), referenced.into_iter().collect());
            self.ctx.sources.observe(&key, version);
        }
        server.objects.insert(path.to_string(), object);
    }

    /// How many times `path` was read since the calls were last taken.
    pub fn reads_of(&self, path: &str) -> usize {
        let server = self.server.lock().expect("server");
        let reads = server.calls.iter().filter(|c| c.method == Method::GET);
        reads.filter(|c| c.path == path).count()
    }

    /// Every call but reads, events and refused creates, and forget all calls.
    pub fn writes(&self) -> Vec<Call> {
        let calls = std::mem::take(&mut self.server.lock().expect("server").calls);
        calls
            .into_iter()
            .filter(|c| c.method != Method::GET && !c.path.contains("/events"))
            // A create refused because the name is taken changed nothing.
            .filter(|c| !(c.method == Method::POST && c.code == 409))
            .collect()
    }

    /// The reasons of the events posted so far.
    pub fn events(&self) -> Vec<String> {
        self.server.lock().expect("server").events.clone()
    }
}

/// The test connection with `spec` merged over a valid one.
pub fn connection(spec: Value) -> (String, Value) {
    let mut base = json!({
        "host": "acme.trackvia.com",
        "credentialsSecretRef": {"name": "src"},
        "target": {"name": "out"},
    });
    merge_patch(&mut base, &spec);
    let object = json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": "crm", "namespace": "ns", "uid": "uid-1", "generation": 1},
        "spec": base,
    });
    (CONNECTION.to_string(), object)
}

/// The source Secret `ns/src` holding this token.
pub fn source(token: &str) -> (String, Value) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let object = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "src", "namespace": "ns"},
        "data": {"apiKey": b64("key-1"), "authToken": b64(token)},
    });
    (secret_path("src"), object)
}

/// A Secret `ns/name` someone else made.
pub fn foreign(name: &str, extra: Value) -> (String, Value) {
    let mut object = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": "ns"},
        "data": {"theirs": "eA=="},
    });
    merge_patch(&mut object, &extra);
    (secret_path(name), object)
}

/// The condition `type_` of a status body.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}
