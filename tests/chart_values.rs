//! Chart metadata and the values users reach for first: extra arguments, volumes and
//! annotations, the update strategy, lease timings and the ServiceMonitor's namespace. Each
//! is rendered with the real `helm`; the flags the chart passes are checked against the
//! operator's own `run --help`.

use std::process::Command;

use serde_json::{Value, json};
use trackvia_testsupport::tools::{MONITORING_API, chart_dir, helm_template_result, repo_root};

const RELEASE: &str = "tvo";
const NAMESPACE: &str = "trackvia-system";
const KUBE_VERSION: &str = "1.33.0";

fn render(sets: &[&str]) -> Vec<Value> {
    helm_template_result(
        RELEASE,
        NAMESPACE,
        Some(KUBE_VERSION),
        &[MONITORING_API],
        sets,
    )
    .unwrap_or_else(|e| panic!("helm template {sets:?} failed: {e}"))
}

/// helm's message when it refuses `sets`; panics when it renders them.
fn refused(sets: &[&str]) -> String {
    match helm_template_result(
        RELEASE,
        NAMESPACE,
        Some(KUBE_VERSION),
        &[MONITORING_API],
        sets,
    ) {
        Ok(_) => panic!("helm rendered {sets:?}; it should have refused them"),
        Err(e) => e,
    }
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

fn container(docs: &[Value]) -> &Value {
    &only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string argument").to_string())
        .collect()
}

/// The flag of `--flag=value` or `--flag`.
fn flag_of(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(flag, _)| flag)
}

fn chart_yaml() -> Value {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    serde_yaml_ng::from_str(&text).expect("Chart.yaml parses")
}

