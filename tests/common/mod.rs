//! Harness shared by the operator's integration tests: the CRD on the real
//! test bed, a fake TrackVia, a fresh namespace and the operator binary
//! watching only that namespace.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::FakeTrackVia;
use trackvia_testsupport::fixtures::{FIELD_MANAGER, apply_connection, merged};
use trackvia_testsupport::image::Launcher;
use trackvia_testsupport::kube::{TestNamespace, client, wait_crd_established, wait_for};
use trackvia_testsupport::{OperatorProcess, free_port};

pub mod chart;
pub mod chart_rbac;
pub mod cli;
pub mod hostile;

/// The operator binary built for these tests.
pub const OPERATOR: &str = env!("CARGO_BIN_EXE_trackvia-operator");

/// How long a connection may take to reach a state in these tests.
pub const SETTLE: Duration = Duration::from_secs(30);

/// Install (server-side apply) the CRD and wait until it is Established.
pub async fn ensure_crd(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = TrackViaConnection::crd();
    // Create, or replace when present. Server-side apply is not used: Kubernetes
    // 1.20 refuses to apply fields it does not know (x-kubernetes-validations),
    // while create and replace drop them.
    let name = "trackviaconnections.trackvia.io";
    for _ in 0..20 {
        match api.get_opt(name).await.expect("reading the CRD") {
            None => match api.create(&PostParams::default(), &crd).await {
                Ok(_) => break,
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => panic!("creating the CRD: {e}"),
            },
            Some(existing) => {
                let mut replacement = crd.clone();
                replacement.metadata.resource_version = existing.metadata.resource_version.clone();
                match api
                    .replace(name, &PostParams::default(), &replacement)
                    .await
                {
                    Ok(_) => break,
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => panic!("replacing the CRD: {e}"),
                }
            }
        }
    }
    wait_crd_established(&api, "trackviaconnections.trackvia.io").await;
    // Discovery needs a moment after Established before the new resource can be served.
    for _ in 0..50 {
        let tvcs: Api<TrackViaConnection> = Api::all(client.clone());
        if tvcs.list(&ListParams::default().limit(1)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A random string usable as a credential, recognisable in a leak search.
pub fn secret_value(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        trackvia_testsupport::fixtures::random_lowercase(24)
    )
}

/// A running operator against a fake TrackVia, in its own namespace.
pub struct Harness {
    pub client: Client,
    pub ns: TestNamespace,
    pub fake: FakeTrackVia,
    pub operator: OperatorProcess,
    pub metrics_port: u16,
    /// Every key and token handed to the operator, for the leak audit.
    pub secrets: Vec<String>,
    /// The operator's arguments, for restarts.
    pub args: Vec<String>,
    /// Variables added to the operator's environment, for restarts.
    pub env: Vec<(String, String)>,
    /// Logs of operator processes that were stopped, for the leak audit.
    pub earlier_logs: String,
    /// How the operator is started (and restarted): the binary or the image.
    pub launcher: Launcher,
}

impl Harness {
    /// Start with the default flags plus `extra` (later flags win).
    pub async fn start(prefix: &str, extra: &[&str]) -> Harness {
        Harness::start_with(prefix, extra, &[], Launcher::Binary(OPERATOR.into())).await
    }

    /// Start with `extra` flags and `env` added to the operator's environment.
    pub async fn start_with_env(prefix: &str, extra: &[&str], env: &[(String, String)]) -> Harness {
        Harness::start_with(prefix, extra, env, Launcher::Binary(OPERATOR.into())).await
    }

    /// [`Harness::start_with_env`], with the operator started by `launcher`.
    pub async fn start_with(
        prefix: &str,
        extra: &[&str],
        env: &[(String, String)],
        launcher: Launcher,
    ) -> Harness {
        let client = client().await;
        ensure_crd(&client).await;
        let ns = TestNamespace::create(&client, prefix).await;
        let fake = FakeTrackVia::start().await;
        let metrics_port = free_port();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--namespaces".into(),
            ns.name().into(),
            "--allowed-hosts".into(),
            fake.host(),
            "--extra-ca-file".into(),
            fake.ca_file().display().to_string(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--log-level".into(),
            "trace".into(),
            "--retry-base".into(),
            "1s".into(),
            "--request-timeout".into(),
            "2s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let operator = launcher.spawn(&args, env);
        let harness = Harness {
            client,
            ns,
            fake,
            operator,
            metrics_port,
            secrets: Vec::new(),
            args,
            env: env.to_vec(),
            earlier_logs: String::new(),
            launcher,
        };
        harness.wait_operator_ready().await;
        harness
    }

    /// Stop the operator (SIGTERM) and start it again with the same arguments.
    pub async fn restart_operator(&mut self) {
        self.operator.stop().await;
        self.earlier_logs.push_str(&self.operator.logs());
        self.operator = self.launcher.spawn(&self.args, &self.env);
        self.wait_operator_ready().await;
    }

    /// Wait for `/readyz` of the operator.
    pub async fn wait_operator_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        for _ in 0..150 {
            if let Ok(r) = plain_get(&url).await
                && r.0 == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "operator not ready after 30 s; logs:\n{}",
            self.operator.logs()
        );
    }

    /// Scrape `/metrics`.
    pub async fn metrics(&self) -> String {
        plain_get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .map(|r| r.1)
            .unwrap_or_else(|e| panic!("scraping metrics: {e}"))
    }

    /// A fresh key and token known to the fake with behaviour `b`.
    pub fn credential(&mut self, b: trackvia_testsupport::fake::Behavior) -> (String, String) {
        let key = secret_value("k");
        let token = secret_value("t");
        self.fake.add_api_key(&key);
        self.fake.set(&key, &token, b);
        self.secrets.push(key.clone());
        self.secrets.push(token.clone());
        (key, token)
    }

    /// A fresh credential with behaviour `b` in source Secret `source`, and connection `name`
    /// reading it, with `spec` over the defaults (see [`Harness::apply_connection`]).
    /// Returns the key and token.
    pub async fn connect(
        &mut self,
        name: &str,
        source: &str,
        b: trackvia_testsupport::fake::Behavior,
        spec: serde_json::Value,
    ) -> (String, String) {
        let (key, token) = self.credential(b);
        self.put_source(source, &key, &token).await;
        self.apply_connection(name, source, spec)
            .await
            .unwrap_or_else(|e| panic!("applying connection {name}: {e}"));
        (key, token)
    }

    /// Create or replace the source Secret.
    pub async fn put_source(&self, name: &str, key: &str, token: &str) {
        let api: Api<Secret> = self.ns.api();
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"apiKey": key, "authToken": token},
        });
        // A plain replace through delete+create keeps stringData semantics simple for the source.
        let _ = api.delete(name, &Default::default()).await;
        let secret: Secret = serde_json::from_value(body).expect("secret literal");
        for _ in 0..20 {
            match api.create(&Default::default(), &secret).await {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("creating source Secret {name}: {e}"),
            }
        }
        panic!("source Secret {name} could not be recreated");
    }

    /// Update the source Secret's token in place.
    pub async fn rotate_source(&self, name: &str, key: &str, token: &str) {
        let api: Api<Secret> = self.ns.api();
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "data": {
                "apiKey": base64(key),
                "authToken": base64(token),
            },
        });
        api.patch(
            name,
            &PatchParams::apply("trackvia-tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap_or_else(|e| panic!("updating Secret {name}: {e}"));
    }

    /// Apply a TrackViaConnection whose spec is `spec` merged over a default
    /// pointing at the fake and at Secret `source`.
    pub async fn apply_connection(
        &self,
        name: &str,
        source: &str,
        spec: serde_json::Value,
    ) -> Result<TrackViaConnection, kube::Error> {
        let full = merged(
            json!({
                "host": self.fake.host(),
                "credentialsSecretRef": {"name": source},
            }),
            &spec,
        );
        apply_connection(&self.connections(), FIELD_MANAGER, name, full).await
    }

    /// Server-side apply of connection `name` with exactly `spec`.
    pub async fn apply_spec(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<TrackViaConnection, kube::Error> {
        apply_connection(&self.connections(), FIELD_MANAGER, name, spec).await
    }

    /// Set the verify-requested-at annotation to a new value.
    pub async fn request_verification(&self, name: &str) {
        let value = format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let body = json!({"metadata": {"annotations": {"trackvia.io/verify-requested-at": value}}});
        self.connections()
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .unwrap_or_else(|e| panic!("annotating {name}: {e}"));
    }

    pub fn connections(&self) -> Api<TrackViaConnection> {
        self.ns.api()
    }

    pub fn secrets_api(&self) -> Api<Secret> {
        self.ns.api()
    }

    /// Wait (at most `within`) until output Secret `name` holds `token`; `what` names the wait.
    pub async fn wait_published(
        &self,
        name: &str,
        token: &str,
        within: Duration,
        what: &str,
    ) -> Secret {
        wait_for(&self.secrets_api(), name, within, what, |s: &Secret| {
            secret_text(s, "authToken").as_deref() == Some(token)
        })
        .await
    }

    /// Wait until Ready has `status` and `reason`.
    pub async fn wait_ready(&self, name: &str, status: &str, reason: &str) -> TrackViaConnection {
        let what = format!("{name} Ready={status}/{reason}");
        let (status, reason) = (status.to_string(), reason.to_string());
        wait_for(
            &self.connections(),
            name,
            SETTLE,
            &what,
            move |t: &TrackViaConnection| {
                t.status
                    .as_ref()
                    .and_then(|s| s.condition("Ready"))
                    .is_some_and(|c| c.status == *status && c.reason == reason)
            },
        )
        .await
    }

    /// Wait until `pred` holds for connection `name`.
    pub async fn wait_connection(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&TrackViaConnection) -> bool,
    ) -> TrackViaConnection {
        wait_for(&self.connections(), name, SETTLE, what, pred).await
    }

    /// Assert that no key or token handed out appears in the operator's logs,
    /// the namespace's events, the connections' statuses or the metrics.
    pub async fn assert_no_leaks(&self) {
        // Earlier operator processes (restarted or killed) are audited too.
        let logs = format!("{}{}", self.earlier_logs, self.operator.logs());
        assert!(
            logs.len() > 100,
            "the operator logged almost nothing: {logs}"
        );
        let events: Api<Event> = self.ns.api();
        let events = events
            .list(&ListParams::default())
            .await
            .expect("listing events");
        let events = serde_json::to_string(&events).expect("events as JSON");
        let statuses = self
            .connections()
            .list(&ListParams::default())
            .await
            .expect("listing connections");
        let statuses: Vec<_> = statuses
            .items
            .iter()
            .map(|t| serde_json::to_string(&t.status).unwrap_or_default())
            .collect();
        let statuses = statuses.join("\n");
        let metrics = self.metrics().await;
        for secret in &self.secrets {
            for (what, text) in [
                ("logs", &logs),
                ("events", &events),
                ("statuses", &statuses),
                ("metrics", &metrics),
            ] {
                assert!(
                    !text.contains(secret.as_str()),
                    "a credential appears in the operator's {what}"
                );
            }
        }
    }

    pub async fn finish(mut self) {
        self.assert_no_leaks().await;
        self.operator.stop().await;
        self.ns.cleanup().await;
    }
}

