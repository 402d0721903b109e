//! Tests of the helpers themselves. The process tests need nothing; the others need the test
//! bed (`KUBECONFIG`) and fail with instructions without it.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::Api;
use trackvia_testsupport::kube::{OperatorProcess, TestNamespace, client, wait_for};

fn shell(script: &str) -> OperatorProcess {
    OperatorProcess::spawn(
        Path::new("/bin/sh"),
        &["-c".to_string(), script.to_string()],
        &[("GREETING".to_string(), "hello-from-env".to_string())],
    )
}

/// Runs `fut` and returns the message it panicked with.
async fn panic_message<F>(fut: F) -> String
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let error = tokio::spawn(fut)
        .await
        .expect_err("the future should panic");
    let payload = error.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn process_output_is_captured_and_sigterm_stops_it() {
    let mut process = shell(
        r#"trap 'echo got-term; exit 0' TERM
           echo "started $GREETING"; echo on-stderr >&2
           while true; do sleep 0.05; done"#,
    );
    assert!(process.pid() > 0);
    process
        .wait_log_contains("started hello-from-env", Duration::from_secs(10))
        .await;
    process
        .wait_log_contains("on-stderr", Duration::from_secs(10))
        .await;
    assert!(process.is_running());
    let status = process.stop().await;
    assert_eq!(status.code(), Some(0), "{}", process.logs());
    assert!(process.logs().contains("got-term"));
    assert!(process.log_file().exists());
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed() {
    let mut process = shell("trap '' TERM; echo ready; while true; do sleep 0.05; done");
    process
        .wait_log_contains("ready", Duration::from_secs(10))
        .await;
    let status = process.stop_within(Duration::from_millis(300)).await;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[tokio::test]
async fn waiting_for_a_line_fails_fast_when_the_process_exits() {
    let message = panic_message(async {
        let mut process = shell("echo something-else; exit 3");
        process
            .wait_log_contains("never-printed", Duration::from_secs(30))
            .await;
    })
    .await;
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("something-else"), "{message}");
}

#[tokio::test]
async fn free_ports_can_be_bound() {
    let port = trackvia_testsupport::free_port();
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn wait_for_timeout_shows_the_object_without_secret_values_and_the_events() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "helpers-wait").await;
    assert!(ns.name().starts_with("helpers-wait-"));

    ns.create_from_json::<Secret>(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "creds" },
        "stringData": { "token": "super-secret-value" },
    }))
    .await;
    ns.create_from_json::<Event>(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": "creds.marker" },
        "involvedObject": { "kind": "Secret", "name": "creds", "namespace": ns.name() },
        "reason": "MarkerReason",
        "message": "a marker event for the diagnostics",
        "type": "Normal",
    }))
    .await;

    let secrets: Api<Secret> = ns.api();
    let message = panic_message(async move {
        wait_for(
            &secrets,
            "creds",
            Duration::from_millis(500),
            "a condition that never holds",
            |_| false,
        )
        .await;
    })
    .await;
    assert!(
        message.contains("a condition that never holds"),
        "{message}"
    );
    assert!(message.contains("token: <redacted"), "{message}");
    assert!(!message.contains("super-secret-value"), "{message}");
    assert!(!message.contains("c3VwZXItc2VjcmV0LXZhbHVl"), "{message}");
    assert!(!message.contains("managedFields"), "{message}");
    assert!(message.contains("MarkerReason"), "{message}");
    assert!(
        message.contains("a marker event for the diagnostics"),
        "{message}"
    );

    ns.cleanup().await;
}

#[tokio::test]
async fn a_dropped_test_namespace_is_deleted() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "helpers-drop").await;
    let name = ns.name().to_string();
    drop(ns);
    if std::env::var("KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
        eprintln!("KEEP_NAMESPACES=1: the namespace is kept by design; nothing to check");
        return;
    }
    let namespaces = Api::<Namespace>::all(client);
    let gone_or_going = namespaces
        .get_opt(&name)
        .await
        .unwrap()
        .is_none_or(|n| n.metadata.deletion_timestamp.is_some());
    assert!(gone_or_going, "namespace {name} was not deleted on drop");
}
