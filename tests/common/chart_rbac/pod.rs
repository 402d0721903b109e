//! The operator started the way the chart's Deployment starts it, with its volumes projected
//! into a scratch directory and the downward-API variables set.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{OPERATOR, plain_get};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret};
use kube::Client;
use kube::api::Api;
use trackvia_testsupport::metrics::series;
use trackvia_testsupport::{OperatorProcess, free_port};

use super::*;

/// One operator process standing in for a pod of the chart's Deployment.
pub struct Pod {
    pub name: String,
    pub args: Vec<String>,
    pub metrics_port: u16,
    pub process: OperatorProcess,
}

/// Writes the ConfigMap and Secret volumes `container` mounts into `root`, as the kubelet
/// would; returns (mount path, local directory) pairs.
pub async fn project_volumes(
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
    pub async fn start(
        bed: &Bed,
        release: &Release,
        identity: &Identity,
        scratch: &Scratch,
        suffix: &str,
    ) -> Pod {
        let spec = chart_pod_spec(release, identity, release.deployment(bed).await);
        let container = &spec.containers[0];
        let name = format!("{}-{suffix}", release.fullname());
        let files = scratch.subdir(&format!("pod-{suffix}"));
        let mounts =
            project_volumes(&bed.client, &release.namespace, &spec, container, &files).await;
        let metrics_port = free_port();
        let args = local_args(container, &mounts, metrics_port);
        let mut env = downward_env(container, &release.namespace, &name);
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
    pub fn lease_identity(&self) -> String {
        format!("{}-{}", self.name, self.process.pid())
    }

    pub fn flag(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.args
            .iter()
            .find_map(|a| a.strip_prefix(prefix.as_str()))
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&mut self) {
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
    pub async fn wait_leading(&self) {
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

    pub async fn metrics(&self) -> String {
        plain_get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .map(|r| r.1)
            .unwrap_or_else(|e| panic!("scraping {}: {e}", self.name))
    }

    /// The value of an unlabelled sample (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        series(&self.metrics().await, name).unwrap_or(0.0)
    }

    /// Panics if the log shows an RBAC refusal, a failed event, a failed reconcile or one of
    /// the `credentials`.
    pub fn assert_clean_log(&self, credentials: &[String]) {
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
    pub async fn stop_cleanly(&mut self) {
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

/// The pod spec of the release's Deployment, checked to run the operator binary, alone, as the
/// chart's ServiceAccount (which `identity` must be).
fn chart_pod_spec(release: &Release, identity: &Identity, deployment: Deployment) -> PodSpec {
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
    spec
}

/// The container's arguments with its mounts replaced by their local directories and the
/// metrics served on loopback at `metrics_port`.
fn local_args(
    container: &Container,
    mounts: &[(String, PathBuf)],
    metrics_port: u16,
) -> Vec<String> {
    container
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
        .collect()
}

/// The container's environment, the downward-API variables filled in for pod `name` in `namespace`.
fn downward_env(container: &Container, namespace: &str, name: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                Some("metadata.namespace") => namespace.to_string(),
                Some("metadata.name") => name.to_string(),
                other => panic!("env {} comes from {other:?}; provide it here", var.name),
            },
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    env
}

/// Waits until `pod` has finished at least `count` reconciles.
pub async fn wait_reconciled(pod: &Pod, count: f64) {
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
pub fn note_extra_writes(pod: &Pod, writes: f64, changes: f64) {
    if writes > changes {
        eprintln!(
            "note: {} wrote {writes} statuses for {changes} changes (a reconcile read a stale \
             copy of a connection)",
            pod.name
        );
    }
}
