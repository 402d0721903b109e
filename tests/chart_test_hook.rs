//! The chart's `helm test` hook: a pod running the operator's own image that asks the metrics
//! Service for /readyz with `trackvia-operator probe`. The test bed has no kubelet, so the pod
//! is checked as rendered, and the probe subcommand is run for real against loopback servers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use trackvia_testsupport::command::run;
use trackvia_testsupport::tools::helm_template;

const RELEASE: &str = "tvo";
const NAMESPACE: &str = "trackvia-system";
const OPERATOR: &str = env!("CARGO_BIN_EXE_trackvia-operator");

fn test_pods(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d["metadata"]["annotations"]["helm.sh/hook"] == json!("test"))
        .collect()
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// Whether `labels` satisfy the `matchLabels`-style `selector`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .expect("a selector")
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_test_pod_probes_the_metrics_service_from_the_operator_image() {
    let docs = helm_template(RELEASE, NAMESPACE, &["metrics.service.port=9091"]);
    let pods = test_pods(&docs);
    assert_eq!(pods.len(), 1, "one helm test pod");
    let pod = pods[0];
    assert_eq!(pod["kind"], json!("Pod"));
    assert_eq!(pod["spec"]["restartPolicy"], json!("Never"));

    let deploy = only(&docs, "Deployment");
    let operator = &deploy["spec"]["template"]["spec"]["containers"][0];
    let probe = &pod["spec"]["containers"][0];
    assert_eq!(probe["image"], operator["image"], "no other image");
    assert_eq!(probe["command"], operator["command"]);
    assert_eq!(
        pod["spec"]["securityContext"],
        deploy["spec"]["template"]["spec"]["securityContext"]
    );
    assert_eq!(probe["securityContext"], operator["securityContext"]);

    let service = only(&docs, "Service");
    let url = format!(
        "http://{}.{NAMESPACE}.svc:9091/readyz",
        service["metadata"]["name"]
            .as_str()
            .expect("a Service name")
    );
    assert_eq!(probe["args"], json!(["probe", url]));

    // Neither the operator's ReplicaSet nor its Service may take the test pod for an operator.
    let labels = &pod["metadata"]["labels"];
    assert!(
        !selects(&deploy["spec"]["selector"]["matchLabels"], labels),
        "{labels}"
    );
    assert!(!selects(&service["spec"]["selector"], labels), "{labels}");
}

#[test]
fn no_test_pod_without_a_service_or_an_operator() {
    for sets in [
        &["metrics.service.enabled=false"][..],
        &["replicaCount=0"][..],
    ] {
        assert!(
            test_pods(&helm_template(RELEASE, NAMESPACE, sets)).is_empty(),
            "{sets:?}"
        );
    }
}

#[test]
fn a_restricted_metrics_port_still_admits_the_test_pod() {
    let docs = helm_template(
        RELEASE,
        NAMESPACE,
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.metrics.from[0].namespaceSelector.matchLabels.monitoring=true",
        ],
    );
    let pod = test_pods(&docs)[0];
    let policy = only(&docs, "NetworkPolicy");
    let from = policy["spec"]["ingress"][0]["from"]
        .as_array()
        .expect("from");
    assert!(
        from.iter()
            .any(|peer| peer.get("namespaceSelector").is_none()
                && selects(
                    &peer["podSelector"]["matchLabels"],
                    &pod["metadata"]["labels"]
                )),
        "{from:?}"
    );
}

/// A loopback server answering every request with `status`, for at most `requests` requests.
fn server(status: &'static str, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    format!("http://{addr}/readyz")
}

fn probe(url: &str) -> (bool, String) {
    let mut probe = Command::new(OPERATOR);
    probe.args(["probe", url, "--timeout", "5s"]);
    let ran = run(probe, Duration::from_secs(30));
    (ran.succeeded(), ran.combined())
}

#[test]
fn probe_succeeds_only_on_a_2xx_answer() {
    let (ok, out) = probe(&server("200 OK", 1));
    assert!(ok, "{out}");
    let (ok, out) = probe(&server("503 Service Unavailable", 1));
    assert!(!ok && out.contains("answered 503"), "{out}");
    // Nothing listens: a closed loopback port.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.local_addr().expect("its address")
    };
    let (ok, out) = probe(&format!("http://{closed}/readyz"));
    assert!(!ok && out.contains("no answer"), "{out}");
    let (ok, out) = probe("https://127.0.0.1:1/readyz");
    assert!(!ok && out.contains("not an http:// address"), "{out}");
}
