//! The container image, built from the Dockerfile by `hack/image` (Docker or Podman) and run as
//! the Helm chart runs it: its configuration, its size, its commands, and the operator running
//! from it against the test bed and the fake TrackVia over HTTPS.

mod common;

use std::process::Output;

use common::{Harness, secret_text};
use serde_json::{Value, json};
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::image::{Image, Launcher, mount_same_path};

/// The image must stay small: a static binary and a CA bundle.
const MAX_IMAGE_BYTES: u64 = 30 * 1024 * 1024;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `engine image inspect`, the one entry.
fn inspect(image: &Image) -> Value {
    let output = image.engine(&["image", "inspect", &image.id]);
    assert!(output.status.success(), "inspect: {}", describe(&output));
    let list: Value = serde_json::from_slice(&output.stdout).expect("inspect prints JSON");
    list[0].clone()
}

#[test]
fn the_image_is_small_and_configured_as_the_chart_expects() {
    let image = Image::get();
    let info = inspect(image);
    let config = &info["Config"];
    assert_eq!(info["Os"], json!("linux"));
    // hack/image builds for the machine it runs on by default.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(info["Architecture"], json!(arch));

    let values: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(trackvia_testsupport::tools::chart_dir().join("values.yaml"))
            .expect("values.yaml"),
    )
    .expect("values.yaml parses");
    let psc = &values["podSecurityContext"];
    assert_eq!(
        config["User"],
        json!(format!("{}:{}", psc["runAsUser"], psc["runAsGroup"])),
        "the image's user is the chart's"
    );
    assert_eq!(
        config["Entrypoint"],
        json!(["/usr/local/bin/trackvia-operator"])
    );
    assert_eq!(config["Cmd"], json!(["run"]));

    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        json!(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        json!(env!("CARGO_PKG_LICENSE"))
    );
    assert_eq!(
        labels["org.opencontainers.image.title"],
        json!("trackvia-operator")
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or_default();
    let commit = revision.trim_end_matches("-dirty");
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "the revision label names the commit: {revision:?}"
    );

    let size = info["Size"].as_u64().expect("the image's size");
    eprintln!("image {}: {size} bytes", image.id);
    assert!(
        size < MAX_IMAGE_BYTES,
        "the image is {size} bytes, over {MAX_IMAGE_BYTES}"
    );
}

#[test]
fn the_image_runs_help_and_prints_the_shipped_crd() {
    let image = Image::get();
    let help = image.run(&[], &strings(&["--help"]), &[]);
    assert!(help.status.success(), "--help: {}", describe(&help));
    assert!(
        text(&help.stdout).contains("Usage: trackvia-operator"),
        "--help: {}",
        describe(&help)
    );

    let crd = image.run(&[], &strings(&["crd"]), &[]);
    assert!(crd.status.success(), "crd: {}", describe(&crd));
    let shipped = std::fs::read_to_string(
        trackvia_testsupport::tools::repo_root().join("crds/trackviaconnections.trackvia.io.yaml"),
    )
    .expect("the shipped CRD");
    assert_eq!(
        text(&crd.stdout),
        shipped,
        "`crd` from the image differs from crds/"
    );

    // No shell or other program besides the operator.
    let shell = image.run(&strings(&["--entrypoint", "/bin/sh"]), &[], &[]);
    assert!(!shell.status.success(), "/bin/sh ran: {}", describe(&shell));
}

/// `verify` from the image (host network) against `fake`, with engine `flags` and operator
/// `extra` arguments.
async fn verify_from_image(
    fake: &FakeTrackVia,
    key: &str,
    token: &str,
    flags: Vec<String>,
    extra: Vec<String>,
) -> Output {
    let mut flags = flags;
    flags.extend(strings(&[
        "--network",
        "host",
        "-e",
        "TRACKVIA_API_KEY",
        "-e",
        "TRACKVIA_AUTH_TOKEN",
    ]));
    let mut args = strings(&["verify", "--host", &fake.host(), "--timeout", "5s"]);
    args.extend(extra);
    let (key, token) = (key.to_string(), token.to_string());
    tokio::task::spawn_blocking(move || {
        Image::get().run(
            &flags,
            &args,
            &[("TRACKVIA_API_KEY", &key), ("TRACKVIA_AUTH_TOKEN", &token)],
        )
    })
    .await
    .expect("the verify thread")
}

