//! What kubectl shows of the CRD: the description `kubectl explain` prints at the
//! root, and the printer columns of `kubectl get` (the Ready message only with
//! `-o wide`), checked in the CRD and with the real kubectl on the test bed.

mod common;

use common::Harness;
use kube::CustomResourceExt;
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::tools::{run_ok, tool};

fn kubectl(args: &[&str]) -> String {
    run_ok(&tool("kubectl"), args)
}

#[test]
fn the_root_of_the_schema_describes_the_resource() {
    let crd = TrackViaConnection::crd();
    let root = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.description.as_deref())
        .expect("a root description");
    assert!(!root.contains("Auto-generated"), "{root}");
    for words in ["TrackViaConnection", "verified", "Secret", "expires"] {
        assert!(root.contains(words), "{words:?} missing from {root:?}");
    }
}

#[test]
fn printer_columns_show_the_secret_and_with_wide_the_message() {
    let crd = TrackViaConnection::crd();
    let columns: Vec<(String, String, i32)> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone(), c.priority.unwrap_or(0)))
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "Host",
            "Ready",
            "Status",
            "Secret",
            "Expires",
            "Last Verified",
            "Age",
            "Message"
        ]
    );
    let find = |name: &str| columns.iter().find(|c| c.0 == name).expect("a column");
    assert_eq!(find("Secret").1, ".status.secretName");
    assert_eq!(find("Secret").2, 0);
    assert_eq!(
        find("Message").1,
        ".status.conditions[?(@.type==\"Ready\")].message"
    );
    assert_eq!(
        find("Message").2,
        1,
        "the message is shown only with -o wide"
    );
}

#[tokio::test]
async fn kubectl_explains_the_resource_and_shows_why_with_wide() {
    let mut h = Harness::start("tvc-kubectl", &[]).await;
    h.connect(
        "crm",
        "src",
        Behavior::Forbidden,
        json!({"target": {"name": "crm-out"}}),
    )
    .await;
    let tvc = h.wait_ready("crm", "False", "Forbidden").await;
    let message = tvc
        .status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| c.message.clone())
        .expect("Ready's message");
    let ns = h.ns.name().to_string();

    // The API server publishes a changed CRD's OpenAPI a few seconds after the change;
    // kubectl's own cache is kept out of the way.
    let cache = std::env::temp_dir().join(format!("kubectl-cache-{}", std::process::id()));
    let cache_flag = format!("--cache-dir={}", cache.display());
    let mut explained = String::new();
    for _ in 0..60 {
        explained = kubectl(&["explain", "trackviaconnection", &cache_flag]);
        if explained.contains("TrackViaConnection keeps one") {
            break;
        }
        let _ = std::fs::remove_dir_all(&cache);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let _ = std::fs::remove_dir_all(&cache);
    assert!(
        explained.contains("TrackViaConnection keeps one TrackVia API key"),
        "{explained}"
    );
    assert!(!explained.contains("Auto-generated"), "{explained}");

    let plain = kubectl(&["get", "tvc", "-n", &ns]);
    let header: Vec<&str> = plain
        .lines()
        .next()
        .expect("a header")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "HOST",
            "READY",
            "STATUS",
            "SECRET",
            "EXPIRES",
            "LAST VERIFIED",
            "AGE"
        ],
        "{plain}"
    );
    let row = plain.lines().nth(1).expect("a row");
    assert!(row.contains(" crm-out "), "{plain}");
    assert!(!plain.contains(message.as_str()), "{plain}");

    let wide = kubectl(&["get", "tvc", "-n", &ns, "-o", "wide"]);
    let wide_header = wide.lines().next().expect("a header");
    assert!(wide_header.trim_end().ends_with("MESSAGE"), "{wide}");
    let wide_row = wide.lines().nth(1).expect("a row");
    assert!(wide_row.trim_end().ends_with(message.as_str()), "{wide}");
    h.finish().await;
}
