//! Helpers shared by the operator's integration tests: the CRD on the real test bed, the
//! [`Harness`] (a fake TrackVia, a fresh namespace and the operator binary watching only
//! that namespace), bounded tests, credentials, Secrets and the bed itself. The submodules
//! hold what one group of test files shares.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, CustomResourceExt};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::kube::wait_crd_established;

pub mod alerts;
pub mod chart;
pub mod chart_rbac;
pub mod cli;
pub mod converge;
mod harness;
pub mod hostile;
pub mod leader;
pub mod node;
pub mod schema;
pub mod scrape;
pub mod status;

pub use harness::Harness;

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

/// Runs `test`, failing if it takes longer than `limit`. On timeout the test's future is
/// dropped, so its guards stop what it started and clean up.
pub async fn within(limit: Duration, name: &str, test: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(limit, test).await.is_err() {
        panic!("{name} did not finish within {limit:?}");
    }
}

/// A random string usable as a credential, recognisable in a leak search.
pub fn secret_value(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        trackvia_testsupport::fixtures::random_lowercase(24)
    )
}

/// Condition `type_` of a connection's status; panics when it has none.
pub fn condition<'a>(
    t: &'a TrackViaConnection,
    type_: &str,
) -> &'a trackvia_operator::crd::Condition {
    t.status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

/// Status, reason and message of a connection's condition, if it has one.
pub fn condition_parts(t: &TrackViaConnection, type_: &str) -> Option<(String, String, String)> {
    t.status.as_ref().and_then(|s| s.condition(type_)).map(|c| {
        (
            c.status.to_string(),
            c.reason.to_string(),
            c.message.to_string(),
        )
    })
}

/// Whether the last forced check a connection's annotation asked for has run: its status
/// records the annotation's value.
pub fn forced_check_done(t: &TrackViaConnection) -> bool {
    t.status
        .as_ref()
        .and_then(|s| s.verify_requested_at.as_deref())
        == t.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("trackvia.io/verify-requested-at"))
            .map(String::as_str)
}

/// Connection `crm` reading Secret `src` with valid credentials, expiring 2099-03-31 and
/// publishing Secret `crm-out`: its API key and token.
pub async fn connect_crm_out(h: &mut Harness) -> (String, String) {
    h.connect(
        "crm",
        "src",
        trackvia_testsupport::fake::Behavior::Valid,
        serde_json::json!({"tokenExpiresOn": "2099-03-31", "target": {"name": "crm-out"}}),
    )
    .await
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
    let script = trackvia_testsupport::tools::repo_root().join("hack/testbed");
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
