//! A control plane of a test's own: `hack/testbed up` in a scratch directory, stopped on drop,
//! optionally with a real node (`--with-node`).
//! For tests that install cluster-wide objects (the CRD, with the chart) which the shared bed
//! `KUBECONFIG` points at cannot take without disturbing the tests running beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::command::run;
use crate::kube::install_crypto_provider;
use crate::tools::{repo_root, tool};

/// Seconds `hack/testbed up` may wait for the API server.
const READY_TIMEOUT_SECONDS: &str = "120";

/// The most one `hack/testbed` or `hack/node` command may take (bringing a bed up waits up
/// to [`READY_TIMEOUT_SECONDS`] for the API server; loading an image into the node copies it).
const HACK_TIME_LIMIT: Duration = Duration::from_secs(900);

/// The most one Helm command may take: its own `--timeout 120s` and a margin.
const HELM_TIME_LIMIT: Duration = Duration::from_secs(300);

/// A private test bed; `hack/testbed down` runs when it is dropped. Its logs are kept when
/// the test panicked.
pub struct PrivateBed {
    dir: tempfile::TempDir,
}

/// Runs `hack/<script> <command> <dir> <args>`; its stdout, or its whole output on failure.
fn hack(script: &str, command: &str, dir: &Path, args: &[&str]) -> Result<String, String> {
    let path = repo_root().join("hack").join(script);
    let mut cmd = Command::new(&path);
    cmd.arg(command)
        .arg(dir)
        .args(args)
        .env("TESTBED_TIMEOUT", READY_TIMEOUT_SECONDS);
    let ran = run(cmd, HACK_TIME_LIMIT);
    if ran.succeeded() {
        Ok(ran.stdout)
    } else {
        Err(format!(
            "hack/{script} {command} {} {args:?}: {}",
            dir.display(),
            ran.failure()
        ))
    }
}

fn testbed(command: &str, dir: &Path) -> Result<(), String> {
    hack("testbed", command, dir, &[]).map(|_| ())
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

    /// Starts a bed with a real node (`hack/testbed up DIR --with-node`, as root), taken down
    /// by a watchdog if this process dies without dropping it. Panics with the scripts'
    /// output when the node does not come up: a test of the node never passes without one.
    pub fn up_with_node(label: &str) -> PrivateBed {
        let dir = tempfile::Builder::new()
            .prefix(&format!("trackvia-{label}-"))
            .tempdir()
            .expect("creating the private bed's directory");
        let bed = PrivateBed { dir };
        let owner = std::process::id().to_string();
        hack(
            "testbed",
            "up",
            bed.dir.path(),
            &["--with-node", "--owner", &owner],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        bed
    }

    /// The bed's directory (its logs are in `logs/`, the API server's audit log among them).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Copies image `reference` from `hack/image`'s store into the node's containerd.
    pub fn load_image(&self, reference: &str) {
        hack("node", "load-image", self.dir.path(), &[reference]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Makes `127.0.0.1:port` reachable from the node's pods; the `ADDRESS:PORT` they use.
    pub fn expose(&self, port: u16) -> String {
        hack("node", "expose", self.dir.path(), &[&port.to_string()])
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    }

    /// `helm ARGS --timeout 120s` against the bed in `dir`, Helm's own files kept in
    /// `dir/helm`. Panics with Helm's output when it fails.
    pub fn helm_in(dir: &Path, args: Vec<String>) {
        let scratch = dir.join("helm");
        let mut helm = Command::new(tool("helm"));
        helm.args(&args)
            .args(["--timeout", "120s"])
            .env("KUBECONFIG", dir.join("kubeconfig"))
            .env("XDG_CACHE_HOME", scratch.join("cache"))
            .env("XDG_CONFIG_HOME", scratch.join("config"))
            .env("XDG_DATA_HOME", scratch.join("data"));
        run(helm, HELM_TIME_LIMIT).expect_success();
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
