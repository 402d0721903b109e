//! The supply-chain policy (deny.toml, checked by `hack/deny` with cargo-deny, offline): the
//! workspace passes it, and the policy really refuses what it says it refuses — a banned
//! crate, a license outside the allow list — naming the crate or license. cargo-deny comes
//! from `hack/deny path`, which installs it on first use.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use trackvia_testsupport::command::{Ran, run};
use trackvia_testsupport::tools::repo_root;

/// The most fetching the manifests or installing cargo-deny may take.
const SETUP_TIME_LIMIT: Duration = Duration::from_secs(30 * 60);
/// The most one `cargo deny check` may take.
const CHECK_TIME_LIMIT: Duration = Duration::from_secs(300);

/// The cargo-deny binary, with every package's manifest fetched (also those of other
/// platforms, which no build here downloads), so that the checks can run offline.
fn cargo_deny() -> PathBuf {
    let mut fetch = Command::new(env!("CARGO"));
    fetch
        .current_dir(repo_root())
        .args(["fetch", "--locked", "--quiet"]);
    run(fetch, SETUP_TIME_LIMIT).expect_success();
    let mut deny = Command::new(repo_root().join("hack/deny"));
    deny.arg("path");
    let out = run(deny, SETUP_TIME_LIMIT).expect_success();
    PathBuf::from(out.stdout.trim())
}

/// `cargo deny check CHECKS` on the workspace with the policy `config`.
fn check(config: &str, checks: &[&str]) -> Ran {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("deny.toml");
    std::fs::write(&path, config).expect("writing the policy");
    let mut deny = Command::new(cargo_deny());
    deny.current_dir(repo_root())
        .args(["deny", "--frozen", "--workspace", "--config"])
        .arg(&path)
        .arg("check")
        .args(checks);
    run(deny, CHECK_TIME_LIMIT)
}

fn policy() -> String {
    std::fs::read_to_string(repo_root().join("deny.toml")).expect("reading deny.toml")
}

/// Checks `config` for `check` and asserts that it fails, naming `name`.
fn assert_refused(config: &str, check_name: &str, name: &str) {
    let out = check(config, &[check_name]);
    assert!(
        out.status.is_some_and(|s| !s.success()) && !out.timed_out,
        "{name} passed the {check_name} check:\n{}",
        out.combined()
    );
    assert!(out.combined().contains(name), "{}", out.combined());
}

#[test]
fn the_workspace_passes_its_policy() {
    let out = check(&policy(), &["licenses", "bans", "sources"]);
    assert!(out.succeeded(), "cargo deny failed:\n{}", out.combined());
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
    assert_refused(&banned, "bans", "tokio");
}

#[test]
fn a_license_outside_the_allow_list_fails_the_check() {
    let narrower = policy().replace("    \"Unicode-3.0\",\n", "");
    assert_ne!(narrower, policy(), "deny.toml no longer allows Unicode-3.0");
    assert_refused(&narrower, "licenses", "Unicode-3.0");
}
