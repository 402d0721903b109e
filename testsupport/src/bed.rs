//! A control plane of a test's own: `hack/testbed up` in a scratch directory, stopped on drop.
//! For tests that install cluster-wide objects (the CRD, with the chart) which the shared bed
//! `KUBECONFIG` points at cannot take without disturbing the tests running beside them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::kube::install_crypto_provider;
use crate::tools::{repo_root, tool};

/// Seconds `hack/testbed up` may wait for the API server.
const READY_TIMEOUT_SECONDS: &str = "120";

/// A private test bed; `hack/testbed down` runs when it is dropped. Its logs are kept when
/// the test panicked.
pub struct PrivateBed {
    dir: tempfile::TempDir,
}

fn testbed(command: &str, dir: &Path) -> Result<(), String> {
    let script = repo_root().join("hack/testbed");
    let out = Command::new(&script)
        .arg(command)
        .arg(dir)
        .env("TESTBED_TIMEOUT", READY_TIMEOUT_SECONDS)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "hack/testbed {command} {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PrivateBed {
    /// Starts a bed from the test bed's cache. Panics with instructions when the binaries are
    /// missing or the bed does not come up.
    pub fn up(label: &str) -> PrivateBed {
        for binary in ["kube-apiserver", "etcd"] {
            tool(binary);
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("trackvia-{label}-"))
            .tempdir()
            .expect("creating the private bed's directory");
        let bed = PrivateBed { dir };
        testbed("up", bed.dir.path()).unwrap_or_else(|e| panic!("{e}"));
        bed
    }

    /// The administrator's kubeconfig of this bed.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A client for the administrator of this bed.
    pub async fn client(&self) -> Client {
        install_crypto_provider();
        let path = self.kubeconfig();
        let kubeconfig = Kubeconfig::read_from(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap_or_else(|e| panic!("the private bed's kubeconfig is not usable: {e}"));
        Client::try_from(config).unwrap_or_else(|e| panic!("building a Kubernetes client: {e}"))
    }
}

impl Drop for PrivateBed {
    fn drop(&mut self) {
        let down = testbed("down", self.dir.path());
        if let Err(e) = &down {
            eprintln!("{e}");
        }
        if std::thread::panicking() || down.is_err() {
            let kept =
                std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("a temp dir"));
            eprintln!(
                "the private bed's logs are kept in {}/logs",
                kept.keep().display()
            );
        }
    }
}
