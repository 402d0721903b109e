//! Harness of the chart RBAC tests: the operator run as the chart's ServiceAccount, with the
//! arguments, environment and mounted files of the chart's Deployment, on the shared bed or a
//! private one. Shared here: bounds, names, scratch directories and small connection helpers.

pub mod bed;
pub mod identity;
pub mod place;
pub mod pod;
pub mod release;

// Each test binary uses only some of these.
#[allow(unused_imports)]
pub use self::{bed::*, identity::*, place::*, pod::*, release::*};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::secret_value;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};

/// Upper bound of one test, set-up and tear-down included.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Upper bound of one helm call.
pub const HELM_TIMEOUT: Duration = Duration::from_secs(90);
/// Upper bound of `hack/testbed up` for the private bed.
pub const BED_UP_TIMEOUT: Duration = Duration::from_secs(150);
/// The lease duration the operator asks for (`with_duration(15)`), plus what a standby
/// needs to notice the expiry, clear the Lease and take it.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a namespace the operator must not touch is watched for a write.
pub const UNTOUCHED_FOR: Duration = Duration::from_secs(10);
/// The reporting controller of the operator's events.
pub const REPORTER: &str = "trackvia-operator";
/// What the API server says in every RBAC refusal; never expected in the operator's log.
pub const FORBIDDEN: &str = "is forbidden";

/// Six random lowercase letters and digits, for names.
pub fn random_suffix() -> String {
    secret_value("").chars().take(6).collect()
}

/// Runs `test`, failing if it takes longer than [`TEST_TIMEOUT`]. On timeout the test's
/// future is dropped, so its guards stop the operators, uninstall and clean up.
pub async fn bounded(name: &str, test: impl Future<Output = ()>) {
    super::within(TEST_TIMEOUT, name, test).await;
}

/// A directory of its own under the target's scratch space; removed when the test passes,
/// kept (and named) when it fails.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("chart-rbac")
            .join(format!("{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch { dir }
    }

    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
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

    pub fn subdir(&self, name: &str) -> PathBuf {
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

/// A fresh API key and token known to `fake` with behaviour `b`, remembered for the log audit.
pub fn credential(
    fake: &FakeTrackVia,
    b: Behavior,
    remember: &mut Vec<String>,
) -> (String, String) {
    let key = secret_value("k");
    let token = secret_value("t");
    fake.add_api_key(&key);
    fake.set(&key, &token, b);
    remember.push(key.clone());
    remember.push(token.clone());
    (key, token)
}

pub fn ready_reason(t: &TrackViaConnection) -> Option<(String, String)> {
    t.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| (c.status.to_string(), c.reason.to_string()))
}

/// The values every test starts from: the fake's host allowed and its CA trusted through
/// `extraCA` (`source` is `secretName` or `configMapName`, holding `ca.crt`).
pub fn base_values(fake: &FakeTrackVia, source: &str) -> Value {
    json!({
        "allowedHosts": [fake.host()],
        "extraCA": {source: "trackvia-ca", "key": "ca.crt"},
    })
}

/// The fake's CA as an administrator provides it: ConfigMap or Secret `trackvia-ca`.
pub async fn publish_ca(bed: &Bed, ns: &str, fake: &FakeTrackVia, as_secret: bool) {
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

pub async fn lease(bed: &Bed, ns: &str, name: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(bed.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading Lease {ns}/{name}: {e}"))
}

pub fn holder(lease: &Option<Lease>) -> Option<String> {
    lease
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.holder_identity.clone())
}
