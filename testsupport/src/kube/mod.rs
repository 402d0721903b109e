//! Helpers for tests against the real test bed: a client for the bed `KUBECONFIG` names
//! (here), throw-away namespaces and cluster objects ([`cleanup`]), and waiting for objects
//! with useful diagnostics on timeout ([`wait`]).

mod cleanup;
mod wait;

use std::path::PathBuf;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};

pub use crate::process::{OperatorProcess, free_port};
pub use cleanup::{ClusterObjectGuard, TEST_NAMESPACE_LABEL, TestNamespace};
pub use wait::{
    crd_established, describe_object, recent_events, wait_crd_established, wait_for,
    wait_for_absent,
};

/// What a test says when the test bed is missing.
const NEEDS_TESTBED: &str =
    "this test needs the test bed: run `eval \"$(hack/testbed up)\"` first, or run hack/test";

/// Installs aws-lc-rs as the process's rustls provider, so that nothing that builds a TLS
/// configuration from the process default finds two candidates. Safe to call repeatedly.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all this needs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Paths named by `KUBECONFIG`; panics unless it is set and every file is readable.
fn kubeconfig_paths() -> Vec<PathBuf> {
    let Some(value) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) else {
        panic!("KUBECONFIG is not set; {NEEDS_TESTBED}");
    };
    let paths: Vec<PathBuf> = std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    for path in &paths {
        if let Err(e) = std::fs::read(path) {
            panic!(
                "KUBECONFIG names {} which cannot be read ({e}); {NEEDS_TESTBED}",
                path.display()
            );
        }
    }
    paths
}

/// A client for the cluster `KUBECONFIG` points at. Panics with instructions when it is not
/// set or unreadable: tests that need the bed never skip silently.
pub async fn client() -> Client {
    install_crypto_provider();
    let paths = kubeconfig_paths();
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let config = Kubeconfig::read_from(path)
            .unwrap_or_else(|e| panic!("reading kubeconfig {}: {e}", path.display()));
        merged = Some(match merged {
            None => config,
            Some(m) => m
                .merge(config)
                .unwrap_or_else(|e| panic!("merging kubeconfig {}: {e}", path.display())),
        });
    }
    let Some(kubeconfig) = merged else {
        panic!("KUBECONFIG names no file; {NEEDS_TESTBED}");
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig is not usable: {e}; {NEEDS_TESTBED}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("building a Kubernetes client: {e}"))
}
