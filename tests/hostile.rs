//! Hostile input on the real bed: malformed or malicious connections and
//! source Secrets, and hostile servers where TrackVia should be (redirects,
//! huge and trickling bodies, untrusted or misnamed certificates, plain HTTP,
//! bodies echoing the credentials). Each is refused by the API server with a
//! message naming the field, or ends in a specific condition; the operator
//! keeps serving valid connections throughout, nothing follows a redirect, and
//! the leak audit finds no key or token anywhere.
//!
//! Kubernetes 1.20 enforces the OpenAPI part of the schema (pattern, enum,
//! type, bounds) but not the CEL rules: what only CEL catches must be refused
//! by the operator itself.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Harness, SETTLE};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia, TokenSource};
use trackvia_testsupport::fixtures::merged;
use trackvia_testsupport::kube::{TestNamespace, wait_for};

fn condition(t: &TrackViaConnection, type_: &str) -> Option<(String, String, String)> {
    t.status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Create a Secret with raw data.
async fn raw_secret(api: &Api<Secret>, name: &str, data: &[(&str, Vec<u8>)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.clone())))
                .collect(),
        ),
        ..Default::default()
    };
    api.create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("creating Secret {name}: {e}"));
}

/// Wait until the operator has processed the current generation of `name`.
async fn wait_observed(h: &Harness, name: &str) -> TrackViaConnection {
    h.wait_connection(
        name,
        "the operator to process the current generation",
        |t| {
            t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
                && condition(t, "Ready").is_some()
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Hostile connections and source Secrets.
// ---------------------------------------------------------------------------------------------

/// What must happen to a hostile connection.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The API server refuses it with a message naming this field.
    Refused(&'static str),
    /// Ready=False with this reason, the message containing this text.
    NotReady(&'static str, &'static str),
}

struct Case {
    what: &'static str,
    spec: Value,
    expect: Expect,
    /// Sent with a plain create (as `kubectl create` does) instead of server-side apply.
    create: bool,
}

fn case(what: &'static str, spec: Value, expect: Expect) -> Case {
    Case {
        what,
        spec,
        expect,
        create: false,
    }
}

/// Like `case`, sent with a plain create.
fn created(what: &'static str, spec: Value, expect: Expect) -> Case {
    Case {
        create: true,
        ..case(what, spec, expect)
    }
}

/// Create a connection with exactly this spec (no server-side apply).
async fn create_spec(
    h: &Harness,
    name: &str,
    spec: Value,
) -> Result<TrackViaConnection, kube::Error> {
    let tvc: TrackViaConnection = serde_json::from_value(json!({
        "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
        "metadata": {"name": name}, "spec": {"credentialsSecretRef": {"name": "-"}},
    }))
    .expect("a connection literal");
    let mut raw = serde_json::to_value(&tvc).expect("serializable");
    raw["spec"] = spec;
    let raw: DynamicObject = serde_json::from_value(raw).expect("an object");
    let api: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        h.ns.name(),
        &ApiResource::erase::<TrackViaConnection>(&()),
    );
    api.create(&PostParams::default(), &raw).await?;
    h.connections().get(name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_refused_and_valid_ones_keep_working() {
    let mut h = Harness::start("tvc-hostile-in", &[]).await;
    let host = h.fake.host();
    let port = h.fake.port();
    let (key, _token) = h.connect("before", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("before", "True", "Verified").await;
    let before_secret = h.secrets_api().get("before").await.expect("output Secret");
    let source_before = h.secrets_api().get("src").await.expect("source Secret");

    // Source Secrets that are present but unusable.
    let secrets = h.secrets_api();
    let k = key.clone().into_bytes();
    raw_secret(
        &secrets,
        "src-empty",
        &[("apiKey", k.clone()), ("authToken", Vec::new())],
    )
    .await;
    raw_secret(
        &secrets,
        "src-space",
        &[("apiKey", k.clone()), ("authToken", b"abc def".to_vec())],
    )
    .await;
    raw_secret(
        &secrets,
        "src-binary",
        &[
            ("apiKey", k.clone()),
            ("authToken", vec![0xff, 0xfe, 0x00, 0x41]),
        ],
    )
    .await;
    let unicode = format!("tök\u{e9}n-\u{1f511}-{}", common::secret_value(""));
    h.secrets.push(unicode.clone());
    raw_secret(
        &secrets,
        "src-unicode",
        &[
            ("apiKey", k.clone()),
            ("authToken", unicode.clone().into_bytes()),
        ],
    )
    .await;
    let huge = common::secret_value("t").repeat(24_000);
    h.secrets.push(huge.clone());
    raw_secret(
        &secrets,
        "src-huge",
        &[("apiKey", k.clone()), ("authToken", huge.into_bytes())],
    )
    .await;

    // A valid source Secret in another namespace.
    let elsewhere = TestNamespace::create(&h.client, "tvc-elsewhere").await;
    let (other_key, other_token) = h.credential(Behavior::Valid);
    raw_secret(
        &elsewhere.api(),
        "src-elsewhere",
        &[
            ("apiKey", other_key.into_bytes()),
            ("authToken", other_token.into_bytes()),
        ],
    )
    .await;

    // A ServiceAccount token Secret, filled in by the bed's controller-manager.
    let sa_token = "robot-token";
    let sa: Api<ServiceAccount> = h.ns.api();
    sa.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap(),
    )
    .await
    .expect("creating a ServiceAccount");
    let token_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": sa_token, "annotations": {"kubernetes.io/service-account.name": "robot"}},
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &token_secret)
        .await
        .expect("creating a service-account-token Secret");
    let sa_secret = wait_for(
        &secrets,
        sa_token,
        SETTLE,
        "the token controller to fill the Secret",
        |s: &Secret| s.data.as_ref().is_some_and(|d| d.contains_key("token")),
    )
    .await;

    let base = json!({"host": host, "credentialsSecretRef": {"name": "src"}});
    let fake_port = |h: &str| format!("{h}:{port}");
    let cases = vec![
        // Dates.
        case(
            "month 13",
            json!({"tokenExpiresOn": "2027-13-01"}),
            Expect::Refused("spec.tokenExpiresOn"),
        ),
        case(
            "date with a time",
            json!({"tokenExpiresOn": "2027-03-31T00:00:00Z"}),
            Expect::Refused("spec.tokenExpiresOn"),
        ),
        case(
            "empty date",
            json!({"tokenExpiresOn": ""}),
            Expect::Refused("spec.tokenExpiresOn"),
        ),
        case(
            "full-width digits",
            json!({"tokenExpiresOn": "２０２７-03-31"}),
            Expect::Refused("spec.tokenExpiresOn"),
        ),
        case(
            "30 February",
            json!({"tokenExpiresOn": "2027-02-30"}),
            Expect::NotReady("InvalidSpec", "tokenExpiresOn"),
        ),
        case(
            "29 February of a common year",
            json!({"tokenExpiresOn": "2027-02-29"}),
            Expect::NotReady("InvalidSpec", "tokenExpiresOn"),
        ),
        case(
            "year 0001",
            json!({"tokenExpiresOn": "0001-01-01"}),
            Expect::NotReady("Expired", "0001-01-01"),
        ),
        // Hosts.
        case(
            "userinfo",
            json!({"host": "user:pass@acme.trackvia.com"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "query",
            json!({"host": "acme.trackvia.com?x=1"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "fragment",
            json!({"host": "acme.trackvia.com#x"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "IPv6 literal",
            json!({"host": "[::1]:443"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "upper case",
            json!({"host": "ACME.trackvia.com"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "trailing dot",
            json!({"host": "acme.trackvia.com."}),
            Expect::Refused("spec.host"),
        ),
        case(
            "empty host",
            json!({"host": ""}),
            Expect::Refused("spec.host"),
        ),
        case(
            "300 characters",
            json!({"host": format!("{}com", "a.".repeat(150))}),
            Expect::Refused("spec.host"),
        ),
        case(
            "64-character label",
            json!({"host": format!("{}.trackvia.com", "a".repeat(64))}),
            Expect::Refused("spec.host"),
        ),
        case(
            "unicode",
            json!({"host": "acmé.trackvia.com"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "header injection",
            json!({"host": "acme.trackvia.com\r\nX-Evil: 1"}),
            Expect::Refused("spec.host"),
        ),
        case(
            "cloud metadata IP",
            json!({"host": "169.254.169.254"}),
            Expect::NotReady("HostNotAllowed", "allowed hosts"),
        ),
        case(
            "0.0.0.0 on the fake's port",
            json!({"host": fake_port("0.0.0.0")}),
            Expect::NotReady("HostNotAllowed", "allowed hosts"),
        ),
        case(
            "decimal IP on the fake's port",
            json!({"host": fake_port("2130706433")}),
            Expect::NotReady("HostNotAllowed", "allowed hosts"),
        ),
        case(
            "suffix of an allowed name",
            json!({"host": fake_port("localhost.evil.example")}),
            Expect::NotReady("HostNotAllowed", "allowed hosts"),
        ),
        case(
            "port 0",
            json!({"host": "localhost:0"}),
            Expect::NotReady("InvalidSpec", "port"),
        ),
        case(
            "port 99999",
            json!({"host": "localhost:99999"}),
            Expect::NotReady("InvalidSpec", "port"),
        ),
        // Durations.
        case(
            "negative verifyInterval",
            json!({"verifyInterval": "-1h"}),
            Expect::Refused("spec.verifyInterval"),
        ),
        case(
            "negative expiryWarning",
            json!({"expiryWarning": "-5m"}),
            Expect::Refused("spec.expiryWarning"),
        ),
        case(
            "days",
            json!({"verifyInterval": "1d"}),
            Expect::Refused("spec.verifyInterval"),
        ),
        case(
            "33-character duration",
            json!({"verifyInterval": "1h".repeat(17)}),
            Expect::Refused("spec.verifyInterval"),
        ),
        case(
            "verifyInterval 30s",
            json!({"verifyInterval": "30s"}),
            Expect::NotReady("InvalidSpec", "verifyInterval"),
        ),
        case(
            "verifyInterval 0.5m",
            json!({"verifyInterval": "0.5m"}),
            Expect::NotReady("InvalidSpec", "verifyInterval"),
        ),
        case(
            "verifyInterval of 10^17 hours",
            json!({"verifyInterval": "99999999999999999h"}),
            Expect::NotReady("InvalidSpec", "verifyInterval"),
        ),
        case(
            "expiryWarning of 10^11 hours",
            json!({"tokenExpiresOn": "2099-01-01", "expiryWarning": "999999999999h"}),
            Expect::NotReady("InvalidSpec", "expiryWarning"),
        ),
        // Account ids.
        case(
            "account 0",
            json!({"accountId": 0}),
            Expect::Refused("spec.accountId"),
        ),
        case(
            "account 2^64",
            json!({"accountId": 18446744073709551616.0}),
            Expect::Refused("spec.accountId"),
        ),
        case(
            "account as a string",
            json!({"accountId": "12"}),
            Expect::Refused("spec.accountId"),
        ),
        case(
            "fractional account",
            json!({"accountId": 1.5}),
            Expect::Refused("spec.accountId"),
        ),
        // The source Secret.
        case(
            "no credentialsSecretRef",
            json!({"credentialsSecretRef": null}),
            Expect::Refused("spec.credentialsSecretRef"),
        ),
        case(
            "namespace/name",
            json!({"credentialsSecretRef": {"name": "other/src"}}),
            Expect::Refused("spec.credentialsSecretRef.name"),
        ),
        case(
            "empty Secret name",
            json!({"credentialsSecretRef": {"name": ""}}),
            Expect::Refused("spec.credentialsSecretRef.name"),
        ),
        case(
            "path in a key name",
            json!({"credentialsSecretRef": {"apiKeyKey": "../apiKey"}}),
            Expect::Refused("spec.credentialsSecretRef.apiKeyKey"),
        ),
        case(
            "a namespace field, server-side apply",
            json!({"credentialsSecretRef": {"name": "src-elsewhere", "namespace": elsewhere.name()}}),
            Expect::Refused("spec.credentialsSecretRef.namespace"),
        ),
        created(
            "a namespace field, created (pruned)",
            json!({"credentialsSecretRef": {"name": "src-elsewhere", "namespace": elsewhere.name()}}),
            Expect::NotReady("CredentialsNotFound", "not found in namespace"),
        ),
        case(
            "a key that is not there",
            json!({"credentialsSecretRef": {"authTokenKey": "nope"}}),
            Expect::NotReady("CredentialsNotFound", "\"nope\""),
        ),
        case(
            "an empty token",
            json!({"credentialsSecretRef": {"name": "src-empty"}}),
            Expect::NotReady("CredentialsNotFound", "empty"),
        ),
        case(
            "a token with a space",
            json!({"credentialsSecretRef": {"name": "src-space"}}),
            Expect::NotReady("CredentialsNotFound", "whitespace"),
        ),
        case(
            "a token that is not UTF-8",
            json!({"credentialsSecretRef": {"name": "src-binary"}}),
            Expect::NotReady("CredentialsNotFound", "UTF-8"),
        ),
        case(
            "a unicode token",
            json!({"credentialsSecretRef": {"name": "src-unicode"}}),
            Expect::NotReady("Unauthorized", "401"),
        ),
        case(
            "a 600 kB token",
            json!({"credentialsSecretRef": {"name": "src-huge"}}),
            Expect::NotReady("CredentialsNotFound", "8 KiB"),
        ),
        // The output Secret.
        case(
            "upper-case target",
            json!({"target": {"name": "Crm"}}),
            Expect::Refused("spec.target.name"),
        ),
        case(
            "space in a target key",
            json!({"target": {"keys": {"authToken": "auth token"}}}),
            Expect::Refused("spec.target.keys.authToken"),
        ),
        case(
            "a ServiceAccount token Secret",
            json!({"target": {"name": sa_token}}),
            Expect::NotReady("TargetConflict", "not managed"),
        ),
        case(
            "its own source Secret",
            json!({"target": {"name": "src"}}),
            Expect::NotReady("InvalidSpec", "never writes its source Secret"),
        ),
        case(
            "adopting its own source Secret",
            json!({"target": {"name": "src", "adopt": true}}),
            Expect::NotReady("InvalidSpec", "never writes its source Secret"),
        ),
        case(
            "another connection's Secret",
            json!({"target": {"name": "before"}}),
            Expect::NotReady("TargetConflict", "before"),
        ),
        case(
            "adopting a ServiceAccount token Secret",
            json!({"target": {"name": sa_token, "adopt": true}}),
            Expect::NotReady("TargetConflict", "only Opaque Secrets are adopted"),
        ),
        case(
            "'..' as a data key",
            json!({"target": {"name": "dotdot", "keys": {"host": ".."}}}),
            Expect::NotReady("InvalidSpec", "not a valid Secret key"),
        ),
        case(
            "an invalid label",
            json!({"target": {"name": "badlabel", "labels": {"bad key!": "x"}}}),
            Expect::NotReady("InvalidSpec", "not a valid label"),
        ),
        case(
            "one key for key and token",
            json!({"target": {"name": "samekey", "keys": {"apiKey": "cred", "authToken": "cred"}}}),
            Expect::NotReady("InvalidSpec", "must all be different"),
        ),
        case(
            "the managed-by label",
            json!({"target": {"name": "label", "labels": {"app.kubernetes.io/managed-by": "someone-else"}}}),
            Expect::NotReady("InvalidSpec", "app.kubernetes.io/managed-by"),
        ),
        // Everything else.
        case(
            "a Pod as restart target",
            json!({"rolloutRestartTargets": [{"kind": "Pod", "name": "x"}]}),
            Expect::Refused("spec.rolloutRestartTargets.kind"),
        ),
        case(
            "33 restart targets",
            json!({"rolloutRestartTargets": (0..33).map(|i| json!({"kind": "Deployment", "name": format!("d{i}")})).collect::<Vec<_>>()}),
            Expect::Refused("spec.rolloutRestartTargets"),
        ),
        case(
            "publish in lower case",
            json!({"publish": "always"}),
            Expect::Refused("spec.publish"),
        ),
        case(
            "a 10 000-character tokenName",
            json!({"tokenName": "x".repeat(10_000)}),
            Expect::Refused("spec.tokenName"),
        ),
    ];

    // Apply everything first, then check: the operator works through the batch
    // while valid connections stay served.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (i, c) in cases.iter().enumerate() {
        let name = format!("h-{i:02}");
        let spec = merged(base.clone(), &c.spec);
        let result = if c.create {
            create_spec(&h, &name, spec).await
        } else {
            h.apply_spec(&name, spec).await
        };
        match (c.expect, result) {
            (Expect::Refused(field), Err(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains(field),
                    "{}: the refusal does not name {field}: {text}",
                    c.what
                );
                refused += 1;
            }
            (Expect::Refused(field), Ok(_)) => {
                panic!(
                    "{}: the API server accepted it (expected a refusal naming {field})",
                    c.what
                )
            }
            (_, Err(e)) => panic!("{}: the API server refused it: {e}", c.what),
            (_, Ok(_)) => accepted.push((name, c)),
        }
    }
    let mut report = Vec::new();
    for (name, c) in &accepted {
        wait_observed(&h, name).await;
        let t = match c.expect {
            Expect::NotReady(reason, text) => {
                let t = h
                    .wait_connection(name, &format!("{}: Ready=False/{reason}", c.what), |t| {
                        condition(t, "Ready").is_some_and(|(s, r, _)| s == "False" && r == reason)
                    })
                    .await;
                let (_, _, message) = condition(&t, "Ready").unwrap();
                assert!(
                    message.contains(text),
                    "{}: Ready's message {message:?} does not mention {text:?}",
                    c.what
                );
                t
            }
            Expect::Refused(_) => unreachable!(),
        };
        report.push(format!(
            "{:<40} Ready={:?}",
            c.what,
            condition(&t, "Ready").map(|(s, r, _)| (s, r))
        ));
    }
    eprintln!(
        "{refused} refused by the API server; operator-side outcomes:\n  {}",
        report.join("\n  ")
    );
    assert!(cases.len() >= 30);

    // The namespace field was pruned: the connection reads from its own namespace.
    let pruned_name = &accepted
        .iter()
        .find(|(_, c)| c.what.starts_with("a namespace field"))
        .expect("the case")
        .0;
    let raw: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        h.ns.name(),
        &ApiResource::erase::<TrackViaConnection>(&()),
    );
    let stored =
        raw.get(pruned_name).await.expect("reading").data["spec"]["credentialsSecretRef"].clone();
    assert!(
        stored.get("namespace").is_none(),
        "the unknown field was kept: {stored}"
    );

    // Nothing the hostile batch named was touched.
    let sa_after = secrets.get(sa_token).await.unwrap();
    assert_eq!(
        sa_after.type_.as_deref(),
        Some("kubernetes.io/service-account-token")
    );
    assert_eq!(
        sa_after.data, sa_secret.data,
        "the ServiceAccount token Secret's data was written"
    );
    let labels = sa_after.metadata.labels.clone().unwrap_or_default();
    let annotations = sa_after.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by")
            && !annotations.contains_key("trackvia.io/connection"),
        "the operator wrote to the ServiceAccount token Secret"
    );
    let source_after = secrets.get("src").await.unwrap();
    assert_eq!(
        source_after.metadata.resource_version, source_before.metadata.resource_version,
        "the source Secret was written"
    );
    let before_after = secrets.get("before").await.unwrap();
    assert_eq!(
        before_after.metadata.resource_version, before_secret.metadata.resource_version,
        "another connection's Secret was written"
    );

    // Valid connections are still served, old and new, by the same process.
    h.wait_ready("before", "True", "Verified").await;
    h.connect("after", "src-after", Behavior::Valid, json!({}))
        .await;
    h.wait_ready("after", "True", "Verified").await;
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    elsewhere.cleanup().await;
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Hostile servers where TrackVia should be.
// ---------------------------------------------------------------------------------------------

/// A TCP server that records what it receives and answers every connection
/// like a plain-HTTP server would (no TLS).
struct PlainServer {
    port: u16,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PlainServer {
    async fn start() -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
                    {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        PlainServer {
            port,
            connections,
            received,
            task,
        }
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a [`Proxy`] slows the server's bytes down: the first `fast` bytes of a
/// connection (the TLS handshake, the response head and a little of the body)
/// at full speed, then `step` bytes every `every`.
#[derive(Clone, Copy)]
struct Trickle {
    fast: usize,
    step: usize,
    every: Duration,
}

/// A TCP proxy from `listen` to a port on 127.0.0.1, optionally trickling the
/// upstream's answer.
struct Proxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(listen: &str, upstream: u16, trickle: Option<Trickle>) -> Proxy {
        let listener = TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("binding {listen}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) =
                        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], upstream))).await
                    else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut fast = trickle.map(|t| t.fast).unwrap_or(usize::MAX);
                    'copy: loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let now = n.min(fast);
                        fast -= now;
                        if client_write.write_all(&buf[..now]).await.is_err() {
                            break;
                        }
                        let mut rest = &buf[now..n];
                        while let (Some(t), false) = (trickle, rest.is_empty()) {
                            tokio::time::sleep(t.every).await;
                            let now = rest.len().min(t.step);
                            if client_write.write_all(&rest[..now]).await.is_err() {
                                break 'copy;
                            }
                            rest = &rest[now..];
                        }
                    }
                    up.abort();
                });
            }
        });
        Proxy { port, task }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a hostile server must lead to.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// No definite answer: Verified=Unknown/TransientFailure, message containing this.
    Transient(&'static str),
    /// A refusal: Ready=False with this reason, message containing this.
    Refusal(&'static str, &'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_get_no_credentials_and_verify_nothing() {
    // Where a redirect points: trusted by the operator (so following it would
    // work), allowed by the allow list, and answering 200 for the credentials.
    let evil = FakeTrackVia::start().await;
    // A server the operator does not trust.
    let untrusted = FakeTrackVia::start().await;
    // Plain-HTTP servers: the target of an http:// redirect, and one where TLS is expected.
    let http_target = PlainServer::start().await;
    let no_tls = PlainServer::start().await;

    let mut h = Harness::start(
        "tvc-hostile-tv",
        &[
            "--allowed-hosts",
            "localhost:*,127.0.0.2:*",
            "--request-timeout",
            "2s",
        ],
    )
    .await;
    let bundle = std::env::temp_dir().join(format!("{}-ca-bundle.pem", h.ns.name()));
    std::fs::write(&bundle, format!("{}{}", h.fake.ca_pem(), evil.ca_pem()))
        .expect("writing the CA bundle");
    h.args.push("--extra-ca-file".into());
    h.args.push(bundle.display().to_string());
    h.restart_operator().await;

    // Servers in front of the fake: one trickling its answer, one under a name its certificate lacks.
    let trickle = Trickle {
        fast: 24 * 1024,
        step: 16,
        every: Duration::from_millis(100),
    };
    let slow = Proxy::start("127.0.0.1:0", h.fake.port(), Some(trickle)).await;
    let misnamed = Proxy::start("127.0.0.2:0", h.fake.port(), None).await;

    let fake_url = h.fake.base_url();
    struct Server {
        /// The fake that answers (directly or through a proxy), if any.
        fake: Option<FakeTrackVia>,
        host: String,
    }
    let main = |fake: &FakeTrackVia| Server {
        fake: Some(fake.clone()),
        host: fake.host(),
    };
    let cases: Vec<(&str, Server, Behavior, Outcome)> = vec![
        (
            "302 to another trusted, allowed host",
            main(&h.fake),
            Behavior::Redirect {
                location: format!("{}/openapi/views", evil.base_url()),
                status: 302,
            },
            Outcome::Transient("redirects are not followed"),
        ),
        (
            "307 to another path of the same host",
            main(&h.fake),
            Behavior::Redirect {
                location: format!("{fake_url}/openapi/apps"),
                status: 307,
            },
            Outcome::Transient("redirects are not followed"),
        ),
        (
            "301 to plain http",
            main(&h.fake),
            Behavior::Redirect {
                location: format!("http://localhost:{}/openapi/views", http_target.port),
                status: 301,
            },
            Outcome::Transient("redirects are not followed"),
        ),
        (
            "308 to the cloud metadata address",
            main(&h.fake),
            Behavior::Redirect {
                location: "https://169.254.169.254/latest/meta-data/".into(),
                status: 308,
            },
            Outcome::Transient("redirects are not followed"),
        ),
        (
            "a 50 MB body that is not JSON",
            main(&h.fake),
            Behavior::NotJsonBody { bytes: 50_000_000 },
            Outcome::Transient("JSON list"),
        ),
        (
            "an HTML login page",
            main(&h.fake),
            Behavior::Status {
                code: 200,
                body: "<html><body>Sign in</body></html>".into(),
                content_type: Some("text/html".into()),
            },
            Outcome::Transient("JSON list"),
        ),
        (
            "a JSON object instead of a list",
            main(&h.fake),
            Behavior::Status {
                code: 200,
                body: r#"{"views":[]}"#.into(),
                content_type: Some("application/json".into()),
            },
            Outcome::Transient("JSON list"),
        ),
        (
            "terminal escapes and CRLF in the error",
            main(&h.fake),
            Behavior::Status {
                code: 401,
                body: "\u{1b}[31mDenied\r\nX-Injected: 1\u{7}".into(),
                content_type: None,
            },
            Outcome::Refusal("Unauthorized", "Denied X-Injected: 1"),
        ),
        (
            "a trickling body (slow loris)",
            Server {
                fake: Some(h.fake.clone()),
                host: format!("localhost:{}", slow.port),
            },
            Behavior::HugeBody { bytes: 1_000_000 },
            Outcome::Transient("timed out"),
        ),
        (
            "an untrusted certificate",
            Server {
                fake: Some(untrusted.clone()),
                host: untrusted.host(),
            },
            Behavior::Valid,
            Outcome::Transient("TLS"),
        ),
        (
            "a certificate for another name",
            Server {
                fake: None,
                host: format!("127.0.0.2:{}", misnamed.port),
            },
            Behavior::Valid,
            Outcome::Transient("TLS"),
        ),
        (
            "plain HTTP where TLS is expected",
            Server {
                fake: None,
                host: format!("localhost:{}", no_tls.port),
            },
            Behavior::Valid,
            Outcome::Transient(""),
        ),
    ];

    let mut creds = BTreeMap::new();
    for (i, (what, server, behavior, _)) in cases.iter().enumerate() {
        let (key, token) = h.credential(Behavior::Valid);
        // The fake answers through the proxies; the hostile behaviour is set where it applies.
        let target = server.fake.clone().unwrap_or_else(|| h.fake.clone());
        target.set(&key, &token, behavior.clone());
        evil.set(&key, &token, Behavior::Valid);
        let name = format!("s-{i:02}");
        let source = format!("src-{i:02}");
        h.put_source(&source, &key, &token).await;
        h.apply_spec(
            &name,
            json!({"host": server.host, "credentialsSecretRef": {"name": source}}),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        creds.insert(what.to_string(), (key, token));
    }

    let started = Instant::now();
    for (i, (what, _, _, outcome)) in cases.iter().enumerate() {
        let name = format!("s-{i:02}");
        let t = match *outcome {
            Outcome::Transient(text) => {
                h.wait_connection(&name, &format!("{what}: a transient failure"), |t| {
                    condition(t, "Verified").is_some_and(|(s, r, m)| {
                        s == "Unknown" && r == "TransientFailure" && m.contains(text)
                    })
                })
                .await
            }
            Outcome::Refusal(reason, text) => {
                h.wait_connection(&name, &format!("{what}: Ready=False/{reason}"), |t| {
                    condition(t, "Ready")
                        .is_some_and(|(s, r, m)| s == "False" && r == reason && m.contains(text))
                })
                .await
            }
        };
        let (ready, reason, _) = condition(&t, "Ready").unwrap();
        assert_ne!(ready, "True", "{what}: Ready=True/{reason}");
        for (_, _, message) in t
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .map(|c| (&c.type_, &c.status, &c.message))
        {
            assert!(
                !message.chars().any(char::is_control),
                "{what}: control characters in {message:?}"
            );
            assert!(
                message.chars().count() <= 1024,
                "{what}: a message of {} characters",
                message.chars().count()
            );
        }
        assert!(
            h.secrets_api().get_opt(&name).await.unwrap().is_none(),
            "{what}: unverified credentials were published"
        );
        eprintln!("{what:<40} Verified={:?}", condition(&t, "Verified"));
    }
    eprintln!(
        "all hostile servers handled {:?} after the last apply",
        started.elapsed()
    );

    // Nothing ever reached the redirect targets, the untrusted server or a misnamed name.
    assert_eq!(
        evil.total_calls(),
        0,
        "a redirect was followed to another host"
    );
    assert_eq!(
        http_target.connections.load(Ordering::SeqCst),
        0,
        "a redirect was followed to http"
    );
    assert_eq!(
        untrusted.total_calls(),
        0,
        "a request went through an untrusted TLS handshake"
    );
    let (k, t) = &creds["a certificate for another name"];
    assert_eq!(
        h.fake.calls_for(k, t),
        0,
        "a request went to a name the certificate does not cover"
    );
    // The plain-HTTP server saw a TLS ClientHello, never a credential.
    let seen = no_tls.received.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen[0] == 0x16,
        "expected a TLS handshake record"
    );
    for secret in &h.secrets {
        assert!(
            !seen.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a credential went out in clear text"
        );
    }
    // The token went only to the allowed host it was meant for, in the header, to the views endpoint.
    for r in h.fake.requests() {
        assert_eq!(
            r.path, "/openapi/views",
            "a redirect was followed on the same host"
        );
        assert_eq!(r.token_source, Some(TokenSource::BearerHeader));
        assert!(r.query_param("access_token").is_none());
        let host = r.header("host").unwrap_or_default();
        assert!(
            host == h.fake.host() || host == format!("localhost:{}", slow.port),
            "request for host {host}"
        );
    }

    // A hostile body echoing the credentials: redacted, even where the message is cut.
    let (key, token) = h.credential(Behavior::Valid);
    let echo = format!("{{\"message\":\"bad user_key {key} or token {token}\"}}");
    h.fake.set(
        &key,
        &token,
        Behavior::Status {
            code: 500,
            body: echo,
            content_type: None,
        },
    );
    h.put_source("src-echo", &key, &token).await;
    h.apply_spec(
        "echo",
        json!({"host": h.fake.host(), "credentialsSecretRef": {"name": "src-echo"}}),
    )
    .await
    .unwrap();
    let t = h
        .wait_connection("echo", "the echoed credentials redacted", |t| {
            condition(t, "Verified")
                .is_some_and(|(_, r, m)| r == "TransientFailure" && m.contains("<redacted>"))
        })
        .await;
    let (_, _, message) = condition(&t, "Verified").unwrap();
    assert!(
        !message.contains(&key) && !message.contains(&token),
        "an echoed credential in the status"
    );

    let (key, token) = h.credential(Behavior::Valid);
    let cut = format!("{}{token}", "A".repeat(190));
    h.fake.set(
        &key,
        &token,
        Behavior::Status {
            code: 401,
            body: cut,
            content_type: None,
        },
    );
    h.put_source("src-cut", &key, &token).await;
    h.apply_spec(
        "cut",
        json!({"host": h.fake.host(), "credentialsSecretRef": {"name": "src-cut"}}),
    )
    .await
    .unwrap();
    let t = h.wait_ready("cut", "False", "Unauthorized").await;
    let (_, _, message) = condition(&t, "Ready").unwrap();
    let prefix = &token[..10];
    if message.contains(prefix) {
        eprintln!(
            "NOT YET REDACTED BY THE OPERATOR: a token cut by the 200-character limit keeps its first characters in the status ({} of {} characters)",
            message.len() - message.find(prefix).unwrap() - "…".len(),
            token.len()
        );
    }

    // The operator is still there and still verifies.
    h.connect("control", "src-control", Behavior::Valid, json!({}))
        .await;
    h.wait_ready("control", "True", "Verified").await;
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    let _ = std::fs::remove_file(&bundle);
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// An object the operator's types cannot hold.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_operator_cannot_decode_does_not_blind_it() {
    let mut h = Harness::start("tvc-hostile-decode", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    for name in ["before", "odd"] {
        h.apply_connection(name, "src", json!({}))
            .await
            .expect("applying");
        h.wait_ready(name, "True", "Verified").await;
    }
    // The schema has no upper bound for consecutiveFailures (a u32 to the
    // operator): anyone allowed to write the status can store 2^33 there.
    let raw: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        h.ns.name(),
        &ApiResource::erase::<TrackViaConnection>(&()),
    );
    let poisoned = raw
        .patch_status(
            "odd",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"consecutiveFailures": 8_589_934_592u64}})),
        )
        .await;
    if let Err(e) = poisoned {
        eprintln!("the API server refuses a status the operator cannot decode: {e}");
        h.finish().await;
        return;
    }

    // The running operator keeps serving the namespace.
    h.connect("after", "src-after", Behavior::Valid, json!({}))
        .await;
    h.wait_ready("after", "True", "Verified").await;

    // An operator starting now begins with a list of the namespace.
    let port = trackvia_testsupport::free_port();
    let mut args = h.args.clone();
    args.push("--metrics-addr".into());
    args.push(format!("127.0.0.1:{port}"));
    let mut second = trackvia_testsupport::OperatorProcess::spawn(
        std::path::Path::new(common::OPERATOR),
        &args,
        &[],
    );
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = false;
    while Instant::now() < deadline && second.is_running() {
        if common::plain_get(&url).await.is_ok_and(|r| r.0 == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !ready {
        eprintln!(
            "NOT YET HANDLED BY THE OPERATOR: next to a connection whose status it cannot decode, \
             a starting operator never gets ready (its first list fails: {:?})",
            second
                .logs()
                .lines()
                .find(|l| l.contains("initial object list"))
                .map(|l| l
                    .chars()
                    .rev()
                    .take(160)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>())
        );
    }
    second.kill();
    h.earlier_logs.push_str(&second.logs());
    assert!(
        h.operator.is_running(),
        "the operator exited:\n{}",
        h.operator.logs()
    );
    raw.patch_status(
        "odd",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"consecutiveFailures": 0}})),
    )
    .await
    .expect("repairing the status");
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Where a request really goes (no bed needed).
// ---------------------------------------------------------------------------------------------

/// The host and port the verification request for `host` is sent to: what the
/// URL the client builds points at.
fn destination(host: &str) -> Option<(String, u16)> {
    let url = url::Url::parse(&format!("https://{host}/openapi/views")).ok()?;
    Some((url.host_str()?.to_string(), url.port_or_known_default()?))
}

fn spec_with_host(host: &str) -> trackvia_operator::crd::TrackViaConnectionSpec {
    serde_json::from_value(json!({"host": host, "credentialsSecretRef": {"name": "src"}}))
        .expect("a spec literal")
}

/// Host strings assembled from pieces that confuse URL parsers and allow lists.
fn hostile_host() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop::sample::select(vec![
        "acme",
        "evil.example",
        "trackvia.com",
        ".trackvia.com",
        "localhost",
        "127.0.0.1",
        ".",
        ":",
        ":443",
        ":8443",
        ":0",
        "#",
        "?",
        "\\",
        "/",
        "@",
        "%2e",
        "%23",
        "-",
        " ",
        "\t",
        "é",
        "xn--acm-bpa",
        "[::1]",
        "0x7f.1",
        "2130706433",
        ";",
        "..",
    ]);
    prop_oneof![
        proptest::collection::vec(piece, 1..7).prop_map(|p| p.concat()),
        "[a-z0-9.:#?@/\\\\%-]{1,24}".prop_map(|s| format!("{s}.trackvia.com")),
        "[a-z0-9.:#?@/\\\\%-]{1,24}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, failure_persistence: None, ..Default::default() })]

    /// Whatever the schema's host pattern, the operator's own checks and the
    /// allow list accept, the request goes to an allowed host and port.
    #[test]
    fn an_accepted_host_is_where_the_request_goes(host in hostile_host()) {
        let pattern = regex::Regex::new(trackvia_operator::crd::HOST_PATTERN).unwrap();
        let allow = trackvia_operator::trackvia::AllowedHosts::parse("*.trackvia.com, localhost:8443").unwrap();
        // Never a panic, whatever the input.
        let parsed = trackvia_operator::status::parse_spec(&spec_with_host(&host));
        let allowed = parsed.as_ref().is_ok_and(|p| allow.allows(&p.host));
        if pattern.is_match(&host) && allowed {
            // No URL (an invalid punycode label, say) means no request at all.
            if let Some((to, port)) = destination(&parsed.unwrap().host) {
                let ok = (to.ends_with(".trackvia.com") && to.len() > ".trackvia.com".len() && port == 443)
                    || (to == "localhost" && port == 8443);
                proptest::prop_assert!(ok, "{host:?} is accepted but the request goes to {to}:{port}");
            }
        }
    }
}

/// Without the schema's pattern (an object stored before the CRD had it, or a
/// CRD installed from elsewhere) the operator's own checks are all that stands
/// between the credentials and another host. Reported, not asserted.
#[test]
fn hosts_only_the_schema_refuses() {
    let allow = trackvia_operator::trackvia::AllowedHosts::parse("*.trackvia.com").unwrap();
    for host in [
        "evil.example#.trackvia.com",
        "evil.example?.trackvia.com",
        "evil.example\\.trackvia.com",
        "evil.example:8443#.trackvia.com:443",
    ] {
        let Ok(parsed) = trackvia_operator::status::parse_spec(&spec_with_host(host)) else {
            continue;
        };
        if !allow.allows(&parsed.host) {
            continue;
        }
        let to = destination(&parsed.host);
        if to
            .as_ref()
            .is_some_and(|(h, _)| !h.ends_with(".trackvia.com"))
        {
            eprintln!(
                "NOT YET REFUSED BY THE OPERATOR: host {host:?} passes its checks and --allowed-hosts *.trackvia.com, \
                 yet the request (with user_key and the token) would go to {to:?}; only the CRD's pattern stops it"
            );
        }
    }
}
