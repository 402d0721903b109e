//! The supply-chain policy (deny.toml, checked by `hack/deny` with cargo-deny, offline): the
//! workspace passes it, and the policy really refuses what it says it refuses — a banned
//! crate, a license outside the allow list — naming the crate or license. cargo-deny comes
//! from `hack/deny path`, which installs it on first use.

use std::path::PathBuf;
use std::process::{Command, Output};

use trackvia_testsupport::tools::repo_root;

/// The cargo-deny binary, with every package's manifest fetched (also those of other
/// platforms, which no build here downloads), so that the checks can run offline.
fn cargo_deny() -> PathBuf {
    let fetch = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args(["fetch", "--locked", "--quiet"])
        .status()
        .expect("running cargo fetch");
    assert!(fetch.success(), "cargo fetch --locked failed");
    let out = Command::new(repo_root().join("hack/deny"))
        .arg("path")
        .output()
        .expect("running hack/deny path");
    assert!(
        out.status.success(),
        "hack/deny could not provide cargo-deny:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `cargo deny check CHECKS` on the workspace with the policy `config`.
fn check(config: &str, checks: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("deny.toml");
    std::fs::write(&path, config).expect("writing the policy");
    Command::new(cargo_deny())
        .current_dir(repo_root())
        .args(["deny", "--frozen", "--workspace", "--config"])
        .arg(&path)
        .arg("check")
        .args(checks)
        .output()
        .expect("running cargo-deny")
}

fn policy() -> String {
    std::fs::read_to_string(repo_root().join("deny.toml")).expect("reading deny.toml")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_workspace_passes_its_policy() {
    let out = check(&policy(), &["licenses", "bans", "sources"]);
    assert!(out.status.success(), "cargo deny failed:\n{}", text(&out));
}

#[test]
fn a_banned_crate_fails_the_check_by_name() {
    let banned = policy().replace(
        "    { name = \"native-tls\" },",
        "    { name = \"native-tls\" },\n    { name = \"tokio\" },",
    );
    assert_ne!(
        banned,
        policy(),
        "deny.toml no longer has the ban list this test extends"
    );
    let out = check(&banned, &["bans"]);
    assert!(
        !out.status.success(),
        "a banned tokio passed:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("tokio"), "{}", text(&out));
}

#[test]
fn a_license_outside_the_allow_list_fails_the_check() {
    let narrower = policy().replace("    \"Unicode-3.0\",\n", "");
    assert_ne!(narrower, policy(), "deny.toml no longer allows Unicode-3.0");
    let out = check(&narrower, &["licenses"]);
    assert!(
        !out.status.success(),
        "Unicode-3.0 passed unlisted:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("Unicode-3.0"), "{}", text(&out));
}
