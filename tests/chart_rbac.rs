//! The chart's RBAC, exercised by the operator itself.
//!
//! Each test installs the chart with helm, asks the TokenRequest API for a token of the
//! chart's ServiceAccount and runs the operator binary as that ServiceAccount, with the
//! arguments, the environment and the mounted files of the chart's Deployment. The bed has no
//! kubelet, so the test plays its part: it reads the Deployment from the cluster, projects its
//! ConfigMap and Secret volumes into a scratch directory and sets the downward-API variables.
//! Only the metrics address and the mount paths are rewritten. Whatever the operator needs and
//! the chart does not grant shows up as a scenario that never settles, or as "is forbidden" in
//! the operator's log, which every test checks.
//!
//! The cluster-wide test runs on a private control plane (`hack/testbed up` in a scratch
//! directory): an operator watching every namespace of the shared bed would reconcile the
//! connections of the tests running beside it. The other tests install the chart in scoped
//! mode (`watchNamespaces`) on the bed `KUBECONFIG` points at, in fresh namespaces, under
//! release names (and so Lease names) of their own.

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{OPERATOR, SETTLE, plain_get, secret_text, secret_value};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, ServiceAccount,
};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::fixtures::apply_connection;
use trackvia_testsupport::kube::{TestNamespace, install_crypto_provider, wait_for};
use trackvia_testsupport::metrics::series;
use trackvia_testsupport::{OperatorProcess, free_port};

/// Upper bound of one test, set-up and tear-down included.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Upper bound of one helm call.
const HELM_TIMEOUT: Duration = Duration::from_secs(90);
/// Upper bound of `hack/testbed up` for the private bed.
const BED_UP_TIMEOUT: Duration = Duration::from_secs(150);
/// The lease duration the operator asks for (`with_duration(15)`), plus what a standby
/// needs to notice the expiry, clear the Lease and take it.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a namespace the operator must not touch is watched for a write.
const UNTOUCHED_FOR: Duration = Duration::from_secs(10);
/// The reporting controller of the operator's events.
const REPORTER: &str = "trackvia-operator";
/// What the API server says in every RBAC refusal; never expected in the operator's log.
const FORBIDDEN: &str = "is forbidden";

/// Six random lowercase letters and digits, for names.
fn random_suffix() -> String {
    secret_value("").chars().take(6).collect()
}

use trackvia_testsupport::command::{Ran, run_blocking, run_tool};
use trackvia_testsupport::tools::{repo_root, tool};