#[tokio::test]
async fn the_image_trusts_its_ca_bundle_plus_the_extra_ca_file() {
    let fake = FakeTrackVia::start().await;
    let (key, token) = ("image-ca-key", "image-ca-token");
    fake.add_api_key(key);
    fake.set(key, token, Behavior::Valid);
    let ca = fake.ca_file();

    // The image's own bundle is loaded (a missing or empty one fails before any call, with
    // exit code 1) and does not trust the fake's private CA.
    let untrusted = verify_from_image(&fake, key, token, vec![], vec![]).await;
    assert_eq!(untrusted.status.code(), Some(5), "{}", describe(&untrusted));
    assert!(
        text(&untrusted.stdout).contains("Unreachable (tls)"),
        "{}",
        describe(&untrusted)
    );

    // The bundle's path in the image is where the binary reads the system's roots: the fake's
    // CA mounted there is trusted.
    let system = vec![
        "-v".to_string(),
        format!("{}:/etc/ssl/certs/ca-certificates.crt:ro", ca.display()),
    ];
    let trusted = verify_from_image(&fake, key, token, system, vec![]).await;
    assert_eq!(trusted.status.code(), Some(0), "{}", describe(&trusted));

    // --extra-ca-file adds a CA to the image's bundle.
    let extra = verify_from_image(
        &fake,
        key,
        token,
        mount_same_path(&ca).to_vec(),
        strings(&["--extra-ca-file", &ca.display().to_string()]),
    )
    .await;
    assert_eq!(extra.status.code(), Some(0), "{}", describe(&extra));
    assert!(
        text(&extra.stdout).starts_with("Verified"),
        "{}",
        describe(&extra)
    );
    assert_eq!(fake.requests().len(), 2, "one call per trusted run");
}

/// Fields of `/proc/PID/status` on the host for the container's process.
fn proc_status(pid: &str) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_operator_runs_from_the_image_and_verifies_over_https() {
    let launcher = tokio::task::spawn_blocking(Launcher::image)
        .await
        .expect("building the image");
    let mut h = Harness::start_with("tvc-image", &[], &[], launcher).await;

    // The process really is the container's, restricted as the chart restricts it.
    let name = h.launcher.container().expect("a container name");
    let image = Image::get();
    let pid = image.engine(&["inspect", "--format", "{{.State.Pid}}", &name]);
    assert!(pid.status.success(), "inspect: {}", describe(&pid));
    let pid = text(&pid.stdout).trim().to_string();
    let status = proc_status(&pid);
    assert_eq!(status["Name"], "trackvia-operat", "{status:?}");
    assert_eq!(status["Uid"], "65532 65532 65532 65532");
    assert_eq!(status["Gid"], "65532 65532 65532 65532");
    assert_eq!(status["CapEff"], "0000000000000000");
    assert_eq!(status["CapBnd"], "0000000000000000");
    assert_eq!(status["NoNewPrivs"], "1");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let root = mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .unwrap_or_else(|| panic!("no root mount in {mounts}"));
    assert!(
        root[5].split(',').any(|o| o == "ro"),
        "the root filesystem is read-only: {root:?}"
    );

    let (key, token) = common::connect_crm_out(&mut h).await;
    h.wait_ready("crm", "True", "Verified").await;
    let out = h
        .wait_published("crm-out", &token, common::SETTLE, "the published Secret")
        .await;
    assert_eq!(secret_text(&out, "apiKey").as_deref(), Some(key.as_str()));
    assert_eq!(h.fake.requests().len(), 1, "one verification call");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("trackvia_"),
        "metrics from the container: {metrics}"
    );

    // SIGTERM reaches the operator in the container: it stops cleanly.
    h.assert_no_leaks().await;
    let exit = h.operator.stop().await;
    assert!(exit.success(), "the container exited with {exit}");
    h.ns.cleanup().await;
}
