//! The chart on a real node, for tests/node.rs: the release's names, creating objects,
//! Helm on the private bed, waits on pods, rollouts and the Lease, the connections checked
//! through the fake TrackVia, and the audit log's account of who wrote.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::audit::audited_writes;
use trackvia_testsupport::bed::PrivateBed;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::kube::wait_for;

pub const RELEASE: &str = "tvo";
pub const NAMESPACE: &str = "trackvia-system";
pub const APPS: &str = "apps";
/// The release's full name: Deployment, Lease, ServiceAccount.
pub const FULLNAME: &str = "tvo-trackvia-operator";
pub const PODS: &str = "app.kubernetes.io/instance=tvo,app.kubernetes.io/component=controller";
pub const IMAGE_REPOSITORY: &str = "localhost/trackvia-operator";
pub const IMAGE_TAG: &str = "node-test";
/// The chart's default Lease duration: a handover must not take longer.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// Where the node's pods reach the host's loopback ports (hack/node expose).
pub const EXPOSED_ADDRESS: &str = "10.0.0.2";

pub async fn create<K>(api: &Api<K>, body: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(body).expect("an object literal");
    api.create(&PostParams::default(), &object)
        .await
        .expect("creating an object");
}

pub async fn helm(bed: &PrivateBed, args: &[&str]) {
    let (dir, args) = (
        bed.dir().to_path_buf(),
        args.iter().map(|a| a.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || PrivateBed::helm_in(&dir, args))
        .await
        .expect("the helm thread");
}

pub fn ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until exactly `count` operator pods exist, all Running and Ready; their names.
pub async fn wait_pods(client: &kube::Client, count: usize, within: Duration) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + within;
    loop {
        let pods = api
            .list(&ListParams::default().labels(PODS))
            .await
            .expect("listing pods");
        let live: Vec<&Pod> = pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if pods.items.len() == count && live.iter().all(|p| ready(p)) {
            return live
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
        }
        if Instant::now() > deadline {
            let states: Vec<Value> = pods
                .items
                .iter()
                .map(|p| json!({"name": p.metadata.name, "status": p.status}))
                .collect();
            panic!("not {count} Ready operator pods after {within:?}:\n{states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the Deployment's pods are all of its latest template and Ready; their names.
pub async fn wait_rollout(client: &kube::Client, within: Duration) -> Vec<String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(&api, FULLNAME, within, "the rollout", |d| {
        let status = d.status.clone().unwrap_or_default();
        status.observed_generation >= d.metadata.generation
            && status.updated_replicas == Some(2)
            && status.ready_replicas == Some(2)
            && status.replicas == Some(2)
    })
    .await;
    wait_pods(client, 2, within).await
}

/// Waits until one of `pods` holds the Lease; its name.
pub async fn wait_leader(client: &kube::Client, pods: &[String], within: Duration) -> String {
    wait_holder(client, within, |pod| pods.iter().any(|p| p == pod)).await
}

/// Waits until the Lease is held by a pod `accept`s (a holder is `<pod>-<pid>`); that pod.
pub async fn wait_holder(
    client: &kube::Client,
    within: Duration,
    accept: impl Fn(&str) -> bool,
) -> String {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + within;
    loop {
        let holder = api
            .get_opt(FULLNAME)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        if let Some((pod, _pid)) = holder.rsplit_once('-').filter(|(pod, _)| accept(pod)) {
            return pod.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no expected pod holds the Lease after {within:?} (holder {holder:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connections in the `apps` namespace, checked by the fake TrackVia.
#[derive(Clone)]
pub struct Connection {
    pub api: Api<TrackViaConnection>,
    pub secrets: Api<Secret>,
    pub host: String,
    pub key: String,
    pub token: String,
}

impl Connection {
    pub fn new(client: &kube::Client, fake: &FakeTrackVia, host: &str) -> Connection {
        let (key, token) = (
            "node-key-5a0c9e".to_string(),
            "node-token-e41f27".to_string(),
        );
        fake.add_api_key(&key);
        fake.set(&key, &token, Behavior::Valid);
        Connection {
            api: Api::namespaced(client.clone(), APPS),
            secrets: Api::namespaced(client.clone(), APPS),
            host: host.to_string(),
            key,
            token,
        }
    }

    pub async fn apply(&self, name: &str) {
        let source = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-source")},
            "stringData": {"apiKey": self.key, "authToken": self.token}});
        let params = PatchParams::apply("trackvia-tests").force();
        self.secrets
            .patch(&format!("{name}-source"), &params, &Patch::Apply(&source))
            .await
            .expect("the source");
        let body = json!({"apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
            "metadata": {"name": name},
            "spec": {"host": self.host, "credentialsSecretRef": {"name": format!("{name}-source")}}});
        self.api
            .patch(name, &params, &Patch::Apply(&body))
            .await
            .expect("the connection");
    }

    pub async fn wait_ready(&self, name: &str) {
        wait_for(
            &self.api,
            name,
            Duration::from_secs(60),
            "Ready=True",
            |c| {
                c.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            },
        )
        .await;
    }

    /// Neither the key nor the token appears in the running operator pods' logs (read where
    /// the kubelet writes them, at debug level after the upgrade), in events or in statuses.
    pub async fn assert_no_leaks(&self, client: &kube::Client) {
        let mut logs = String::new();
        let prefix = format!("{NAMESPACE}_");
        for dir in std::fs::read_dir("/var/log/pods").expect("the kubelet's pod logs") {
            let dir = dir.expect("an entry").path();
            if !dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            {
                continue;
            }
            for container in std::fs::read_dir(&dir).expect("a pod's log directory") {
                for file in std::fs::read_dir(container.expect("an entry").path()).expect("logs") {
                    let path = file.expect("an entry").path();
                    logs.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                }
            }
        }
        assert!(
            logs.len() > 100,
            "the operator pods logged almost nothing: {logs}"
        );
        let events: Api<Event> = Api::all(client.clone());
        let events = events.list(&ListParams::default()).await.expect("events");
        let statuses = self
            .api
            .list(&ListParams::default())
            .await
            .expect("connections");
        let statuses: Vec<_> = statuses.items.iter().map(|c| &c.status).collect();
        for (what, text) in [
            ("logs", logs),
            ("events", serde_json::to_string(&events).expect("JSON")),
            ("statuses", serde_json::to_string(&statuses).expect("JSON")),
        ] {
            for secret in [&self.key, &self.token] {
                assert!(
                    !text.contains(secret.as_str()),
                    "a credential appears in the {what}"
                );
            }
        }
    }

    /// Asks for a verification of `name` every second, until aborted.
    pub async fn poke_forever(self, name: &'static str) {
        for n in 0u64.. {
            let body = json!({"metadata": {"annotations": {"trackvia.io/verify-requested-at": n.to_string()}}});
            let _ = self
                .api
                .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The operator's writes to connections and Secrets in the audit log, in order, come in one
/// block per process: no process writes again once another has written.
pub fn assert_one_writer_at_a_time(bed: &PrivateBed) {
    let mut writes: Vec<(jiff::Timestamp, String)> = audited_writes(bed.dir())
        .into_iter()
        .filter(|w| matches!(w.resource.as_str(), "trackviaconnections" | "secrets"))
        .filter_map(|w| {
            let writer = w
                .user_agent
                .strip_prefix("trackvia-operator/")?
                .split_once(" (")?
                .1
                .trim_end_matches(')')
                .to_string();
            Some((w.received, writer))
        })
        .collect();
    writes.sort();
    let mut blocks: Vec<&str> = Vec::new();
    for (_, writer) in &writes {
        if blocks.last() != Some(&writer.as_str()) {
            blocks.push(writer);
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for writer in &blocks {
        *seen.entry(writer).or_default() += 1;
    }
    eprintln!(
        "{} writes by the operator, in blocks by {blocks:?}",
        writes.len()
    );
    assert!(blocks.len() >= 3, "three leaders wrote in turn: {blocks:?}");
    assert!(
        seen.values().all(|n| *n == 1),
        "a process wrote again after another had: {blocks:?}"
    );
}