/// Runs `test`, failing if it takes longer than [`TEST_TIMEOUT`]. On timeout the test's
/// future is dropped, so its guards stop the operators, uninstall and clean up.
async fn bounded(name: &str, test: impl Future<Output = ()>) {
    if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tools: helm and the test bed script
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Scratch files
// ---------------------------------------------------------------------------------------------

/// A directory of its own under the target's scratch space; removed when the test passes,
/// kept (and named) when it fails.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(label: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("chart-rbac")
            .join(format!("{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch { dir }
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a scratch directory");
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        std::io::Write::write_all(&mut file, contents).expect("writing a scratch file");
        path
    }

    fn subdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scratch files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Beds: the shared one from KUBECONFIG, or a private one
// ---------------------------------------------------------------------------------------------

/// A control plane started by this test with `hack/testbed up`; stopped on drop.
struct PrivateBed {
    dir: PathBuf,
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
struct Bed {
    /// Value of `KUBECONFIG` for helm.
    kubeconfig: String,
    admin: Kubeconfig,
    client: Client,
    namespaces: Vec<TestNamespace>,
    private: Option<PrivateBed>,
}

async fn client_for(kubeconfig: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the kubeconfig is not usable: {e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("building a Kubernetes client: {e}"))
}

impl Bed {
    /// The bed `KUBECONFIG` points at, with the CRD current. Panics loudly without one.
    async fn shared() -> Bed {
        let client = trackvia_testsupport::kube::client().await;
        let kubeconfig = std::env::var("KUBECONFIG").expect("checked by client()");
        let admin = Kubeconfig::read().unwrap_or_else(|e| panic!("reading KUBECONFIG: {e}"));
        // Other test binaries create or replace the CRD too; it is kept out of helm's hands.
        common::ensure_crd(&client).await;
        Bed {
            kubeconfig,
            admin,
            client,
            namespaces: Vec::new(),
            private: None,
        }
    }

    /// A control plane of this test's own, from the test bed's cache.
    async fn private(label: &str) -> Bed {
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
    async fn namespace(&mut self, prefix: &str) -> String {
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
    fn crd_values(&self) -> Vec<String> {
        if self.private.is_some() {
            Vec::new()
        } else {
            vec!["--set".into(), "crds.enabled=false".into()]
        }
    }

    fn helm_env(&self) -> Vec<(String, String)> {
        vec![("KUBECONFIG".into(), self.kubeconfig.clone())]
    }

    /// The cluster entry the administrator's current context uses, as kubeconfig JSON.
    fn cluster(&self) -> Value {
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

    async fn finish(mut self) {
        for ns in self.namespaces.drain(..) {
            ns.cleanup().await;
        }
    }
}

/// Waits until TrackViaConnections are served (after helm installed the chart's CRD).
async fn wait_crd_served(client: &Client) {
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

// ---------------------------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------------------------

/// A helm release of the chart; uninstalled on drop on the shared bed.
struct Release {
    name: String,
    namespace: String,
    kubeconfig: String,
    uninstall_on_drop: bool,
}

impl Release {
    /// `helm install` into `namespace`, under the namespace's (unique) name. On the shared bed
    /// the CRD is left out (`crds.enabled=false`; [`Bed::shared`] keeps it current); a private
    /// bed gets the chart's.
    async fn install(bed: &Bed, namespace: &str, values: &Value, scratch: &Scratch) -> Release {
        let release = Release {
            name: namespace.to_string(),
            namespace: namespace.to_string(),
            kubeconfig: bed.kubeconfig.clone(),
            uninstall_on_drop: bed.private.is_none(),
        };
        let values = scratch.file("values-install.json", values.to_string().as_bytes());
        let mut args = vec![
            "install".to_string(),
            release.name.clone(),
            repo_root()
                .join("charts/trackvia-operator")
                .display()
                .to_string(),
            "--namespace".into(),
            namespace.into(),
            "--values".into(),
            values.display().to_string(),
            "--timeout".into(),
            "60s".into(),
        ];
        args.extend(bed.crd_values());
        run_tool(tool("helm"), args, bed.helm_env(), HELM_TIMEOUT)
            .await
            .expect_success();
        if bed.private.is_some() {
            wait_crd_served(&bed.client).await;
        }
        release
    }

    /// `helm upgrade` with `values` (replacing, not merging with, the install's).
    async fn upgrade(&self, bed: &Bed, values: &Value, scratch: &Scratch) {
        let values = scratch.file("values-upgrade.json", values.to_string().as_bytes());
        run_tool(
            tool("helm"),
            vec![
                "upgrade".into(),
                self.name.clone(),
                repo_root()
                    .join("charts/trackvia-operator")
                    .display()
                    .to_string(),
                "--namespace".into(),
                self.namespace.clone(),
                "--values".into(),
                values.display().to_string(),
                "--timeout".into(),
                "60s".into(),
            ]
            .into_iter()
            .chain(bed.crd_values())
            .collect(),
            bed.helm_env(),
            HELM_TIMEOUT,
        )
        .await
        .expect_success();
    }

    /// The chart's resource name prefix for this release.
    fn fullname(&self) -> String {
        if self.name.contains("trackvia-operator") {
            self.name.clone()
        } else {
            format!("{}-trackvia-operator", self.name)
        }
    }

    async fn deployment(&self, bed: &Bed) -> Deployment {
        Api::<Deployment>::namespaced(bed.client.clone(), &self.namespace)
            .get(&self.fullname())
            .await
            .unwrap_or_else(|e| panic!("reading the chart's Deployment {}: {e}", self.fullname()))
    }

    /// The ServiceAccount the chart's pods run as.
    async fn service_account(&self, bed: &Bed) -> String {
        self.deployment(bed)
            .await
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.service_account_name)
            .expect("the chart's pods name a ServiceAccount")
    }

    fn uninstall_blocking(&mut self) -> Ran {
        self.uninstall_on_drop = false;
        run_blocking(
            &tool("helm"),
            &[
                "uninstall".into(),
                self.name.clone(),
                "--namespace".into(),
                self.namespace.clone(),
                "--timeout".into(),
                "60s".into(),
            ],
            &[("KUBECONFIG".into(), self.kubeconfig.clone())],
            HELM_TIMEOUT,
        )
    }

    async fn uninstall(mut self) {
        if !self.uninstall_on_drop {
            return;
        }
        tokio::task::spawn_blocking(move || self.uninstall_blocking())
            .await
            .expect("helm uninstall ran")
            .expect_success();
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.uninstall_on_drop {
            let ran = self.uninstall_blocking();
            if !ran.succeeded() {
                eprintln!("`{}` failed: {}", ran.command, ran.stderr);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The ServiceAccount's identity
// ---------------------------------------------------------------------------------------------

/// A ServiceAccount's token, in a kubeconfig of its own and as a client.
struct Identity {
    username: String,
    kubeconfig: PathBuf,
    client: Client,
}

/// One expected answer of `kubectl auth can-i`: verb, resource (`resource[.group][/sub]`,
/// optionally `=name`), namespace (empty: all namespaces), allowed.
type Access<'a> = (&'a str, &'a str, &'a str, bool);

impl Identity {
    /// A token for ServiceAccount `namespace/name` from the TokenRequest API, written into a
    /// kubeconfig with the administrator's server and CA. Checks with a TokenReview that the
    /// API server takes it for that ServiceAccount.
    async fn service_account(
        bed: &Bed,
        namespace: &str,
        name: &str,
        scratch: &Scratch,
    ) -> Identity {
        let request: TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [], "expirationSeconds": 3600},
        }))
        .expect("a TokenRequest");
        let token = Api::<ServiceAccount>::namespaced(bed.client.clone(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("requesting a token for {namespace}/{name}: {e}"))
            .status
            .expect("the TokenRequest has a status")
            .token;

        let username = format!("system:serviceaccount:{namespace}:{name}");
        let review: TokenReview = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }))
        .expect("a TokenReview");
        let reviewed = Api::<TokenReview>::all(bed.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap_or_else(|e| panic!("reviewing the token: {e}"))
            .status
            .expect("the TokenReview has a status");
        assert_eq!(reviewed.authenticated, Some(true), "{reviewed:?}");
        assert_eq!(
            reviewed.user.and_then(|u| u.username).as_deref(),
            Some(username.as_str())
        );

        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "bed", "cluster": bed.cluster()}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "bed", "user": name, "namespace": namespace}}],
            "current-context": name,
        });
        let path = scratch.file(
            &format!("kubeconfig-{name}.json"),
            kubeconfig.to_string().as_bytes(),
        );
        let parsed = Kubeconfig::read_from(&path)
            .unwrap_or_else(|e| panic!("reading back {}: {e}", path.display()));
        Identity {
            username,
            kubeconfig: path,
            client: client_for(parsed).await,
        }
    }

    /// What `kubectl auth can-i` asks: a SelfSubjectAccessReview, made with this identity.
    async fn can_i(&self, verb: &str, what: &str, namespace: &str) -> bool {
        let (what, name) = match what.split_once('=') {
            Some((w, n)) => (w, Some(n)),
            None => (what, None),
        };
        let (resource, subresource) = match what.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (what, None),
        };
        let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
        let review: SelfSubjectAccessReview = serde_json::from_value(json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": subresource,
                "name": name,
                "namespace": namespace,
            }},
        }))
        .expect("a SelfSubjectAccessReview");
        Api::<SelfSubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap_or_else(|e| panic!("asking whether {} can {verb} {what}: {e}", self.username))
            .status
            .is_some_and(|s| s.allowed)
    }

    /// Asks every question of `table`; panics listing each wrong answer.
    async fn assert_access(&self, table: &[Access<'_>]) {
        let mut wrong = Vec::new();
        for &(verb, what, namespace, expected) in table {
            let got = self.can_i(verb, what, namespace).await;
            if got != expected {
                let scope = if namespace.is_empty() {
                    "--all-namespaces".to_string()
                } else {
                    format!("-n {namespace}")
                };
                wrong.push(format!(
                    "  can-i {verb} {what} {scope}: expected {}, got {}",
                    yes_no(expected),
                    yes_no(got)
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} has the wrong permissions:\n{}",
            self.username,
            wrong.join("\n")
        );
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Asserts that `result` is the API server's 403.
fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The operator, started the way the chart's Deployment starts it
// ---------------------------------------------------------------------------------------------

/// One operator process standing in for a pod of the chart's Deployment.
struct Pod {
    name: String,
    args: Vec<String>,
    metrics_port: u16,
    process: OperatorProcess,
}

/// Writes the ConfigMap and Secret volumes `container` mounts into `root`, as the kubelet
/// would; returns (mount path, local directory) pairs.
async fn project_volumes(
    client: &Client,
    namespace: &str,
    pod: &PodSpec,
    container: &Container,
    root: &Path,
) -> Vec<(String, PathBuf)> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("volume {} is mounted but not defined", mount.name));
        let (data, items) = if let Some(source) = &volume.config_map {
            let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get(&source.name)
                .await
                .unwrap_or_else(|e| panic!("reading ConfigMap {}: {e}", source.name));
            let data: Vec<(String, Vec<u8>)> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            (data, source.items.clone())
        } else if let Some(source) = &volume.secret {
            let name = source
                .secret_name
                .clone()
                .expect("a Secret volume names its Secret");
            let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                .get(&name)
                .await
                .unwrap_or_else(|e| panic!("reading Secret {name}: {e}"));
            let data: Vec<(String, Vec<u8>)> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            (data, source.items.clone())
        } else {
            panic!(
                "volume {} is neither a ConfigMap nor a Secret; project it here",
                volume.name
            );
        };
        let dir = root.join(&mount.name);
        std::fs::create_dir_all(&dir).expect("creating a volume directory");
        let files: Vec<(String, String)> = match items {
            Some(items) => items.into_iter().map(|i| (i.key, i.path)).collect(),
            None => data.iter().map(|(k, _)| (k.clone(), k.clone())).collect(),
        };
        for (key, path) in files {
            let bytes = data
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("volume {} has no key {key}", volume.name));
            std::fs::write(dir.join(&path), bytes).expect("writing a projected file");
        }
        mounts.push((mount.mount_path.clone(), dir));
    }
    mounts
}

