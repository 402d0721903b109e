//! The operator binary's own commands: `verify` reports each outcome with its exit code
//! against the fake TrackVia, and the binary starts and documents every flag with its
//! environment variable.

mod common;

use common::{Harness, SETTLE};
use k8s_openapi::api::core::v1::Secret;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_command_reports_each_outcome_with_its_exit_code() {
    let mut h = Harness::start("tvc-verifycmd", &[]).await;
    for (behavior, code, word) in [
        (Behavior::Valid, 0, "Verified"),
        (Behavior::Revoked, 2, "Unauthorized"),
        (Behavior::Expired, 3, "Expired"),
        (Behavior::Forbidden, 4, "Forbidden"),
        (Behavior::ServerError, 5, "Unreachable"),
    ] {
        let (key, token) = h.credential(behavior);
        let out = std::process::Command::new(common::OPERATOR)
            .args(["verify", "--host", &h.fake.host(), "--extra-ca-file"])
            .arg(h.fake.ca_file())
            .env("TRACKVIA_API_KEY", &key)
            .env("TRACKVIA_AUTH_TOKEN", &token)
            .output()
            .expect("running verify");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{word}: {stdout} {stderr}");
        assert!(stdout.starts_with(word), "{stdout}");
        assert!(
            !stdout.contains(&token)
                && !stderr.contains(&token)
                && !stdout.contains(&key)
                && !stderr.contains(&key)
        );
    }
    // From a Secret through the kubeconfig.
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let out = std::process::Command::new(common::OPERATOR)
        .args([
            "verify",
            "--host",
            &h.fake.host(),
            "--secret",
            &format!("{}/src", h.ns.name()),
            "--extra-ca-file",
        ])
        .arg(h.fake.ca_file())
        .env_remove("TRACKVIA_API_KEY")
        .output()
        .expect("running verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = wait_for::<Secret>(&h.secrets_api(), "src", SETTLE, "source", |_| true).await;
    // A Secret that is not there: the API server's answer, short.
    let missing = format!("{}/missing", h.ns.name());
    let out = std::process::Command::new(common::OPERATOR)
        .args(["verify", "--host", &h.fake.host(), "--secret", &missing])
        .output()
        .expect("running verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "reading Secret {missing}: secrets \"missing\" not found (404)"
        )) && !stderr.contains("ErrorResponse"),
        "{stderr}"
    );
    h.finish().await;
}

#[test]
fn the_binary_starts_and_documents_every_flag_with_its_environment_variable() {
    let help = std::process::Command::new(common::OPERATOR)
        .arg("--help")
        .output()
        .expect("running --help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for sub in ["run", "crd", "verify"] {
        assert!(text.contains(sub), "--help lists {sub}: {text}");
    }
    let run = std::process::Command::new(common::OPERATOR)
        .args(["run", "--help"])
        .output()
        .expect("running run --help");
    assert!(run.status.success());
    let text = String::from_utf8_lossy(&run.stdout);
    for (flag, env) in [
        ("--namespaces", "TRACKVIA_NAMESPACES"),
        ("--allowed-hosts", "TRACKVIA_ALLOWED_HOSTS"),
        ("--extra-ca-file", "TRACKVIA_EXTRA_CA_FILE"),
        ("--metrics-addr", "TRACKVIA_METRICS_ADDR"),
        ("--log-format", "TRACKVIA_LOG_FORMAT"),
        ("--log-level", "TRACKVIA_LOG_LEVEL"),
        ("--rate-limit", "TRACKVIA_RATE_LIMIT"),
        ("--concurrency", "TRACKVIA_CONCURRENCY"),
        ("--leader-election", "TRACKVIA_LEADER_ELECTION"),
    ] {
        assert!(
            text.contains(flag) && text.contains(env),
            "run --help documents {flag} / {env}"
        );
    }
    // Bad input is refused with a clear message, before touching any cluster.
    let bad = std::process::Command::new(common::OPERATOR)
        .args([
            "run",
            "--allowed-hosts",
            "a:b",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("running run");
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--allowed-hosts"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
