//! The harness of the operator's integration tests: a fake TrackVia, a fresh namespace and
//! the operator binary watching only that namespace, with waits on what it publishes and a
//! leak audit of its logs, events, statuses and metrics at the end.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::FakeTrackVia;
use trackvia_testsupport::fixtures::{FIELD_MANAGER, apply_connection, merged};
use trackvia_testsupport::image::Launcher;
use trackvia_testsupport::kube::{TestNamespace, client, wait_for};
use trackvia_testsupport::{OperatorProcess, free_port};

use super::{OPERATOR, SETTLE, base64, ensure_crd, plain_get, secret_text, secret_value};

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
        self.restart_operator_after(async {}).await;
    }

    /// Stop the operator (SIGTERM), run `meanwhile`, and start it again with the same
    /// arguments.
    pub async fn restart_operator_after(
        &mut self,
        meanwhile: impl std::future::Future<Output = ()>,
    ) {
        self.operator.stop().await;
        self.earlier_logs.push_str(&self.operator.logs());
        meanwhile.await;
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