impl Pod {
    /// Starts the operator as `identity` with the container spec of the release's Deployment
    /// as it is in the cluster now. `suffix` makes the pod name (and so the Lease identity).
    async fn start(
        bed: &Bed,
        release: &Release,
        identity: &Identity,
        scratch: &Scratch,
        suffix: &str,
    ) -> Pod {
        let deployment = release.deployment(bed).await;
        let spec = deployment
            .spec
            .and_then(|s| s.template.spec)
            .expect("the Deployment has a pod spec");
        assert_eq!(
            identity.username,
            format!(
                "system:serviceaccount:{}:{}",
                release.namespace,
                spec.service_account_name.as_deref().unwrap_or("default")
            ),
            "the operator must run as the chart's ServiceAccount"
        );
        assert_eq!(spec.containers.len(), 1, "one container");
        let container = &spec.containers[0];
        assert!(
            container
                .command
                .iter()
                .flatten()
                .next()
                .is_some_and(|c| c.ends_with("/trackvia-operator")),
            "{:?}",
            container.command
        );
        let name = format!("{}-{suffix}", release.fullname());
        let files = scratch.subdir(&format!("pod-{suffix}"));
        let mounts =
            project_volumes(&bed.client, &release.namespace, &spec, container, &files).await;
        let metrics_port = free_port();
        let args: Vec<String> = container
            .args
            .iter()
            .flatten()
            .map(|arg| {
                if arg.starts_with("--metrics-addr=") {
                    format!("--metrics-addr=127.0.0.1:{metrics_port}")
                } else {
                    mounts.iter().fold(arg.clone(), |arg, (mount, local)| {
                        arg.replace(mount.as_str(), &local.display().to_string())
                    })
                }
            })
            .collect();
        let mut env: Vec<(String, String)> = Vec::new();
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.namespace") => release.namespace.clone(),
                        Some("metadata.name") => name.clone(),
                        other => panic!("env {} comes from {other:?}; provide it here", var.name),
                    }
                }
                (None, None) => String::new(),
            };
            env.push((var.name.clone(), value));
        }
        env.push((
            "KUBECONFIG".into(),
            identity.kubeconfig.display().to_string(),
        ));
        eprintln!(
            "starting pod {name} as {}: trackvia-operator {}",
            identity.username,
            args.join(" ")
        );
        let process = OperatorProcess::spawn(Path::new(OPERATOR), &args, &env);
        Pod {
            name,
            args,
            metrics_port,
            process,
        }
    }

    /// The identity this process holds the Lease under (`$POD_NAME-<pid>`).
    fn lease_identity(&self) -> String {
        format!("{}-{}", self.name, self.process.pid())
    }

    fn flag(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.args
            .iter()
            .find_map(|a| a.strip_prefix(prefix.as_str()))
    }

    /// Waits for `/readyz` to answer 200.
    async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.process.try_exit_status() {
                panic!(
                    "{} exited ({status}); its log:\n{}",
                    self.name,
                    self.process.logs()
                );
            }
            if plain_get(&url).await.is_ok_and(|r| r.0 == 200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not ready after 40 s; its log:\n{}",
                    self.name,
                    self.process.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (20 s at most) until this pod leads.
    async fn wait_leading(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.metric("trackvia_operator_leader").await != 1.0 {
            assert!(
                Instant::now() < deadline,
                "{} did not lead within 20 s; its log:\n{}",
                self.name,
                self.process.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn metrics(&self) -> String {
        plain_get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .map(|r| r.1)
            .unwrap_or_else(|e| panic!("scraping {}: {e}", self.name))
    }

    /// The value of an unlabelled sample (0 when absent).
    async fn metric(&self, name: &str) -> f64 {
        series(&self.metrics().await, name).unwrap_or(0.0)
    }

    /// Panics if the log shows an RBAC refusal, a failed event, a failed reconcile or one of
    /// the `credentials`.
    fn assert_clean_log(&self, credentials: &[String]) {
        let logs = self.process.logs();
        for bad in [FORBIDDEN, "could not publish event", "reconcile failed"] {
            assert!(!logs.contains(bad), "{} logged {bad:?}:\n{logs}", self.name);
        }
        for credential in credentials {
            assert!(
                !logs.contains(credential.as_str()),
                "{} logged a credential",
                self.name
            );
        }
    }

    /// SIGTERM; the process must exit 0 within the chart's grace period.
    async fn stop_cleanly(&mut self) {
        let started = Instant::now();
        let status = self.process.stop_within(Duration::from_secs(20)).await;
        assert!(
            status.success(),
            "{} did not stop cleanly on SIGTERM ({status}); its log:\n{}",
            self.name,
            self.process.logs()
        );
        eprintln!("{} stopped in {:?}", self.name, started.elapsed());
    }
}

/// Waits until `pod` has finished at least `count` reconciles.
async fn wait_reconciled(pod: &Pod, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = pod
            .metric("trackvia_reconcile_duration_seconds_count")
            .await;
        if done >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} reconciled {done} times in 20 s, expected {count}; its log:\n{}",
            pod.name,
            pod.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reports status writes beyond one per change. They come from the operator, not from the
/// election: when the reconcile triggered by a connection's own output-Secret write starts
/// before the watch has delivered the status just written, it works from the stale copy and
/// writes (and announces) the same transition again.
fn note_extra_writes(pod: &Pod, writes: f64, changes: f64) {
    if writes > changes {
        eprintln!(
            "note: {} wrote {writes} statuses for {changes} changes (a reconcile read a stale \
             copy of a connection)",
            pod.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Connections, made by an administrator
// ---------------------------------------------------------------------------------------------

/// A namespace with TrackViaConnections and their Secrets, written as the administrator.
struct Place {
    client: Client,
    ns: String,
    host: String,
}

impl Place {
    fn new(bed: &Bed, ns: &str, fake: &FakeTrackVia) -> Place {
        Place {
            client: bed.client.clone(),
            ns: ns.to_string(),
            host: fake.host(),
        }
    }

    fn connections(&self) -> Api<TrackViaConnection> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates or updates the source Secret `name`.
    async fn put_source(&self, name: &str, key: &str, token: &str) {
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "data": {"apiKey": common::base64(key), "authToken": common::base64(token)},
        });
        self.secrets()
            .patch(
                name,
                &PatchParams::apply("chart-rbac-tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap_or_else(|e| panic!("writing Secret {}/{name}: {e}", self.ns));
    }

    /// Applies connection `name` reading Secret `source`, with `extra` merged into the spec.
    async fn apply(&self, name: &str, source: &str, extra: Value) {
        let mut spec = json!({
            "host": self.host,
            "credentialsSecretRef": {"name": source},
            "tokenExpiresOn": "2099-01-31",
        });
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
        apply_connection(&self.connections(), "chart-rbac-tests", name, spec)
            .await
            .unwrap_or_else(|e| panic!("applying TrackViaConnection {}/{name}: {e}", self.ns));
    }

    /// Waits until Ready is `status` for `reason`.
    async fn wait_ready(&self, name: &str, status: &str, reason: &str) -> TrackViaConnection {
        let what = format!("{}/{name} Ready={status} ({reason})", self.ns);
        wait_for(
            &self.connections(),
            name,
            SETTLE,
            &what,
            |t: &TrackViaConnection| {
                t.status
                    .as_ref()
                    .and_then(|s| s.condition("Ready"))
                    .is_some_and(|c| c.status == status && c.reason == reason)
            },
        )
        .await
    }

    async fn connection(&self, name: &str) -> TrackViaConnection {
        self.connections()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading {}/{name}: {e}", self.ns))
    }

    async fn version_of_connection(&self, name: &str) -> String {
        self.connection(name)
            .await
            .metadata
            .resource_version
            .expect("a resourceVersion")
    }

    async fn version_of_secret(&self, name: &str) -> String {
        self.secrets()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading Secret {}/{name}: {e}", self.ns))
            .metadata
            .resource_version
            .expect("a resourceVersion")
    }

    /// The operator's events (events.k8s.io) in this namespace.
    async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing events in {}: {e}", self.ns))
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some(REPORTER))
            .collect()
    }

    /// Reasons of the operator's events about `name`.
    async fn events_of(&self, name: &str) -> Vec<String> {
        self.events()
            .await
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| e.reason.clone().unwrap_or_default())
            .collect()
    }

    /// Waits for an event of the operator about `name` with `reason` and `type_`.
    async fn wait_event(&self, name: &str, reason: &str, type_: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.events().await;
            if let Some(e) = events.iter().find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some(type_)
            }) {
                return e.clone();
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = events
                    .iter()
                    .map(|e| {
                        format!(
                            "{:?} {:?} {:?}",
                            e.regarding.as_ref().and_then(|r| r.name.clone()),
                            e.reason,
                            e.type_
                        )
                    })
                    .collect();
                panic!(
                    "no {type_} event {reason} about {}/{name} from {REPORTER}; seen: {seen:?}",
                    self.ns
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A fresh API key and token known to `fake` with behaviour `b`, remembered for the log audit.
fn credential(fake: &FakeTrackVia, b: Behavior, remember: &mut Vec<String>) -> (String, String) {
    let key = secret_value("k");
    let token = secret_value("t");
    fake.add_api_key(&key);
    fake.set(&key, &token, b);
    remember.push(key.clone());
    remember.push(token.clone());
    (key, token)
}

fn ready_reason(t: &TrackViaConnection) -> Option<(String, String)> {
    t.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The values every test starts from: the fake's host allowed and its CA trusted through
/// `extraCA` (`source` is `secretName` or `configMapName`, holding `ca.crt`).
fn base_values(fake: &FakeTrackVia, source: &str) -> Value {
    json!({
        "allowedHosts": [fake.host()],
        "extraCA": {source: "trackvia-ca", "key": "ca.crt"},
    })
}

/// The fake's CA as an administrator provides it: ConfigMap or Secret `trackvia-ca`.
async fn publish_ca(bed: &Bed, ns: &str, fake: &FakeTrackVia, as_secret: bool) {
    let pp = PostParams::default();
    if as_secret {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "trackvia-ca"},
            "stringData": {"ca.crt": fake.ca_pem()},
        }))
        .expect("a Secret");
        Api::<Secret>::namespaced(bed.client.clone(), ns)
            .create(&pp, &secret)
            .await
            .expect("creating the CA Secret");
    } else {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "trackvia-ca"},
            "data": {"ca.crt": fake.ca_pem()},
        }))
        .expect("a ConfigMap");
        Api::<ConfigMap>::namespaced(bed.client.clone(), ns)
            .create(&pp, &cm)
            .await
            .expect("creating the CA ConfigMap");
    }
}