fn annotation_list(chart: &Value, key: &str) -> Vec<Value> {
    let text = chart["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("Chart.yaml lacks the annotation {key}"));
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{key} is not a YAML list: {e}"))
}

#[test]
fn chart_yaml_has_the_metadata_artifact_hub_shows() {
    let chart = chart_yaml();
    for key in ["kubeVersion", "home", "icon"] {
        assert!(
            chart[key].as_str().is_some_and(|v| !v.is_empty()),
            "Chart.yaml lacks {key}"
        );
    }
    for key in ["sources", "maintainers", "keywords"] {
        assert!(
            chart[key].as_array().is_some_and(|v| !v.is_empty()),
            "Chart.yaml lacks {key}"
        );
    }
    // kubeVersion admits the version the tests run on and refuses what lacks the APIs used.
    render(&[]);
    helm_template_result(RELEASE, NAMESPACE, Some("1.20.2"), &[], &[]).expect("1.20 is supported");
    let old = helm_template_result(RELEASE, NAMESPACE, Some("1.18.0"), &[], &[])
        .expect_err("1.18 lacks events.k8s.io/v1");
    assert!(old.contains("kubeVersion"), "{old}");

    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        cargo.contains(&format!(
            "license = {:?}",
            chart["annotations"]["artifacthub.io/license"]
                .as_str()
                .expect("a license annotation")
        )),
        "the chart's license annotation is the crate's license"
    );
    let images = annotation_list(&chart, "artifacthub.io/images");
    let deployed = container(&render(&[]))["image"].clone();
    assert!(
        images.iter().any(|i| i["image"] == deployed),
        "artifacthub.io/images {images:?} lacks the default image {deployed}"
    );
    let crds = annotation_list(&chart, "artifacthub.io/crds");
    let crd: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_root().join("crds/trackviaconnections.trackvia.io.yaml"))
            .expect("the CRD"),
    )
    .expect("the CRD parses");
    assert_eq!(crds.len(), 1);
    assert_eq!(crds[0]["kind"], crd["spec"]["names"]["kind"]);
    assert_eq!(crds[0]["name"], crd["metadata"]["name"]);
    assert_eq!(crds[0]["version"], crd["spec"]["versions"][0]["name"]);
    let changes = annotation_list(&chart, "artifacthub.io/changes");
    assert!(!changes.is_empty());
    for change in &changes {
        assert!(
            matches!(
                change["kind"].as_str(),
                Some("added" | "changed" | "deprecated" | "removed" | "fixed" | "security")
            ),
            "{change}"
        );
        assert!(
            change["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
}

#[test]
fn every_flag_the_chart_passes_is_one_the_operator_knows() {
    let help = Command::new(env!("CARGO_BIN_EXE_trackvia-operator"))
        .args(["run", "--help"])
        .output()
        .expect("running trackvia-operator run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let docs = render(&[
        "extraCA.secretName=ca",
        "watchNamespaces={a}",
        "allowedHosts={x.trackvia.com}",
    ]);
    for arg in args(&docs).iter().skip(1) {
        let flag = flag_of(arg);
        assert!(
            help.contains(&format!("{flag} "))
                || help.contains(&format!("{flag}\n"))
                || help.contains(&format!("{flag} <")),
            "`run --help` lacks {flag}"
        );
    }
}

#[test]
fn extra_args_come_last_and_chart_flags_are_refused() {
    let docs = render(&["extraArgs={--request-timeout=20s,--failure-threshold=5}"]);
    let all = args(&docs);
    assert_eq!(
        all[all.len() - 2..],
        ["--request-timeout=20s", "--failure-threshold=5"]
    );

    // Every flag the chart passes, by default and with every option on, is refused.
    let full = render(&[
        "extraCA.secretName=ca",
        "watchNamespaces={a}",
        "allowedHosts={x.trackvia.com}",
    ]);
    for arg in args(&full).iter().skip(1) {
        let flag = flag_of(arg);
        let set = format!("extraArgs={{{flag}=x}}");
        let message = refused(&[
            &set,
            "extraCA.secretName=ca",
            "watchNamespaces={a}",
            "allowedHosts={x.trackvia.com}",
        ]);
        assert!(
            message.contains(&format!("extraArgs: {flag} is set by the chart")),
            "{flag}: {message}"
        );
    }
    // Without leader election its flags are free to set.
    let docs = render(&[
        "leaderElection.enabled=false",
        "extraArgs={--leader-election-retry-period=1s}",
    ]);
    assert!(args(&docs).contains(&"--leader-election-retry-period=1s".to_string()));
}

#[test]
fn trackvia_variables_for_chart_flags_are_refused() {
    let message = refused(&[
        "extraEnv[0].name=TRACKVIA_LOG_LEVEL",
        "extraEnv[0].value=debug",
    ]);
    assert!(
        message.contains(
            "extraEnv: TRACKVIA_LOG_LEVEL would be ignored, the chart passes --log-level"
        ),
        "{message}"
    );
    let docs = render(&[
        "extraEnv[0].name=TRACKVIA_REQUEST_TIMEOUT",
        "extraEnv[0].value=20s",
        "extraEnv[1].name=HTTPS_PROXY",
        "extraEnv[1].value=http://proxy:3128",
    ]);
    let env = container(&docs)["env"].as_array().expect("env").clone();
    assert!(env.contains(&json!({"name": "TRACKVIA_REQUEST_TIMEOUT", "value": "20s"})));
    assert!(env.contains(&json!({"name": "HTTPS_PROXY", "value": "http://proxy:3128"})));
}

#[test]
fn lease_timings_reach_the_operator() {
    let docs = render(&[
        "leaderElection.leaseDuration=30s",
        "leaderElection.renewDeadline=20s",
        "leaderElection.retryPeriod=4s",
    ]);
    let all = args(&docs);
    for expected in [
        "--leader-election-lease-duration=30s",
        "--leader-election-renew-deadline=20s",
        "--leader-election-retry-period=4s",
    ] {
        assert!(
            all.contains(&expected.to_string()),
            "{expected} not in {all:?}"
        );
    }
    let message = refused(&["leaderElection.leaseDuration=thirty"]);
    assert!(message.contains("leaseDuration"), "{message}");
}

#[test]
fn extra_volumes_are_mounted_beside_the_extra_ca() {
    let docs = render(&[
        "extraCA.secretName=ca",
        "extraVolumes[0].name=proxy-ca",
        "extraVolumes[0].configMap.name=proxy-ca",
        "extraVolumeMounts[0].name=proxy-ca",
        "extraVolumeMounts[0].mountPath=/etc/proxy-ca",
    ]);
    let pod = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| v["name"].as_str().expect("a volume name"))
        .collect();
    assert_eq!(volumes.len(), 2);
    assert!(
        volumes.contains(&"proxy-ca") && volumes.contains(&"extra-ca"),
        "{volumes:?}"
    );
    let mounts = container(&docs)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .clone();
    assert!(mounts.contains(&json!({"name": "proxy-ca", "mountPath": "/etc/proxy-ca"})));
    assert_eq!(mounts.len(), 2);
    // Alone, without an extra CA.
    let docs = render(&[
        "extraVolumes[0].name=tmp",
        "extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=tmp",
        "extraVolumeMounts[0].mountPath=/tmp",
    ]);
    assert_eq!(
        container(&docs)["volumeMounts"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn deployment_annotations_and_pod_labels_are_set() {
    let docs = render(&[
        "deploymentAnnotations.team=integrations",
        "podLabels.cost-center=42x",
    ]);
    let deploy = only(&docs, "Deployment");
    assert_eq!(
        deploy["metadata"]["annotations"]["team"],
        json!("integrations")
    );
    assert_eq!(
        deploy["spec"]["template"]["metadata"]["labels"]["cost-center"],
        json!("42x")
    );
    assert!(
        render(&[])[..]
            .iter()
            .all(|d| d["kind"] != "Deployment" || d["metadata"].get("annotations").is_none())
    );
}

#[test]
fn a_strategy_that_would_run_two_reconcilers_is_refused() {
    let strategy = |sets: &[&str]| only(&render(sets), "Deployment")["spec"]["strategy"].clone();
    // The chart's choices.
    assert_eq!(
        strategy(&[]),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    assert_eq!(
        strategy(&["leaderElection.enabled=false"]),
        json!({"type": "Recreate"})
    );
    // A user's, with leader election: the Lease keeps a single reconciler.
    assert_eq!(
        strategy(&[
            "strategy.type=RollingUpdate",
            "strategy.rollingUpdate.maxSurge=2"
        ]),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2}})
    );
    assert_eq!(
        strategy(&["leaderElection.enabled=false", "strategy.type=Recreate"]),
        json!({"type": "Recreate"})
    );
    for sets in [
        &[
            "leaderElection.enabled=false",
            "strategy.type=RollingUpdate",
        ][..],
        &[
            "leaderElection.enabled=false",
            "strategy.rollingUpdate.maxSurge=1",
        ][..],
    ] {
        let message = refused(sets);
        assert!(
            message.contains("only type Recreate is safe"),
            "{sets:?}: {message}"
        );
    }
}

#[test]
fn the_service_monitor_goes_to_its_namespace() {
    let monitor = |sets: &[&str]| {
        let mut all = vec!["metrics.serviceMonitor.enabled=true"];
        all.extend_from_slice(sets);
        only(&render(&all), "ServiceMonitor").clone()
    };
    assert_eq!(monitor(&[])["metadata"]["namespace"], json!(NAMESPACE));
    let other = monitor(&["metrics.serviceMonitor.namespace=monitoring"]);
    assert_eq!(other["metadata"]["namespace"], json!("monitoring"));
    // It still selects the operator's Service in the release namespace.
    assert_eq!(
        other["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
}
