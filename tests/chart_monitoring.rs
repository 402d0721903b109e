//! The chart's Prometheus Operator objects: rendered only where the cluster serves their API
//! (with a warning in the release notes otherwise), and every alert linking to its runbook.

use serde_json::Value;
use trackvia_testsupport::markdown::anchors;
use trackvia_testsupport::tools::{
    MONITORING_API, chart_dir, helm_install_notes, helm_template_result, repo_root,
};

const RELEASE: &str = "tvo";
const NAMESPACE: &str = "trackvia-system";
const MONITORING: [&str; 2] = [
    "metrics.serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
];

fn kinds(api_versions: &[&str], sets: &[&str]) -> Vec<String> {
    helm_template_result(RELEASE, NAMESPACE, None, api_versions, sets)
        .unwrap_or_else(|e| panic!("helm template failed: {e}"))
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn monitoring_objects_need_the_prometheus_operator_api() {
    let with = kinds(&[MONITORING_API], &MONITORING);
    assert!(with.iter().any(|k| k == "ServiceMonitor"), "{with:?}");
    assert!(with.iter().any(|k| k == "PrometheusRule"), "{with:?}");
    let without = kinds(&[], &MONITORING);
    assert!(
        !without
            .iter()
            .any(|k| k == "ServiceMonitor" || k == "PrometheusRule"),
        "{without:?}"
    );

    let warned = helm_install_notes(&MONITORING);
    assert!(
        warned.contains("does not serve monitoring.coreos.com/v1"),
        "{warned}"
    );
    assert!(!helm_install_notes(&[]).contains("monitoring.coreos.com"));
}

#[test]
fn every_alert_links_to_a_runbook_section_that_exists() {
    let runbooks = std::fs::read_to_string(repo_root().join("docs/operations.md"))
        .expect("docs/operations.md");
    let anchors = anchors(&runbooks);
    let docs = helm_template_result(
        RELEASE,
        NAMESPACE,
        None,
        &[MONITORING_API],
        &[
            "prometheusRule.enabled=true",
            "prometheusRule.runbookBaseUrl=https://docs.example/trackvia/docs/operations.md",
        ],
    )
    .expect("the chart renders");
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("a PrometheusRule");
    let mut alerts = 0;
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for alert in group["rules"].as_array().expect("rules") {
            let name = alert["alert"].as_str().expect("an alert name");
            let url = alert["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let fragment = url
                .strip_prefix("https://docs.example/trackvia/docs/operations.md#")
                .unwrap_or_else(|| panic!("{name}: {url} is not under runbookBaseUrl"));
            assert!(
                anchors.iter().any(|a| a == fragment),
                "{name}: docs/operations.md has no section #{fragment}"
            );
            alerts += 1;
        }
    }
    assert_eq!(alerts, 5, "every alert of the chart was checked");

    // By default the runbooks are docs/operations.md at the chart's home.
    let chart: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    let home = chart["home"]
        .as_str()
        .expect("a home")
        .trim_end_matches('/');
    let docs = helm_template_result(
        RELEASE,
        NAMESPACE,
        None,
        &[MONITORING_API],
        &["prometheusRule.enabled=true"],
    )
    .expect("the chart renders");
    let text = serde_json::to_string(&docs).expect("JSON");
    assert!(
        text.contains(&format!("{home}/docs/operations.md#rotation-runbook")),
        "{text}"
    );
}