async fn lease(bed: &Bed, ns: &str, name: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(bed.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading Lease {ns}/{name}: {e}"))
}

fn holder(lease: &Option<Lease>) -> Option<String> {
    lease
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.holder_identity.clone())
}

// ---------------------------------------------------------------------------------------------
// 1. Cluster-wide, on a private bed
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_works_with_exactly_the_charts_rbac_cluster_wide() {
    bounded("the cluster-wide RBAC test", cluster_wide()).await;
}

async fn cluster_wide() {
    let started = Instant::now();
    let mut bed = Bed::private("rbac-cluster").await;
    let scratch = Scratch::new("cluster");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("trackvia-system").await;
    let team_a = bed.namespace("team-a").await;
    let team_b = bed.namespace("team-b").await;
    publish_ca(&bed, &release_ns, &fake, false).await;
    // Default values otherwise: one replica, cluster mode, no restarts, no leader election.
    let release = Release::install(
        &bed,
        &release_ns,
        &base_values(&fake, "configMapName"),
        &scratch,
    )
    .await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;

    sa.assert_access(&[
        // What the operator needs, in every namespace.
        ("list", "secrets", "", true),
        ("watch", "secrets", "", true),
        ("get", "secrets", &team_a, true),
        ("create", "secrets", &team_a, true),
        ("patch", "secrets", &team_a, true),
        ("list", "trackviaconnections.trackvia.io", "", true),
        ("watch", "trackviaconnections.trackvia.io", "", true),
        (
            "patch",
            "trackviaconnections.trackvia.io/status",
            &team_b,
            true,
        ),
        ("create", "events.events.k8s.io", &team_b, true),
        ("patch", "events.events.k8s.io", &team_b, true),
        // What it must not be able to do.
        ("delete", "secrets", &team_a, false),
        ("delete", "secrets", &release_ns, false),
        ("update", "secrets", &team_a, false),
        ("deletecollection", "secrets", &team_a, false),
        ("patch", "deployments.apps", &team_a, false),
        ("get", "deployments.apps", &team_a, false),
        ("patch", "statefulsets.apps", &team_a, false),
        ("patch", "daemonsets.apps", &team_a, false),
        ("create", "trackviaconnections.trackvia.io", &team_a, false),
        ("update", "trackviaconnections.trackvia.io", &team_a, false),
        ("delete", "trackviaconnections.trackvia.io", &team_a, false),
        (
            "update",
            "trackviaconnections.trackvia.io/status",
            &team_a,
            false,
        ),
        // Leader election is on by default: its Lease, in the release namespace only.
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("create", "leases.coordination.k8s.io", &team_a, false),
        ("create", "events", &team_a, false),
        ("list", "configmaps", &team_a, false),
        ("list", "pods", &team_a, false),
        ("list", "namespaces", "", false),
        ("create", "serviceaccounts/token", &release_ns, false),
        ("impersonate", "serviceaccounts", &release_ns, false),
        ("bind", "clusterroles.rbac.authorization.k8s.io", "", false),
        (
            "escalate",
            "clusterroles.rbac.authorization.k8s.io",
            "",
            false,
        ),
        (
            "patch",
            "customresourcedefinitions.apiextensions.k8s.io",
            "",
            false,
        ),
    ])
    .await;

    let mut pod = Pod::start(&bed, &release, &sa, &scratch, "0").await;
    assert!(
        pod.flag("--namespaces").is_none(),
        "the default values run the operator cluster-wide: {:?}",
        pod.args
    );
    // One replica elects itself too: it uses the chart's Lease RBAC.
    assert!(pod.args.iter().any(|a| a == "--leader-election"));
    pod.wait_ready().await;
    pod.wait_leading().await;

    let mut credentials = Vec::new();
    let a = Place::new(&bed, &team_a, &fake);
    let b = Place::new(&bed, &team_b, &fake);

    // A valid connection: Verified, and its Secret published.
    let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
    a.put_source("api-user", &key, &token).await;
    a.apply("crm", "api-user", json!({})).await;
    // A revoked token: Unauthorized, nothing published.
    let (bad_key, bad_token) = credential(&fake, Behavior::Revoked, &mut credentials);
    a.put_source("revoked-user", &bad_key, &bad_token).await;
    a.apply("revoked", "revoked-user", json!({})).await;
    // A connection whose Secret does not exist yet, in another namespace.
    b.apply("later", "later-user", json!({})).await;

    let crm = a.wait_ready("crm", "True", "Verified").await;
    let published = a.secrets().get("crm").await.expect("the output Secret");
    assert_eq!(
        secret_text(&published, "apiKey").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(
        secret_text(&published, "authToken").as_deref(),
        Some(token.as_str())
    );
    let owner = &published
        .metadata
        .owner_references
        .as_ref()
        .expect("the output Secret has an owner")[0];
    assert_eq!(Some(&owner.uid), crm.metadata.uid.as_ref());
    let revoked = a.wait_ready("revoked", "False", "Unauthorized").await;
    let verified = revoked
        .status
        .as_ref()
        .and_then(|s| s.condition("Verified"))
        .expect("a Verified condition");
    assert!(verified.message.contains("401"), "{verified:?}");
    assert!(a.secrets().get_opt("revoked").await.unwrap().is_none());
    b.wait_ready("later", "False", "CredentialsNotFound").await;

    // Events through events.k8s.io, as the ServiceAccount, from the pod named by the
    // Deployment's downward-API POD_NAME.
    let event = a.wait_event("revoked", "Unauthorized", "Warning").await;
    assert_eq!(event.reporting_instance.as_deref(), Some(pod.name.as_str()));
    // Ready at the first answer records no event: the status says it. (Events
    // are recorded before the status is written, so none can still be coming.)
    assert_eq!(a.events_of("crm").await, Vec::<String>::new());
    b.wait_event("later", "CredentialsNotFound", "Warning")
        .await;

    // The Secret appears: the operator notices (cluster-wide Secret watch) and recovers.
    let (late_key, late_token) = credential(&fake, Behavior::Valid, &mut credentials);
    b.put_source("later-user", &late_key, &late_token).await;
    b.wait_ready("later", "True", "Verified").await;
    b.wait_event("later", "Verified", "Normal").await;
    assert!(b.secrets().get_opt("later").await.unwrap().is_some());

    // What the ServiceAccount cannot do, tried for real.
    assert_forbidden(
        Api::<Secret>::namespaced(sa.client.clone(), &team_a)
            .delete("crm", &DeleteParams::default())
            .await,
        "the ServiceAccount deleting a Secret",
    );
    assert_forbidden(
        Api::<Deployment>::namespaced(sa.client.clone(), &release_ns)
            .patch(
                &release.fullname(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await,
        "the ServiceAccount patching a Deployment",
    );
    assert!(a.secrets().get_opt("crm").await.unwrap().is_some());

    pod.assert_clean_log(&credentials);
    pod.stop_cleanly().await;
    eprintln!("cluster-wide test took {:?}", started.elapsed());
    drop(release);
    bed.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Scoped mode
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_mode_touches_only_listed_namespaces() {
    bounded("the scoped-mode RBAC test", scoped()).await;
}

async fn scoped() {
    let started = Instant::now();
    let mut bed = Bed::shared().await;
    let scratch = Scratch::new("scoped");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("rbac-scoped").await;
    let ns_a = bed.namespace("rbac-scoped-a").await;
    let ns_b = bed.namespace("rbac-scoped-b").await;
    let ns_c = bed.namespace("rbac-scoped-c").await;
    publish_ca(&bed, &release_ns, &fake, false).await;
    let mut values = base_values(&fake, "configMapName");
    values["watchNamespaces"] = json!([ns_a, ns_b]);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;

    sa.assert_access(&[
        ("list", "secrets", &ns_a, true),
        ("watch", "secrets", &ns_b, true),
        ("list", "trackviaconnections.trackvia.io", &ns_a, true),
        (
            "patch",
            "trackviaconnections.trackvia.io/status",
            &ns_b,
            true,
        ),
        ("create", "events.events.k8s.io", &ns_a, true),
        ("list", "secrets", &ns_c, false),
        ("get", "secrets", &ns_c, false),
        ("list", "trackviaconnections.trackvia.io", &ns_c, false),
        (
            "patch",
            "trackviaconnections.trackvia.io/status",
            &ns_c,
            false,
        ),
        ("create", "events.events.k8s.io", &ns_c, false),
        ("list", "secrets", &release_ns, false),
        ("list", "secrets", "", false),
        ("list", "trackviaconnections.trackvia.io", "", false),
        ("delete", "secrets", &ns_a, false),
        ("patch", "deployments.apps", &ns_a, false),
    ])
    .await;
    assert_forbidden(
        Api::<Secret>::namespaced(sa.client.clone(), &ns_c)
            .list(&ListParams::default())
            .await,
        "the ServiceAccount listing Secrets outside its namespaces",
    );

    let mut pod = Pod::start(&bed, &release, &sa, &scratch, "0").await;
    assert_eq!(
        pod.flag("--namespaces"),
        Some(format!("{ns_a},{ns_b}").as_str()),
        "{:?}",
        pod.args
    );
    pod.wait_ready().await;

    let mut credentials = Vec::new();
    let places: Vec<Place> = [&ns_a, &ns_b, &ns_c]
        .iter()
        .map(|ns| Place::new(&bed, ns, &fake))
        .collect();
    let mut keys = Vec::new();
    for place in &places {
        let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
        place.put_source("api-user", &key, &token).await;
        place.apply("crm", "api-user", json!({})).await;
        keys.push((key, token));
    }
    let applied = Instant::now();
    for place in &places[..2] {
        place.wait_ready("crm", "True", "Verified").await;
        assert!(place.secrets().get_opt("crm").await.unwrap().is_some());
        // Events are written in each watched namespace (Ready at the first
        // answer records none; a refusal does).
        let (bad_key, bad_token) = credential(&fake, Behavior::Revoked, &mut credentials);
        place.put_source("revoked-user", &bad_key, &bad_token).await;
        place.apply("revoked", "revoked-user", json!({})).await;
        place.wait_event("revoked", "Unauthorized", "Warning").await;
    }
    // Namespace c: never read, called for, written to or reported on.
    let c = &places[2];
    let untouched_version = c.version_of_connection("crm").await;
    tokio::time::sleep(UNTOUCHED_FOR.saturating_sub(applied.elapsed())).await;
    let tvc = c.connection("crm").await;
    assert!(
        tvc.status.is_none(),
        "c's connection got a status: {:?}",
        tvc.status
    );
    assert_eq!(
        tvc.metadata.resource_version.as_deref(),
        Some(untouched_version.as_str())
    );
    assert!(
        c.secrets().get_opt("crm").await.unwrap().is_none(),
        "a Secret was published in c"
    );
    assert!(c.events().await.is_empty(), "the operator reported on c");
    assert_eq!(
        fake.calls_for(&keys[2].0, &keys[2].1),
        0,
        "c's credentials were sent to TrackVia"
    );
    assert_eq!(pod.metric("trackvia_secret_writes_total").await, 2.0);

    pod.assert_clean_log(&credentials);
    pod.stop_cleanly().await;
    eprintln!("scoped test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Leader election
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_hands_over() {
    bounded("the leader-election test", leader_election()).await;
}

async fn leader_election() {
    let started = Instant::now();
    let mut bed = Bed::shared().await;
    let scratch = Scratch::new("leader");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("rbac-leader").await;
    let work_ns = bed.namespace("rbac-leader-work").await;
    publish_ca(&bed, &release_ns, &fake, true).await;
    let mut values = base_values(&fake, "secretName");
    values["replicaCount"] = json!(3);
    values["watchNamespaces"] = json!([work_ns]);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let lease_name = release.fullname();
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    let lease_by_name = format!("leases.coordination.k8s.io={lease_name}");
    let other_lease = format!("leases.coordination.k8s.io={lease_name}-other");
    sa.assert_access(&[
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("get", &lease_by_name, &release_ns, true),
        ("patch", &lease_by_name, &release_ns, true),
        ("update", &lease_by_name, &release_ns, true),
        ("get", &other_lease, &release_ns, false),
        ("patch", &other_lease, &release_ns, false),
        ("delete", &lease_by_name, &release_ns, false),
        ("list", "leases.coordination.k8s.io", &release_ns, false),
        ("create", "leases.coordination.k8s.io", &work_ns, false),
    ])
    .await;

    // Two pods of the Deployment, started together.
    let mut first = Pod::start(&bed, &release, &sa, &scratch, "a").await;
    let mut second = Pod::start(&bed, &release, &sa, &scratch, "b").await;
    for pod in [&first, &second] {
        assert!(
            pod.args.iter().any(|a| a == "--leader-election"),
            "{:?}",
            pod.args
        );
        assert_eq!(
            pod.flag("--leader-election-namespace"),
            Some(release_ns.as_str())
        );
        assert_eq!(
            pod.flag("--leader-election-lease-name"),
            Some(lease_name.as_str())
        );
    }
    first.wait_ready().await;
    second.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut leader, mut standby) = loop {
        let (x, y) = (
            first.metric("trackvia_operator_leader").await,
            second.metric("trackvia_operator_leader").await,
        );
        match (x, y) {
            (1.0, 0.0) => break (first, second),
            (0.0, 1.0) => break (second, first),
            (1.0, 1.0) => panic!("both pods lead"),
            _ if Instant::now() >= deadline => panic!(
                "no leader after 20 s;\n--- a ---\n{}\n--- b ---\n{}",
                first.process.logs(),
                second.process.logs()
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    eprintln!("{} leads, {} stands by", leader.name, standby.name);
    assert_eq!(
        holder(&lease(&bed, &release_ns, &lease_name).await),
        Some(leader.lease_identity())
    );

    // Connections become Ready; only the leader calls TrackVia and writes.
    let mut credentials = Vec::new();
    let work = Place::new(&bed, &work_ns, &fake);
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
        let source = format!("{name}-user");
        work.put_source(&source, &key, &token).await;
        work.apply(name, &source, json!({})).await;
        keys.push((key, token));
    }
    for name in ["one", "two"] {
        work.wait_ready(name, "True", "Verified").await;
    }
    // Give a second writer, if there were one, time to show itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let standby_metrics = standby.metrics().await;
    for counter in [
        "trackvia_status_writes_total",
        "trackvia_secret_writes_total",
        "trackvia_operator_leader",
    ] {
        assert_eq!(
            series(&standby_metrics, counter).unwrap_or(0.0),
            0.0,
            "standby {counter}"
        );
    }
    assert!(
        !standby_metrics.contains("trackvia_verifications_total{"),
        "the standby verified"
    );
    // One status per connection is what the change calls for; see `note_extra_writes`.
    let leader_writes = leader.metric("trackvia_status_writes_total").await;
    assert!(
        leader_writes >= 2.0,
        "the leader wrote {leader_writes} statuses"
    );
    note_extra_writes(&leader, leader_writes, 2.0);
    assert_eq!(leader.metric("trackvia_secret_writes_total").await, 2.0);
    for (key, token) in &keys {
        assert_eq!(fake.calls_for(key, token), 1);
    }
    let versions_before: Vec<(String, String)> = {
        let mut v = Vec::new();
        for name in ["one", "two"] {
            v.push((
                work.version_of_connection(name).await,
                work.version_of_secret(name).await,
            ));
        }
        v
    };
    let lease_before = lease(&bed, &release_ns, &lease_name).await;
    let transitions_before = lease_before
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);

    // The leader dies without releasing the Lease; the standby takes over once it expires.
    leader.process.kill();
    let killed = Instant::now();
    let deadline = killed + HANDOVER_TIMEOUT;
    while standby.metric("trackvia_operator_leader").await != 1.0 {
        assert!(
            standby.process.is_running(),
            "the standby exited; its log:\n{}",
            standby.process.logs()
        );
        assert!(
            Instant::now() < deadline,
            "the standby did not take over within {HANDOVER_TIMEOUT:?}; its log:\n{}",
            standby.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let handover = killed.elapsed();
    eprintln!(
        "{} took over {handover:?} after the leader was killed",
        standby.name
    );
    let lease_after = lease(&bed, &release_ns, &lease_name).await;
    assert_eq!(holder(&lease_after), Some(standby.lease_identity()));
    assert!(
        lease_after
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0)
            > transitions_before,
        "leaseTransitions did not grow: {lease_after:?}"
    );
    let mut new_leader = standby;

    // The new leader goes over what the old one settled and writes nothing: not a status,
    // not a Secret, not a call to TrackVia.
    wait_reconciled(&new_leader, 2.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for counter in [
        "trackvia_status_writes_total",
        "trackvia_secret_writes_total",
    ] {
        assert_eq!(
            new_leader.metric(counter).await,
            0.0,
            "{counter} of the new leader for connections settled before the handover"
        );
    }
    for (i, name) in ["one", "two"].iter().enumerate() {
        assert_eq!(
            (
                work.version_of_connection(name).await,
                work.version_of_secret(name).await
            ),
            versions_before[i],
            "{name} was written again after the handover"
        );
        assert_eq!(
            fake.calls_for(&keys[i].0, &keys[i].1),
            1,
            "{name} re-verified"
        );
    }

    // A connection created after the handover is reconciled by the new leader.
    let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
    work.put_source("three-user", &key, &token).await;
    work.apply("three", "three-user", json!({})).await;
    work.wait_ready("three", "True", "Verified").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = new_leader.metric("trackvia_status_writes_total").await;
    assert!(writes >= 1.0, "the new leader wrote no status");
    note_extra_writes(&new_leader, writes, 1.0);
    assert_eq!(new_leader.metric("trackvia_secret_writes_total").await, 1.0);
    assert_eq!(fake.calls_for(&key, &token), 1);
    new_leader.assert_clean_log(&credentials);
    leader.assert_clean_log(&credentials);

    // A clean stop hands the Lease back at once.
    new_leader.stop_cleanly().await;
    let stopped = Instant::now();
    let released = loop {
        let current = lease(&bed, &release_ns, &lease_name).await;
        if holder(&current).is_none() {
            break current;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the Lease is still held 5 s after a clean stop: {current:?}; log:\n{}",
            new_leader.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        released
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .is_none(),
        "{released:?}"
    );

    eprintln!("leader-election test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 4. helm upgrade
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_keeps_connections_ready() {
    bounded("the upgrade test", upgrade()).await;
}

async fn upgrade() {
    let started = Instant::now();
    let mut bed = Bed::shared().await;
    let scratch = Scratch::new("upgrade");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("rbac-upgrade").await;
    let first_ns = bed.namespace("rbac-upgrade-one").await;
    let second_ns = bed.namespace("rbac-upgrade-two").await;
    publish_ca(&bed, &release_ns, &fake, true).await;
    let mut values = base_values(&fake, "secretName");
    values["watchNamespaces"] = json!([first_ns]);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    let lease_name = release.fullname();
    let lease_by_name = format!("leases.coordination.k8s.io={lease_name}");

    // A consumer of the published Secret, to be restarted once restarts are allowed.
    let consumer: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {
                "metadata": {"labels": {"app": "consumer"}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/consumer:1"}]},
            },
        },
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(bed.client.clone(), &first_ns)
        .create(&PostParams::default(), &consumer)
        .await
        .expect("creating the consumer Deployment");

    let mut before = Pod::start(&bed, &release, &sa, &scratch, "v1").await;
    before.wait_ready().await;
    let mut credentials = Vec::new();
    let one = Place::new(&bed, &first_ns, &fake);
    let two = Place::new(&bed, &second_ns, &fake);
    let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
    one.put_source("api-user", &key, &token).await;
    one.apply(
        "crm",
        "api-user",
        json!({"rolloutRestartTargets": [{"kind": "Deployment", "name": "consumer"}]}),
    )
    .await;
    one.wait_ready("crm", "True", "Verified").await;
    // One replica elects itself too (its Lease only).
    sa.assert_access(&[
        ("patch", "deployments.apps", &first_ns, false),
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("get", &lease_by_name, &release_ns, true),
        ("list", "secrets", &second_ns, false),
    ])
    .await;

    // Upgrade: a second namespace, two replicas, restarts, debug logs.
    values["watchNamespaces"] = json!([first_ns, second_ns]);
    values["replicaCount"] = json!(2);
    values["rolloutRestart"] = json!({"enabled": true});
    values["logLevel"] = json!("debug");
    release.upgrade(&bed, &values, &scratch).await;
    sa.assert_access(&[
        ("get", "deployments.apps", &first_ns, true),
        ("patch", "deployments.apps", &first_ns, true),
        ("patch", "statefulsets.apps", &second_ns, true),
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("get", &lease_by_name, &release_ns, true),
        ("patch", &lease_by_name, &release_ns, true),
        ("list", "secrets", &second_ns, true),
        ("delete", "secrets", &first_ns, false),
        ("delete", "deployments.apps", &first_ns, false),
    ])
    .await;

    // The rollout: the old pod stops, a new one starts with the upgraded spec.
    let settled = (
        one.version_of_connection("crm").await,
        one.version_of_secret("crm").await,
    );
    before.assert_clean_log(&credentials);
    before.stop_cleanly().await;
    let mut after = Pod::start(&bed, &release, &sa, &scratch, "v2").await;
    assert_eq!(after.flag("--log-level"), Some("debug"));
    assert_eq!(
        after.flag("--namespaces"),
        Some(format!("{first_ns},{second_ns}").as_str())
    );
    assert!(after.args.iter().any(|a| a == "--leader-election"));
    after.wait_ready().await;
    after.wait_leading().await;
    assert_eq!(
        holder(&lease(&bed, &release_ns, &lease_name).await),
        Some(after.lease_identity())
    );

    // The settled connection is gone over and left as it was.
    wait_reconciled(&after, 1.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(after.metric("trackvia_status_writes_total").await, 0.0);
    assert_eq!(after.metric("trackvia_secret_writes_total").await, 0.0);
    assert_eq!(
        (
            one.version_of_connection("crm").await,
            one.version_of_secret("crm").await
        ),
        settled,
        "the upgrade rewrote a settled connection"
    );
    let crm = one.connection("crm").await;
    assert_eq!(
        ready_reason(&crm),
        Some(("True".to_string(), "Verified".to_string()))
    );
    assert_eq!(
        fake.calls_for(&key, &token),
        1,
        "re-verified after the upgrade"
    );

    // The newly watched namespace works.
    let (key2, token2) = credential(&fake, Behavior::Valid, &mut credentials);
    two.put_source("api-user", &key2, &token2).await;
    two.apply("crm", "api-user", json!({})).await;
    two.wait_ready("crm", "True", "Verified").await;
    assert!(two.secrets().get_opt("crm").await.unwrap().is_some());

    // A new token: the content changes, and the consumer is restarted under the new RBAC.
    let rotated = secret_value("t");
    credentials.push(rotated.clone());
    fake.set(&key, &rotated, Behavior::Valid);
    one.put_source("api-user", &key, &rotated).await;
    wait_for(
        &one.connections(),
        "crm",
        SETTLE,
        "the RolloutRestart condition to be True",
        |t: &TrackViaConnection| {
            t.status
                .as_ref()
                .and_then(|s| s.condition("RolloutRestart"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await;
    let consumer = Api::<Deployment>::namespaced(bed.client.clone(), &first_ns)
        .get("consumer")
        .await
        .expect("the consumer Deployment");
    let annotations = consumer
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        annotations.contains_key("trackvia.io/restartedAt"),
        "{annotations:?}"
    );
    one.wait_event("crm", "RolloutRestarted", "Normal").await;
    let published = one.secrets().get("crm").await.expect("the output Secret");
    assert_eq!(
        secret_text(&published, "authToken").as_deref(),
        Some(rotated.as_str())
    );

    after.assert_clean_log(&credentials);
    after.stop_cleanly().await;
    eprintln!("upgrade test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}