pub fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// GET over plain HTTP on loopback: (status, body).
pub async fn plain_get(url: &str) -> Result<(u16, String), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let r = client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Text of a key of a Secret.
pub fn secret_text(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

impl Harness {
    /// Kill the operator with SIGKILL (no chance to clean up) and start it again
    /// with the same arguments, without waiting for it to be ready.
    pub fn crash_operator(&mut self) {
        self.operator.kill();
        self.earlier_logs.push_str(&self.operator.logs());
        self.operator = self.launcher.spawn(&self.args, &self.env);
    }

    /// Status code of the operator's `/readyz`, `None` when it does not answer.
    pub async fn readyz(&self) -> Option<u16> {
        plain_get(&format!("http://127.0.0.1:{}/readyz", self.metrics_port))
            .await
            .ok()
            .map(|r| r.0)
    }
}

/// The test bed's directory: the one holding the file `KUBECONFIG` names, as
/// written by `hack/testbed up DIR`. Panics when it is not a test bed.
pub fn testbed_dir() -> std::path::PathBuf {
    let kubeconfig = std::env::var_os("KUBECONFIG").expect("KUBECONFIG names the test bed");
    let dir = std::path::Path::new(&kubeconfig)
        .parent()
        .expect("KUBECONFIG has a directory")
        .to_path_buf();
    assert!(
        dir.join("bed.env").exists(),
        "{} is not a bed made by hack/testbed (no bed.env)",
        dir.display()
    );
    dir
}

/// Run `hack/testbed <command> <bed>`; the error carries its output.
pub fn testbed_blocking(command: &str) -> Result<(), String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/testbed");
    let output = std::process::Command::new(&script)
        .arg(command)
        .arg(testbed_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "hack/testbed {command} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Run `hack/testbed <command> <bed>` and panic with its output when it fails.
pub async fn testbed(command: &str) {
    let command = command.to_string();
    tokio::task::spawn_blocking(move || testbed_blocking(&command))
        .await
        .expect("the hack/testbed thread")
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The bed's API server, stopped (etcd keeps running). It is started again by
/// [`ApiServerAway::restore`], or when this is dropped (a failing test must not
/// leave the bed without its API server).
pub struct ApiServerAway {
    restored: bool,
}

impl ApiServerAway {
    pub async fn stop() -> ApiServerAway {
        testbed("stop-apiserver").await;
        ApiServerAway { restored: false }
    }

    pub async fn restore(mut self) {
        testbed("start-apiserver").await;
        self.restored = true;
    }
}

impl Drop for ApiServerAway {
    fn drop(&mut self) {
        if !self.restored
            && let Err(e) = testbed_blocking("start-apiserver")
        {
            eprintln!("{e}");
        }
    }
}
