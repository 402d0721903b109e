//! Beds for the chart RBAC tests: the shared one `KUBECONFIG` points at, or a private control
//! plane brought up with `hack/testbed up` in a scratch directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::kube::{TestNamespace, install_crypto_provider};

use trackvia_testsupport::command::{run_blocking, run_tool};
use trackvia_testsupport::tools::{repo_root, tool};

use super::*;

/// A control plane started by this test with `hack/testbed up`; stopped on drop.
pub struct PrivateBed {
    pub dir: PathBuf,
}

impl Drop for PrivateBed {
    fn drop(&mut self) {
        let down = run_blocking(
            &repo_root().join("hack/testbed"),
            &["down".to_string(), self.dir.display().to_string()],
            &[],
            Duration::from_secs(60),
        );
        if !down.succeeded() {
            eprintln!(
                "stopping the private bed failed:\n{}\n{}",
                down.stdout, down.stderr
            );
        }
        if std::thread::panicking() || !down.succeeded() {
            eprintln!(
                "the private bed's logs are kept in {}/logs",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where a test runs: a client for an administrator, the kubeconfig it came from (for helm
/// and for the ServiceAccount's kubeconfig) and the namespaces the test made.
pub struct Bed {
    /// Value of `KUBECONFIG` for helm.
    pub kubeconfig: String,
    pub admin: Kubeconfig,
    pub client: Client,
    pub namespaces: Vec<TestNamespace>,
    pub private: Option<PrivateBed>,
}

pub async fn client_for(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the kubeconfig is not usable: {e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("building a Kubernetes client: {e}"))
}

impl Bed {
    /// The bed `KUBECONFIG` points at, with the CRD current. Panics loudly without one.
    pub async fn shared() -> Bed {
        let client = trackvia_testsupport::kube::client().await;
        let kubeconfig = std::env::var("KUBECONFIG").expect("checked by client()");
        let admin = Kubeconfig::read().unwrap_or_else(|e| panic!("reading KUBECONFIG: {e}"));
        // Other test binaries create or replace the CRD too; it is kept out of helm's hands.
        crate::common::ensure_crd(&client).await;
        Bed {
            kubeconfig,
            admin,
            client,
            namespaces: Vec::new(),
            private: None,
        }
    }

    /// A control plane of this test's own, from the test bed's cache.
    pub async fn private(label: &str) -> Bed {
        install_crypto_provider();
        // Fail fast, with instructions, rather than let `up` start a long install.
        for binary in ["kube-apiserver", "etcd", "kube-controller-manager"] {
            tool(binary);
        }
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "trackvia-{label}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("creating the private bed's directory");
        // From here on, whatever `up` started is stopped on drop.
        let guard = PrivateBed { dir: dir.clone() };
        let started = Instant::now();
        run_tool(
            repo_root().join("hack/testbed"),
            vec!["up".into(), dir.display().to_string()],
            vec![("TESTBED_TIMEOUT".into(), "120".into())],
            BED_UP_TIMEOUT,
        )
        .await
        .expect_success();
        eprintln!("private bed up in {:?}", started.elapsed());
        let path = dir.join("kubeconfig");
        let admin = Kubeconfig::read_from(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let client = client_for(admin.clone()).await;
        Bed {
            kubeconfig: path.display().to_string(),
            admin,
            client,
            namespaces: Vec::new(),
            private: Some(guard),
        }
    }

    /// A fresh namespace `<prefix>-<random>`.
    pub async fn namespace(&mut self, prefix: &str) -> String {
        if self.private.is_some() {
            // Nothing to clean up: the whole bed goes.
            let name = format!("{prefix}-{}", random_suffix());
            let ns: Namespace =
                serde_json::from_value(json!({"metadata": {"name": name}})).expect("a Namespace");
            Api::<Namespace>::all(self.client.clone())
                .create(&PostParams::default(), &ns)
                .await
                .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
            return name;
        }
        let ns = TestNamespace::create(&self.client, prefix).await;
        let name = ns.name().to_string();
        self.namespaces.push(ns);
        name
    }

    /// Helm arguments for the CRD: the chart's on a private bed, none on the shared one.
    pub fn crd_values(&self) -> Vec<String> {
        if self.private.is_some() {
            Vec::new()
        } else {
            vec!["--set".into(), "crds.enabled=false".into()]
        }
    }

    pub fn helm_env(&self) -> Vec<(String, String)> {
        vec![("KUBECONFIG".into(), self.kubeconfig.clone())]
    }

    /// The cluster entry the administrator's current context uses, as kubeconfig JSON.
    pub fn cluster(&self) -> Value {
        let context = self
            .admin
            .current_context
            .as_deref()
            .expect("the kubeconfig has a current context");
        let cluster = self
            .admin
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
            .unwrap_or_else(|| panic!("context {context} is not in the kubeconfig"));
        let entry = self
            .admin
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_ref())
            .unwrap_or_else(|| panic!("cluster {cluster} is not in the kubeconfig"));
        serde_json::to_value(entry).expect("a kubeconfig cluster is JSON")
    }

    pub async fn finish(mut self) {
        for ns in self.namespaces.drain(..) {
            ns.cleanup().await;
        }
    }
}

/// Waits until TrackViaConnections are served (after helm installed the chart's CRD).
pub async fn wait_crd_served(client: &Client) {
    let api: Api<TrackViaConnection> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("TrackViaConnections are not served 30 s after the install: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
