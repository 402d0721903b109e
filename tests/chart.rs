//! Tests of the Helm chart in `charts/trackvia-operator`.
//!
//! They shell out to the real tools: `helm` (lint, template, install) and
//! `kubernetes-validate` (every rendered built-in object against the Kubernetes 1.33
//! schemas, strictly). The tools are taken from `PATH`, else from the test bed's cache
//! (`~/.cache/trackvia-operator/testbed/*/bin`); when neither has them the tests fail and say
//! to run `hack/testbed install`. The install test also needs a running bed
//! (`eval "$(hack/testbed up)"`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// Release name used for rendering.
const RELEASE: &str = "tvo";
/// Namespace the chart is rendered into.
const NAMESPACE: &str = "trackvia-system";
/// Kubernetes version the renderings are made for and validated against.
const KUBE_VERSION: &str = "1.33.0";
/// Upper bound for one tool invocation.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// The CRD's name.
const CRD_NAME: &str = "trackviaconnections.trackvia.io";
/// The generated CRD file, relative to the repository.
const CRD_FILE: &str = "crds/trackviaconnections.trackvia.io.yaml";
/// The chart's copy of it, relative to the chart; `templates/crds.yaml` renders it.
const CHART_CRD_FILE: &str = "files/crds/trackviaconnections.trackvia.io.yaml";
/// What every test says when a tool is missing.
const INSTALL_HINT: &str = "run `hack/testbed install` (or `eval \"$(hack/testbed up)\"`)";

// ---------------------------------------------------------------------------------------------
// Finding and running the tools
// ---------------------------------------------------------------------------------------------

use trackvia_testsupport::command::{Ran, run_blocking};
use trackvia_testsupport::tools::{chart_dir, repo_root, tool};

/// Runs `program` with `args`, killing it after `timeout`; panics when it cannot be started
/// or does not finish in time.
fn run(program: &Path, args: &[&str], timeout: Duration) -> Ran {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let ran = run_blocking(program, &args, &[], timeout);
    assert!(
        ran.status.is_some() || ran.timed_out,
        "cannot start `{}`: {}; {INSTALL_HINT}",
        ran.command,
        ran.stderr
    );
    assert!(
        !ran.timed_out,
        "`{}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        ran.command, ran.stdout, ran.stderr
    );
    ran
}

/// A fresh file under the target's scratch directory, with `contents`.
fn scratch_file(stem: &str, contents: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-tests");
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{stem}-{}-{n}.yaml", std::process::id()));
    std::fs::write(&path, contents).expect("writing a scratch file");
    path
}

/// Writes `values` to a scratch file for `--values` (JSON is YAML).
fn values_file(values: &Value) -> PathBuf {
    scratch_file("values", &values.to_string())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Rendering and validating
// ---------------------------------------------------------------------------------------------

/// `helm template` of the chart with `values`, without judging the outcome.
fn helm_template_output(values: &Value) -> Ran {
    let file = values_file(values);
    let chart = chart_dir();
    run(
        &tool("helm"),
        &[
            "template",
            RELEASE,
            path_str(&chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--api-versions",
            trackvia_testsupport::tools::MONITORING_API,
            "--values",
            path_str(&file),
        ],
        TOOL_TIMEOUT,
    )
}

/// One rendered object: its text as helm printed it, and parsed.
struct Document {
    text: String,
    value: Value,
}

/// The objects `helm template` renders for `values`, as printed and parsed.
fn render_documents(values: &Value) -> Vec<Document> {
    let out = helm_template_output(values).expect_success();
    split_documents(&out.stdout)
}

/// The objects `helm template` renders for `values`.
fn render(values: &Value) -> Vec<Value> {
    render_documents(values)
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// Every non-empty YAML document of `text` (helm separates them with `---` lines).
fn split_documents(text: &str) -> Vec<Document> {
    let mut chunks = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            chunks.push(String::new());
        } else if let Some(last) = chunks.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    chunks
        .into_iter()
        .filter_map(|text| {
            let value: Value = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{text}"));
            (!value.is_null()).then_some(Document { text, value })
        })
        .collect()
}

/// Kinds the chart renders that belong to the Prometheus Operator's CRDs, which
/// kubernetes-validate has no schema for; they are checked structurally instead.
fn is_prometheus_operator_kind(doc: &Value) -> bool {
    str_at(doc, "/apiVersion").starts_with("monitoring.coreos.com/")
}

/// Validates every built-in object of `docs` with `kubernetes-validate --strict` against
/// Kubernetes [`KUBE_VERSION`]; every one must pass and none may be left unchecked. The
/// text goes to the validator as helm printed it, so both read the same YAML.
fn validate_builtin(docs: &[Document]) {
    let builtin: Vec<&Document> = docs
        .iter()
        .filter(|d| !is_prometheus_operator_kind(&d.value))
        .collect();
    let text = builtin
        .iter()
        .map(|d| d.text.as_str())
        .collect::<Vec<_>>()
        .join("---\n");
    let file = scratch_file("rendered", &text);
    let out = run(
        &tool("kubernetes-validate"),
        &["--strict", "-k", KUBE_VERSION, path_str(&file)],
        TOOL_TIMEOUT,
    );
    let report = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.succeeded(),
        "kubernetes-validate rejected the rendering:\n{report}"
    );
    let problems: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR") || l.starts_with("FATAL"))
        .collect();
    assert!(
        problems.is_empty(),
        "kubernetes-validate could not fully check the rendering:\n{report}"
    );
    let passed = out
        .stdout
        .lines()
        .filter(|l| l.contains(" passed "))
        .count();
    assert_eq!(
        passed,
        builtin.len(),
        "kubernetes-validate did not report every object as passed:\n{report}"
    );
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn kind(doc: &Value) -> &str {
    str_at(doc, "/kind")
}

fn name(doc: &Value) -> &str {
    str_at(doc, "/metadata/name")
}

fn namespace(doc: &Value) -> &str {
    str_at(doc, "/metadata/namespace")
}

fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

fn only<'a>(docs: &'a [Value], wanted: &str) -> &'a Value {
    let found = of_kind(docs, wanted);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {wanted}, found {}: {:?}",
        found.len(),
        found.iter().map(|d| name(d)).collect::<Vec<_>>()
    );
    found[0]
}

fn deployment(docs: &[Value]) -> &Value {
    only(docs, "Deployment")
}

fn container(docs: &[Value]) -> &Value {
    let containers = deployment(docs)
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .expect("the Deployment has containers");
    assert_eq!(containers.len(), 1, "one container expected");
    &containers[0]
}

fn args(docs: &[Value]) -> Vec<String> {
    strings(container(docs).get("args"))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `--flag=value` in `args`, if present.
fn flag(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

// ---------------------------------------------------------------------------------------------
// RBAC: what the operator's ServiceAccount may do
// ---------------------------------------------------------------------------------------------

/// One permission: where ("cluster" or a namespace), API group, resource, verb.
type Permission = (String, String, String, String);

/// Every permission granted by one role's rules, at `scope`.
fn role_permissions(role: &Value, scope: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for group in strings(rule.get("apiGroups")) {
            for resource in strings(rule.get("resources")) {
                for verb in strings(rule.get("verbs")) {
                    out.insert((scope.to_string(), group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

/// What the operator's ServiceAccount is granted by the bindings in `docs`.
fn service_account_permissions(docs: &[Value], service_account: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for binding in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRoleBinding" | "RoleBinding"))
    {
        let binds_operator = binding
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| {
                str_at(s, "/kind") == "ServiceAccount"
                    && str_at(s, "/name") == service_account
                    && str_at(s, "/namespace") == NAMESPACE
            });
        if !binds_operator {
            continue;
        }
        let scope = if kind(binding) == "ClusterRoleBinding" {
            "cluster".to_string()
        } else {
            namespace(binding).to_string()
        };
        let role_kind = str_at(binding, "/roleRef/kind");
        let role_name = str_at(binding, "/roleRef/name");
        let role = docs
            .iter()
            .find(|d| {
                kind(d) == role_kind
                    && name(d) == role_name
                    && (role_kind == "ClusterRole" || namespace(d) == namespace(binding))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} {} binds a {role_kind} {role_name} the chart does not render",
                    kind(binding),
                    name(binding)
                )
            });
        out.extend(role_permissions(role, &scope));
    }
    out
}

/// The permissions the operator needs wherever it watches connections.
fn base_permissions(scope: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    let mut add = |group: &str, resource: &str, verbs: &[&str]| {
        for verb in verbs {
            out.insert((
                scope.to_string(),
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
            ));
        }
    };
    add(
        "trackvia.io",
        "trackviaconnections",
        &["get", "list", "watch", "patch"],
    );
    add("trackvia.io", "trackviaconnections/status", &["patch"]);
    add("", "secrets", &["get", "list", "watch", "create", "patch"]);
    add("events.k8s.io", "events", &["create", "patch"]);
    out
}

fn workload_permissions(scope: &str) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for resource in ["deployments", "statefulsets", "daemonsets"] {
        for verb in ["get", "patch"] {
            out.insert((
                scope.to_string(),
                "apps".to_string(),
                resource.to_string(),
                verb.to_string(),
            ));
        }
    }
    out
}

fn lease_permissions(scope: &str) -> BTreeSet<Permission> {
    ["get", "create", "update", "patch"]
        .into_iter()
        .map(|verb| {
            (
                scope.to_string(),
                "coordination.k8s.io".to_string(),
                "leases".to_string(),
                verb.to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks every rendering must pass
// ---------------------------------------------------------------------------------------------

/// Renders `values`, validates the result and runs the checks that hold for every
/// configuration; returns the objects for scenario-specific assertions.
fn render_checked(values: &Value) -> Vec<Value> {
    let documents = render_documents(values);
    validate_builtin(&documents);
    let docs: Vec<Value> = documents.into_iter().map(|d| d.value).collect();
    assert_hardened(&docs);
    assert_no_dangerous_rbac(&docs);
    assert_namespaced_objects_placed(&docs);
    docs
}

fn assert_hardened(docs: &[Value]) {
    let pod = deployment(docs)
        .pointer("/spec/template/spec")
        .expect("the Deployment has a pod template");
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], json!(true), "pod runAsNonRoot: {psc}");
    assert_eq!(psc["runAsUser"], json!(65532), "pod runAsUser: {psc}");
    assert_eq!(psc["runAsGroup"], json!(65532), "pod runAsGroup: {psc}");
    assert_eq!(psc["fsGroup"], json!(65532), "pod fsGroup: {psc}");
    assert_eq!(
        psc.pointer("/seccompProfile/type"),
        Some(&json!("RuntimeDefault")),
        "pod seccompProfile: {psc}"
    );
    let csc = &container(docs)["securityContext"];
    assert_eq!(
        csc["readOnlyRootFilesystem"],
        json!(true),
        "container: {csc}"
    );
    assert_eq!(
        csc["allowPrivilegeEscalation"],
        json!(false),
        "container: {csc}"
    );
    assert_eq!(
        csc.pointer("/capabilities/drop"),
        Some(&json!(["ALL"])),
        "container capabilities: {csc}"
    );
    assert!(
        csc.pointer("/capabilities/add").is_none(),
        "no capability may be added: {csc}"
    );
    // The ServiceAccount does not hand its token to every pod; the operator's pod asks.
    for sa in of_kind(docs, "ServiceAccount") {
        assert_eq!(
            sa["automountServiceAccountToken"],
            json!(false),
            "ServiceAccount {}",
            name(sa)
        );
    }
    assert_eq!(pod["automountServiceAccountToken"], json!(true));
    // The operator needs to know where and who it is.
    let env = container(docs)["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (var, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let entry = env
            .iter()
            .find(|e| e["name"] == json!(var))
            .unwrap_or_else(|| panic!("env {var} missing: {env:?}"));
        assert_eq!(
            entry.pointer("/valueFrom/fieldRef/fieldPath"),
            Some(&json!(field)),
            "env {var}"
        );
    }
}

fn assert_no_dangerous_rbac(docs: &[Value]) {
    for role in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role"))
    {
        for (_, group, resource, verb) in role_permissions(role, "") {
            assert!(
                !(group.is_empty() && resource == "secrets" && verb == "delete"),
                "{} {} may delete Secrets",
                kind(role),
                name(role)
            );
            assert!(
                verb != "*" && resource != "*" && group != "*",
                "{} {} uses a wildcard",
                kind(role),
                name(role)
            );
            assert!(
                !matches!(verb.as_str(), "escalate" | "bind" | "impersonate"),
                "{} {} grants {verb}",
                kind(role),
                name(role)
            );
        }
    }
}

fn assert_namespaced_objects_placed(docs: &[Value]) {
    for doc in docs {
        let cluster_scoped = matches!(
            kind(doc),
            "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        assert_eq!(
            namespace(doc).is_empty(),
            cluster_scoped,
            "{} {} has namespace {:?}",
            kind(doc),
            name(doc),
            namespace(doc)
        );
    }
}

fn fullname() -> String {
    format!("{RELEASE}-trackvia-operator")
}

/// Values turning on every optional part of the chart.
fn everything_enabled() -> Value {
    json!({
        "replicaCount": 2,
        "commonLabels": { "team": "platform" },
        "image": { "repository": "registry.example.com/trackvia-operator", "tag": "9.9.9", "pullPolicy": "Always" },
        "imagePullSecrets": ["registry-credentials", { "name": "more-credentials" }],
        "serviceAccount": { "annotations": { "example.com/role": "trackvia" } },
        "allowedHosts": ["*.trackvia.com", "trackvia.internal.example.com:8443"],
        "extraCA": { "secretName": "private-ca", "key": "bundle.pem" },
        "logLevel": "debug",
        "logFormat": "text",
        "rateLimit": 30,
        "concurrency": 4,
        "rolloutRestart": { "enabled": true },
        "extraEnv": [{ "name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128" }],
        "metrics": {
            "port": 9090,
            "service": { "port": 9091, "annotations": { "example.com/scrape": "true" } },
            "serviceMonitor": {
                "enabled": true,
                "interval": "15s",
                "labels": { "release": "prometheus" },
                "relabelings": [{ "action": "labeldrop", "regex": "pod" }],
            },
        },
        "prometheusRule": {
            "enabled": true,
            "labels": { "release": "prometheus" },
            "additionalAlertLabels": { "team": "platform" },
            "expiringSoonDays": 7,
        },
        "networkPolicy": {
            "enabled": true,
            "dns": { "to": [{ "namespaceSelector": {}, "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } } }] },
            "apiServer": { "cidrs": ["10.0.0.1/32"], "ports": [443, 6443] },
            "trackvia": { "cidrs": ["0.0.0.0/0"] },
            "metrics": { "from": [{ "namespaceSelector": { "matchLabels": { "name": "monitoring" } } }] },
        },
        "podDisruptionBudget": { "enabled": true },
        "podAnnotations": { "example.com/annotated": "yes" },
        "podLabels": { "example.com/labelled": "yes" },
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule" }],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"] }] }]
                }
            }
        },
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": { "app.kubernetes.io/name": "trackvia-operator" } },
        }],
        "priorityClassName": "system-cluster-critical",
    })
}

// ---------------------------------------------------------------------------------------------
// Lint
// ---------------------------------------------------------------------------------------------

fn helm_lint(values: &Value) {
    let file = values_file(values);
    let chart = chart_dir();
    let out = run(
        &tool("helm"),
        &[
            "lint",
            "--strict",
            path_str(&chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            path_str(&file),
        ],
        TOOL_TIMEOUT,
    )
    .expect_success();
    assert!(
        out.stdout.contains("0 chart(s) failed"),
        "helm lint did not report success:\n{}",
        out.stdout
    );
}

#[test]
fn lint_strict_with_default_values() {
    helm_lint(&json!({}));
}

#[test]
fn lint_strict_with_every_toggle_on() {
    helm_lint(&everything_enabled());
    helm_lint(
        &json!({ "watchNamespaces": ["a", "b"], "replicaCount": 3, "rolloutRestart": { "enabled": true } }),
    );
}

// ---------------------------------------------------------------------------------------------
// Renderings
// ---------------------------------------------------------------------------------------------

#[test]
fn default_values_render_a_hardened_cluster_wide_operator() {
    let docs = render_checked(&json!({}));
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    let expected: BTreeSet<&str> = [
        "CustomResourceDefinition",
        "Pod",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, expected, "objects rendered with default values");

    let deploy = deployment(&docs);
    assert_eq!(deploy["spec"]["replicas"], json!(1));
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], json!(fullname()));
    let c = container(&docs);
    assert_eq!(
        c["image"],
        json!(format!("trackvia-operator:{}", chart_app_version()))
    );
    assert_eq!(c["imagePullPolicy"], json!("IfNotPresent"));
    assert_eq!(
        c.pointer("/resources/requests"),
        Some(&json!({ "cpu": "10m", "memory": "32Mi" }))
    );
    assert_eq!(c.pointer("/resources/limits/memory"), Some(&json!("128Mi")));
    assert!(pod.get("volumes").is_none(), "no volumes by default: {pod}");

    let a = args(&docs);
    assert_eq!(a.first().map(String::as_str), Some("run"), "args: {a:?}");
    assert_eq!(flag(&a, "--metrics-addr").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(flag(&a, "--log-level").as_deref(), Some("info"));
    assert_eq!(flag(&a, "--log-format").as_deref(), Some("json"));
    assert_eq!(flag(&a, "--rate-limit").as_deref(), Some("60"));
    assert_eq!(flag(&a, "--concurrency").as_deref(), Some("16"));
    for absent in ["--namespaces", "--allowed-hosts", "--extra-ca-file"] {
        assert_eq!(flag(&a, absent), None, "{absent} must not be passed: {a:?}");
    }
    // One replica elects itself too, so that a rolling update never runs two reconcilers.
    assert!(a.iter().any(|x| x == "--leader-election"), "args: {a:?}");

    // Probes on the metrics port.
    assert_eq!(c.pointer("/ports/0/name"), Some(&json!("metrics")));
    assert_eq!(c.pointer("/ports/0/containerPort"), Some(&json!(8080)));
    assert_eq!(
        c.pointer("/livenessProbe/httpGet/path"),
        Some(&json!("/healthz"))
    );
    assert_eq!(
        c.pointer("/livenessProbe/httpGet/port"),
        Some(&json!("metrics"))
    );
    assert_eq!(
        c.pointer("/readinessProbe/httpGet/path"),
        Some(&json!("/readyz"))
    );
    assert_eq!(
        c.pointer("/readinessProbe/httpGet/port"),
        Some(&json!("metrics"))
    );

    // Exactly the permissions the operator needs, cluster-wide, and its Lease; no workloads.
    let mut expected = base_permissions("cluster");
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);

    // The metrics Service selects the operator's pods.
    let service = only(&docs, "Service");
    assert_eq!(
        service.pointer("/spec/ports/0/targetPort"),
        Some(&json!("metrics"))
    );
    let pod_labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().expect("a selector") {
        assert_eq!(&pod_labels[key], value, "Service selector {key}");
    }
}

#[test]
fn scoped_mode_grants_roles_only_in_the_watched_namespaces() {
    let docs = render_checked(&json!({ "watchNamespaces": ["a", "b"] }));
    assert_eq!(flag(&args(&docs), "--namespaces").as_deref(), Some("a,b"));

    // No cluster-wide grant to the operator at all, and no ClusterRole with Secrets.
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
    for role in of_kind(&docs, "ClusterRole") {
        assert!(
            !role_permissions(role, "")
                .iter()
                .any(|(_, _, resource, _)| resource == "secrets"),
            "ClusterRole {} grants Secrets in scoped mode",
            name(role)
        );
    }
    // Roles and bindings only in the listed namespaces (and the Lease's).
    for doc in docs
        .iter()
        .filter(|d| matches!(kind(d), "Role" | "RoleBinding"))
        .filter(|d| !name(d).ends_with("-leader-election"))
    {
        assert!(
            ["a", "b"].contains(&namespace(doc)),
            "{} {} in namespace {}",
            kind(doc),
            name(doc),
            namespace(doc)
        );
    }
    let mut expected = base_permissions("a");
    expected.extend(base_permissions("b"));
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);
}

#[test]
fn several_replicas_elect_a_leader_with_a_lease_role_and_a_pdb() {
    let docs = render_checked(&json!({ "replicaCount": 3 }));
    assert_eq!(deployment(&docs)["spec"]["replicas"], json!(3));
    let a = args(&docs);
    assert!(a.iter().any(|x| x == "--leader-election"), "args: {a:?}");
    assert_eq!(
        flag(&a, "--leader-election-namespace").as_deref(),
        Some(NAMESPACE)
    );
    let lease = flag(&a, "--leader-election-lease-name").expect("a lease name");
    assert_eq!(lease, fullname());

    // Leases only in the Lease's namespace, with the named Lease for all but create.
    let mut expected = base_permissions("cluster");
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);
    for role in docs
        .iter()
        .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            if !strings(rule.get("resources")).contains(&"leases".to_string()) {
                continue;
            }
            assert_eq!(kind(role), "Role", "leases only in a Role");
            let verbs = strings(rule.get("verbs"));
            if verbs != ["create"] {
                assert_eq!(
                    strings(rule.get("resourceNames")),
                    vec![lease.clone()],
                    "Lease rule {rule} must name the Lease"
                );
            }
        }
    }

    let pdb = only(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], json!("policy/v1"));
    assert_eq!(pdb.pointer("/spec/maxUnavailable"), Some(&json!(1)));
    assert_eq!(
        pdb.pointer("/spec/selector/matchLabels"),
        deployment(&docs).pointer("/spec/selector/matchLabels")
    );
}

#[test]
fn one_replica_elects_itself_and_rolls_out_without_overlap() {
    for replicas in [0, 1] {
        let docs = render_checked(&json!({ "replicaCount": replicas }));
        assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
        let mut expected = base_permissions("cluster");
        expected.extend(lease_permissions(NAMESPACE));
        assert_eq!(service_account_permissions(&docs, &fullname()), expected);
        assert!(args(&docs).iter().any(|x| x == "--leader-election"));
        // The new pod starts as a standby before the old one stops: it takes the Lease the
        // old one hands back, never reconciling beside it.
        assert_eq!(
            deployment(&docs)["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        );
    }
}

#[test]
fn without_leader_election_the_old_pod_stops_before_a_new_one_starts() {
    let docs = render_checked(&json!({ "leaderElection": { "enabled": false } }));
    assert_eq!(
        deployment(&docs)["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    assert!(
        !args(&docs)
            .iter()
            .any(|x| x.starts_with("--leader-election"))
    );
    assert_eq!(
        service_account_permissions(&docs, &fullname()),
        base_permissions("cluster")
    );
    let err = refused(&json!({ "replicaCount": 2, "leaderElection": { "enabled": false } }));
    assert!(err.contains("needs leaderElection.enabled"), "{err}");
}

#[test]
fn workloads_are_patched_only_with_rollout_restart_enabled() {
    let off = render(&json!({ "watchNamespaces": ["a"] }));
    assert!(
        !service_account_permissions(&off, &fullname())
            .iter()
            .any(|(_, group, _, _)| group == "apps"),
        "workload access without rolloutRestart.enabled"
    );
    let on =
        render_checked(&json!({ "watchNamespaces": ["a"], "rolloutRestart": { "enabled": true } }));
    let mut expected = base_permissions("a");
    expected.extend(workload_permissions("a"));
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&on, &fullname()), expected);

    let cluster = render(&json!({ "rolloutRestart": { "enabled": true } }));
    let mut expected = base_permissions("cluster");
    expected.extend(workload_permissions("cluster"));
    expected.extend(lease_permissions(NAMESPACE));
    assert_eq!(service_account_permissions(&cluster, &fullname()), expected);
}

#[test]
fn everything_enabled_renders_and_reflects_the_values() {
    let values = everything_enabled();
    let docs = render_checked(&values);
    let full = fullname();

    let a = args(&docs);
    assert_eq!(flag(&a, "--metrics-addr").as_deref(), Some("0.0.0.0:9090"));
    assert_eq!(flag(&a, "--log-level").as_deref(), Some("debug"));
    assert_eq!(flag(&a, "--log-format").as_deref(), Some("text"));
    assert_eq!(flag(&a, "--rate-limit").as_deref(), Some("30"));
    assert_eq!(flag(&a, "--concurrency").as_deref(), Some("4"));
    assert_eq!(
        flag(&a, "--allowed-hosts").as_deref(),
        Some("*.trackvia.com,trackvia.internal.example.com:8443")
    );
    assert!(a.iter().any(|x| x == "--leader-election"));

    // The extra CA: mounted read-only from the Secret, passed as a file inside the mount.
    let ca_file = flag(&a, "--extra-ca-file").expect("--extra-ca-file");
    let c = container(&docs);
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == json!("extra-ca")))
        .expect("the extra CA is mounted");
    assert_eq!(mount["readOnly"], json!(true));
    let mount_path = mount["mountPath"].as_str().expect("a mount path");
    assert!(
        ca_file.starts_with(&format!("{mount_path}/")),
        "{ca_file} is not under {mount_path}"
    );
    let pod = &deployment(&docs)["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == json!("extra-ca")))
        .expect("an extra-ca volume");
    assert_eq!(
        volume.pointer("/secret/secretName"),
        Some(&json!("private-ca"))
    );
    assert_eq!(
        volume.pointer("/secret/items/0/key"),
        Some(&json!("bundle.pem"))
    );
    let item_path = str_at(volume, "/secret/items/0/path");
    assert_eq!(format!("{mount_path}/{item_path}"), ca_file);

    // Image, pod placement and metadata.
    assert_eq!(
        c["image"],
        json!("registry.example.com/trackvia-operator:9.9.9")
    );
    assert_eq!(c["imagePullPolicy"], json!("Always"));
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{ "name": "registry-credentials" }, { "name": "more-credentials" }])
    );
    assert_eq!(pod["nodeSelector"], values["nodeSelector"]);
    assert_eq!(pod["tolerations"], values["tolerations"]);
    assert_eq!(pod["affinity"], values["affinity"]);
    assert_eq!(
        pod["topologySpreadConstraints"],
        values["topologySpreadConstraints"]
    );
    assert_eq!(pod["priorityClassName"], json!("system-cluster-critical"));
    let template_meta = &deployment(&docs)["spec"]["template"]["metadata"];
    assert_eq!(
        template_meta.pointer("/annotations/example.com~1annotated"),
        Some(&json!("yes"))
    );
    assert_eq!(
        template_meta.pointer("/labels/example.com~1labelled"),
        Some(&json!("yes"))
    );
    assert!(c["env"].as_array().is_some_and(|e| {
        e.contains(&json!({ "name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128" }))
    }));
    for doc in &docs {
        assert_eq!(
            doc.pointer("/metadata/labels/team"),
            Some(&json!("platform")),
            "commonLabels on {} {}",
            kind(doc),
            name(doc)
        );
    }
    let sa = only(&docs, "ServiceAccount");
    assert_eq!(
        sa.pointer("/metadata/annotations/example.com~1role"),
        Some(&json!("trackvia"))
    );

    // Metrics Service and ServiceMonitor agree with the container.
    let service = only(&docs, "Service");
    assert_eq!(service.pointer("/spec/ports/0/port"), Some(&json!(9091)));
    assert_eq!(c.pointer("/ports/0/containerPort"), Some(&json!(9090)));
    let monitor = only(&docs, "ServiceMonitor");
    assert_eq!(namespace(monitor), NAMESPACE);
    assert_eq!(
        monitor.pointer("/metadata/labels/release"),
        Some(&json!("prometheus"))
    );
    let endpoint = monitor.pointer("/spec/endpoints/0").expect("an endpoint");
    assert_eq!(
        endpoint["port"],
        service
            .pointer("/spec/ports/0/name")
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(endpoint["path"], json!("/metrics"));
    assert_eq!(endpoint["interval"], json!("15s"));
    assert_eq!(
        endpoint["relabelings"],
        values["metrics"]["serviceMonitor"]["relabelings"]
    );
    let service_labels = &service["metadata"]["labels"];
    for (key, value) in monitor
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .expect("the ServiceMonitor selects by labels")
    {
        assert_eq!(&service_labels[key], value, "ServiceMonitor selector {key}");
    }
    assert_eq!(
        monitor.pointer("/spec/namespaceSelector/matchNames"),
        Some(&json!([NAMESPACE]))
    );

    assert_prometheus_rule(only(&docs, "PrometheusRule"), &full);
    assert_network_policy(only(&docs, "NetworkPolicy"), &docs);

    // RBAC: leases and workloads on top of the base.
    let mut expected = base_permissions("cluster");
    expected.extend(lease_permissions(NAMESPACE));
    expected.extend(workload_permissions("cluster"));
    assert_eq!(service_account_permissions(&docs, &full), expected);
    assert!(of_kind(&docs, "PodDisruptionBudget").len() == 1);
}

fn assert_prometheus_rule(rule: &Value, full: &str) {
    assert_eq!(namespace(rule), NAMESPACE);
    assert_eq!(
        rule.pointer("/metadata/labels/release"),
        Some(&json!("prometheus"))
    );
    let mut alerts = BTreeMap::new();
    for group in rule
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .expect("groups")
    {
        assert!(!str_at(group, "/name").is_empty(), "a group without a name");
        for r in group["rules"].as_array().expect("rules") {
            alerts.insert(str_at(r, "/alert").to_string(), r.clone());
        }
    }
    let names: Vec<&str> = alerts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "TrackViaConnectionNotReady",
            "TrackViaOperatorDown",
            "TrackViaTokenExpired",
            "TrackViaTokenExpiringSoon",
            "TrackViaVerificationStale",
        ]
    );
    let duration = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || "smhdwy".contains(c))
            && s.starts_with(|c: char| c.is_ascii_digit())
    };
    for (alert, r) in &alerts {
        let expr = str_at(r, "/expr");
        assert!(!expr.trim().is_empty(), "{alert} has no expression");
        assert_eq!(
            expr.matches('(').count(),
            expr.matches(')').count(),
            "{alert}: {expr}"
        );
        assert!(duration(str_at(r, "/for")), "{alert} for: {:?}", r["for"]);
        assert!(
            ["warning", "critical"].contains(&str_at(r, "/labels/severity")),
            "{alert} severity"
        );
        assert_eq!(
            r.pointer("/labels/team"),
            Some(&json!("platform")),
            "{alert} labels"
        );
        assert!(
            !str_at(r, "/annotations/summary").is_empty(),
            "{alert} summary"
        );
        let description = str_at(r, "/annotations/description");
        assert!(!description.is_empty(), "{alert} description");
        // Prometheus' own templating must survive Helm's.
        if alert != "TrackViaOperatorDown" {
            assert!(
                description.contains("{{ $labels.namespace }}"),
                "{alert}: {description}"
            );
        }
    }
    let expiry = "trackvia_connection_token_expiration_timestamp_seconds";
    let ready = "trackvia_connection_ready";
    let expr = |alert: &str| str_at(&alerts[alert], "/expr").to_string();
    assert!(expr("TrackViaTokenExpired").contains(expiry));
    let soon = expr("TrackViaTokenExpiringSoon");
    assert!(soon.contains(expiry) && soon.contains(ready), "{soon}");
    assert!(
        soon.contains(&(7 * 86400).to_string()),
        "expiringSoonDays: 7 → {soon}"
    );
    let not_ready = expr("TrackViaConnectionNotReady");
    assert!(
        not_ready.contains(ready) && not_ready.contains(expiry),
        "{not_ready}"
    );
    assert!(
        not_ready.contains("unless"),
        "NotReady excludes expired tokens: {not_ready}"
    );
    let stale = expr("TrackViaVerificationStale");
    assert!(
        stale.contains("trackvia_connection_last_success_timestamp_seconds")
            && stale.contains(ready)
            && stale.contains(&(6 * 3600).to_string()),
        "{stale}"
    );
    assert!(
        stale.contains("unless") && stale.contains(&(7 * 86400).to_string()),
        "VerificationStale yields to the expiry alerts: {stale}"
    );
    let down = expr("TrackViaOperatorDown");
    assert!(down.contains(&format!("job=\"{full}-metrics\"")), "{down}");
    assert!(down.contains("up{"), "{down}");
}

fn assert_network_policy(policy: &Value, docs: &[Value]) {
    let pod_labels = &deployment(docs)["spec"]["template"]["metadata"]["labels"];
    for (key, value) in policy
        .pointer("/spec/podSelector/matchLabels")
        .and_then(Value::as_object)
        .expect("a pod selector")
    {
        assert_eq!(&pod_labels[key], value, "NetworkPolicy selector {key}");
    }
    assert_eq!(
        policy.pointer("/spec/policyTypes"),
        Some(&json!(["Ingress", "Egress"]))
    );
    // Ingress: the metrics port only.
    let ingress = policy
        .pointer("/spec/ingress")
        .and_then(Value::as_array)
        .expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{ "port": 9090, "protocol": "TCP" }])
    );
    assert!(ingress[0]["from"].is_array(), "metrics.from is applied");
    // Egress: DNS, the API server and TrackVia; every rule names its ports.
    let egress = policy
        .pointer("/spec/egress")
        .and_then(Value::as_array)
        .expect("egress");
    let mut ports = BTreeSet::new();
    for rule in egress {
        let rule_ports = rule["ports"]
            .as_array()
            .expect("every egress rule limits ports");
        for p in rule_ports {
            ports.insert((
                p["port"].as_i64().expect("a numeric port"),
                str_at(p, "/protocol").to_string(),
            ));
        }
    }
    let expected: BTreeSet<(i64, String)> = [(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP")]
        .into_iter()
        .map(|(p, proto)| (p, proto.to_string()))
        .collect();
    assert_eq!(ports, expected, "egress ports");
    let api_rule = egress
        .iter()
        .find(|r| r["to"] == json!([{ "ipBlock": { "cidr": "10.0.0.1/32" } }]))
        .expect("an API server rule with the configured CIDR");
    assert_eq!(
        api_rule["ports"],
        json!([{ "port": 443, "protocol": "TCP" }, { "port": 6443, "protocol": "TCP" }])
    );
    let trackvia_rule = egress
        .iter()
        .find(|r| r["to"] == json!([{ "ipBlock": { "cidr": "0.0.0.0/0" } }]))
        .expect("a TrackVia rule");
    assert_eq!(
        trackvia_rule["ports"],
        json!([{ "port": 443, "protocol": "TCP" }])
    );
}

#[test]
fn extra_ca_from_a_config_map_is_mounted_read_only() {
    let docs = render_checked(&json!({ "extraCA": { "configMapName": "ca-bundle" } }));
    let pod = &deployment(&docs)["spec"]["template"]["spec"];
    assert_eq!(
        pod.pointer("/volumes/0/configMap/name"),
        Some(&json!("ca-bundle"))
    );
    assert_eq!(
        pod.pointer("/volumes/0/configMap/items/0/key"),
        Some(&json!("ca.crt"))
    );
    assert_eq!(
        container(&docs).pointer("/volumeMounts/0/readOnly"),
        Some(&json!(true))
    );
    assert!(flag(&args(&docs), "--extra-ca-file").is_some());
}

#[test]
fn image_digest_wins_over_the_tag() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let docs = render(&json!({ "image": { "tag": "1.2.3", "digest": digest } }));
    assert_eq!(
        container(&docs)["image"],
        json!(format!("trackvia-operator@{digest}"))
    );
}

#[test]
fn scoped_high_availability_keeps_secrets_out_of_cluster_roles() {
    let docs = render_checked(&json!({
        "watchNamespaces": ["team-a", "team-b", "team-c"],
        "replicaCount": 2,
        "rolloutRestart": { "enabled": true },
        "leaderElection": { "namespace": "team-a", "leaseName": "tvo-leader" },
    }));
    let a = args(&docs);
    assert_eq!(
        flag(&a, "--namespaces").as_deref(),
        Some("team-a,team-b,team-c")
    );
    assert_eq!(
        flag(&a, "--leader-election-namespace").as_deref(),
        Some("team-a")
    );
    assert_eq!(
        flag(&a, "--leader-election-lease-name").as_deref(),
        Some("tvo-leader")
    );
    let mut expected = BTreeSet::new();
    for ns in ["team-a", "team-b", "team-c"] {
        expected.extend(base_permissions(ns));
        expected.extend(workload_permissions(ns));
    }
    expected.extend(lease_permissions("team-a"));
    assert_eq!(service_account_permissions(&docs, &fullname()), expected);
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
}

#[test]
fn aggregated_roles_extend_view_edit_and_admin() {
    let docs = render(&json!({}));
    let label = |role: &Value, key: &str| {
        role.pointer(&format!(
            "/metadata/labels/rbac.authorization.k8s.io~1{key}"
        ))
        .cloned()
    };
    let view = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| label(r, "aggregate-to-view").is_some())
        .expect("a ClusterRole aggregated to view");
    assert_eq!(label(view, "aggregate-to-view"), Some(json!("true")));
    let view_verbs: BTreeSet<String> = role_permissions(view, "")
        .into_iter()
        .map(|(_, _, _, verb)| verb)
        .collect();
    assert_eq!(
        view_verbs,
        ["get", "list", "watch"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let edit = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| label(r, "aggregate-to-edit").is_some())
        .expect("a ClusterRole aggregated to edit");
    assert_eq!(label(edit, "aggregate-to-admin"), Some(json!("true")));
    let edit_permissions = role_permissions(edit, "");
    for verb in [
        "create", "update", "patch", "delete", "get", "list", "watch",
    ] {
        assert!(
            edit_permissions.contains(&(
                String::new(),
                "trackvia.io".to_string(),
                "trackviaconnections".to_string(),
                verb.to_string()
            )),
            "edit lacks {verb}"
        );
    }
    for role in [view, edit] {
        assert!(
            role_permissions(role, "")
                .iter()
                .all(|(_, group, _, _)| group == "trackvia.io"),
            "{} grants more than TrackViaConnections",
            name(role)
        );
    }
    let none = render(&json!({ "rbac": { "aggregateToDefaultRoles": false } }));
    assert!(of_kind(&none, "ClusterRole").iter().all(
        |r| label(r, "aggregate-to-view").is_none() && label(r, "aggregate-to-edit").is_none()
    ));
}

// ---------------------------------------------------------------------------------------------
// The values schema
// ---------------------------------------------------------------------------------------------

/// Renders `values`, expects helm to refuse them, and returns its error output.
fn refused(values: &Value) -> String {
    let out = helm_template_output(values);
    assert!(
        !out.succeeded(),
        "helm accepted values it should refuse: {values}\n{}",
        out.stdout
    );
    out.stderr
}

#[test]
fn schema_refuses_wrong_types_naming_the_key() {
    for (values, key) in [
        (json!({ "replicaCount": "three" }), "replicaCount"),
        (json!({ "rbac": { "create": "yes" } }), "create"),
        (json!({ "watchNamespaces": "a,b" }), "watchNamespaces"),
        (json!({ "metrics": { "port": "http" } }), "port"),
        (json!({ "logFormat": "xml" }), "logFormat"),
        (json!({ "logLevel": "verbose" }), "logLevel"),
        (json!({ "rateLimit": 0 }), "rateLimit"),
        (
            json!({ "watchNamespaces": ["Not_A_Namespace"] }),
            "watchNamespaces",
        ),
    ] {
        let err = refused(&values);
        assert!(
            err.to_lowercase().contains("schema") && err.contains(key),
            "helm's error for {values} should come from the schema and name {key}:\n{err}"
        );
    }
}

#[test]
fn schema_refuses_unknown_keys_naming_them() {
    for (values, key) in [
        (json!({ "replicas": 2 }), "replicas"),
        (
            json!({ "metrics": { "serviceMonitor": { "intervall": "30s" } } }),
            "intervall",
        ),
        (json!({ "image": { "name": "x" } }), "name"),
        (
            json!({ "networkPolicy": { "apiServer": { "cidr": "10.0.0.0/8" } } }),
            "cidr",
        ),
    ] {
        let err = refused(&values);
        assert!(
            err.to_lowercase().contains("schema") && err.contains(key),
            "helm's error for {values} should come from the schema and name {key}:\n{err}"
        );
    }
}

#[test]
fn extra_ca_from_both_sources_is_refused() {
    let err = refused(&json!({ "extraCA": { "secretName": "a", "configMapName": "b" } }));
    assert!(err.contains("extraCA"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Files that must agree with each other
// ---------------------------------------------------------------------------------------------

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn chart_yaml() -> Value {
    serde_yaml_ng::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml parses")
}

fn chart_app_version() -> String {
    str_at(&chart_yaml(), "/appVersion").to_string()
}

/// The `version` of the root crate's `[package]` table.
fn cargo_package_version() -> String {
    let manifest = read(&repo_root().join("Cargo.toml"));
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if !in_package {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "version"
        {
            return value.trim().trim_matches('"').to_string();
        }
    }
    panic!("no version in Cargo.toml's [package]");
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart = chart_yaml();
    assert_eq!(chart["apiVersion"], json!("v2"));
    assert_eq!(chart["name"], json!("trackvia-operator"));
    assert_eq!(chart_app_version(), cargo_package_version());
    assert_eq!(env!("CARGO_PKG_VERSION"), cargo_package_version());
}

#[test]
fn chart_crd_is_identical_to_the_generated_crd() {
    let generated = repo_root().join(CRD_FILE);
    let in_chart = chart_dir().join(CHART_CRD_FILE);
    let fix = format!("cp {CRD_FILE} charts/trackvia-operator/{CHART_CRD_FILE}");
    let generated_bytes = std::fs::read(&generated).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); generate it with `cargo run -- crd > {CRD_FILE}`",
            generated.display()
        )
    });
    let chart_bytes = std::fs::read(&in_chart).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); copy it with `{fix}`",
            in_chart.display()
        )
    });
    assert!(
        generated_bytes == chart_bytes,
        "{} differs from {}; copy it with `{fix}`",
        in_chart.display(),
        generated.display()
    );
    // No crds/ directory in the chart: Helm would install its files besides the template,
    // and never upgrade them.
    assert!(
        !chart_dir().join("crds").exists(),
        "the chart must not have a crds/ directory; the CRD is rendered by templates/crds.yaml"
    );

    let crd: Value = serde_yaml_ng::from_slice(&chart_bytes).expect("the CRD parses");
    assert_eq!(crd["kind"], json!("CustomResourceDefinition"));
    assert_eq!(name(&crd), CRD_NAME);
    assert_eq!(crd.pointer("/spec/group"), Some(&json!("trackvia.io")));
    assert_eq!(crd.pointer("/spec/scope"), Some(&json!("Namespaced")));
    assert_eq!(
        crd.pointer("/spec/names/kind"),
        Some(&json!("TrackViaConnection"))
    );
    assert_eq!(
        crd.pointer("/spec/names/plural"),
        Some(&json!("trackviaconnections"))
    );
    assert!(strings(crd.pointer("/spec/names/shortNames")).contains(&"tvc".to_string()));
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|v| v.iter().find(|v| v["name"] == json!("v1alpha1")))
        .expect("version v1alpha1");
    assert!(
        version.pointer("/subresources/status").is_some(),
        "status subresource"
    );
    validate_builtin(&split_documents(&String::from_utf8_lossy(&chart_bytes)));
}

/// The instruction value of the last `instruction` line of the final Dockerfile stage.
fn dockerfile_final_stage() -> Vec<(String, String)> {
    let text = read(&repo_root().join("Dockerfile"));
    let mut stage = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let (instruction, rest) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stage.clear();
        }
        stage.push((instruction, rest.trim().to_string()));
    }
    stage
}

#[test]
fn dockerfile_matches_the_chart() {
    let stage = dockerfile_final_stage();
    let get = |instruction: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(i, _)| i == instruction)
            .map(|(_, v)| v.clone())
            .collect()
    };
    // Nothing is pulled: the image holds only what hack/image puts in its build context.
    assert_eq!(get("FROM"), ["scratch"]);
    let user = get("USER").pop().expect("the final stage sets USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    let entrypoint: Vec<String> =
        serde_json::from_str(&get("ENTRYPOINT").pop().expect("an ENTRYPOINT"))
            .expect("ENTRYPOINT in exec form");
    let binary = entrypoint
        .first()
        .expect("ENTRYPOINT names the binary")
        .clone();
    assert_eq!(binary, "/usr/local/bin/trackvia-operator");
    assert!(
        get("COPY")
            .iter()
            .any(|c| c.ends_with(&format!(" {binary}"))),
        "the final stage copies the binary to {binary}"
    );
    let cmd: Vec<String> =
        serde_json::from_str(&get("CMD").pop().expect("a CMD")).expect("CMD in exec form");
    assert_eq!(cmd, ["run"]);

    let docs = render(&json!({}));
    assert_eq!(strings(container(&docs).get("command")), [binary]);
    let psc = &deployment(&docs)["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(
        psc["runAsUser"].to_string(),
        uid,
        "chart runAsUser vs Dockerfile USER"
    );
    assert_eq!(
        psc["runAsGroup"].to_string(),
        gid,
        "chart runAsGroup vs Dockerfile USER"
    );

    let script = read(&repo_root().join("hack/image"));
    assert!(
        script.contains("cargo build --release --locked --bin trackvia-operator"),
        "the image holds the locked release binary"
    );
}

/// Chart values whose contents are Kubernetes objects passed through as they are.
const PASSTHROUGH_VALUES: &[&str] = &["resources", "podSecurityContext", "securityContext"];

/// Dotted paths of every value in values.yaml, stopping at empty maps, lists and
/// pass-through objects.
fn value_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() && !PASSTHROUGH_VALUES.contains(&prefix) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                value_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_value_is_documented_and_in_the_schema() {
    let values_text = read(&chart_dir().join("values.yaml"));
    let values: Value = serde_yaml_ng::from_str(&values_text).expect("values.yaml parses");
    let schema: Value = serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("the schema parses");
    let readme = read(&chart_dir().join("README.md"));
    let mut paths = Vec::new();
    value_paths(&values, "", &mut paths);
    for path in &paths {
        assert!(
            readme.contains(&format!("| `{path}` |")),
            "README.md's values table lacks `{path}`"
        );
        let pointer = format!("/properties/{}", path.replace('.', "/properties/"));
        let entry = schema
            .pointer(&pointer)
            .unwrap_or_else(|| panic!("values.schema.json lacks {path}"));
        assert!(
            entry
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty()),
            "values.schema.json has no description for {path}"
        );
    }
    // Every object the schema defines is closed.
    fn closed(schema: &Value, at: &str) {
        if schema["type"] == json!("object") && schema.get("properties").is_some() {
            assert_eq!(
                schema["additionalProperties"],
                json!(false),
                "schema object {at} must refuse unknown keys"
            );
            for (key, child) in schema["properties"].as_object().into_iter().flatten() {
                closed(child, &format!("{at}.{key}"));
            }
        }
    }
    closed(&schema, "(root)");
    assert_eq!(
        schema["$schema"],
        json!("http://json-schema.org/draft-07/schema#")
    );

    // Every value line of values.yaml is preceded by a comment, except the headers of
    // groups whose members are commented, and the contents of pass-through objects.
    let lines: Vec<&str> = values_text.lines().collect();
    let mut skip_deeper_than: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(limit) = skip_deeper_than {
            if indent > limit {
                continue;
            }
            skip_deeper_than = None;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        let commented = i > 0 && lines[i - 1].trim_start().starts_with('#');
        if PASSTHROUGH_VALUES.contains(&key) {
            skip_deeper_than = Some(indent);
        }
        let is_group_header = rest.trim().is_empty() && !PASSTHROUGH_VALUES.contains(&key);
        assert!(
            commented || is_group_header,
            "values.yaml line {} (`{}`) has no comment",
            i + 1,
            line.trim()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A real install into the test bed
// ---------------------------------------------------------------------------------------------

/// Uninstalls a release when dropped, so that a failed test leaves no cluster-wide objects.
struct ReleaseGuard {
    release: String,
    namespace: String,
    installed: bool,
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if self.installed {
            let _ = run(
                &tool("helm"),
                &[
                    "uninstall",
                    &self.release,
                    "--namespace",
                    &self.namespace,
                    "--timeout",
                    "60s",
                ],
                TOOL_TIMEOUT,
            );
        }
    }
}

fn helm_in_bed(args: &[&str]) -> Ran {
    let helm = tool("helm");
    run(&helm, args, TOOL_TIMEOUT).expect_success()
}

/// Bound on the whole install test; each helm call has its own, shorter one.
const INSTALL_TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall_on_the_shared_bed() {
    tokio::time::timeout(INSTALL_TEST_TIMEOUT, install_upgrade_uninstall())
        .await
        .unwrap_or_else(|_| {
            panic!("the install test did not finish within {INSTALL_TEST_TIMEOUT:?}")
        });
}

async fn install_upgrade_uninstall() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

    let client = trackvia_testsupport::kube::client().await;
    // The shared bed's CRD belongs to every test binary: the chart leaves it alone here
    // (crds.enabled=false); tests/chart_crds.rs installs and upgrades it on a private bed.
    common::ensure_crd(&client).await;
    let ns = trackvia_testsupport::kube::TestNamespace::create(&client, "chart-install").await;
    let namespace = ns.name().to_string();
    let release = namespace.clone();
    let full = format!("{release}-trackvia-operator");
    let chart = chart_dir();
    let chart = path_str(&chart).to_string();

    let mut guard = ReleaseGuard {
        release: release.clone(),
        namespace: namespace.clone(),
        installed: false,
    };
    // No kubelet runs in the bed, so pods never start: replicas 0 keeps that honest.
    let install = {
        let (release, namespace, chart) = (release.clone(), namespace.clone(), chart.clone());
        tokio::task::spawn_blocking(move || {
            helm_in_bed(&[
                "install",
                &release,
                &chart,
                "--namespace",
                &namespace,
                "--set",
                "replicaCount=0",
                "--set",
                "crds.enabled=false",
                "--timeout",
                "60s",
            ])
        })
    };
    guard.installed = true;
    install.await.expect("helm install ran");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get(CRD_NAME).await.expect("the CRD is installed");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let deploy = deployments.get(&full).await.expect("the Deployment exists");
    assert_eq!(deploy.spec.and_then(|s| s.replicas), Some(0));
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    cluster_roles
        .get(&full)
        .await
        .expect("the operator's ClusterRole exists");

    // A connection and its credentials, made by a person between install and upgrade.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "trackvia-api-user" },
        "stringData": { "apiKey": "not-a-real-key", "authToken": "not-a-real-token" },
    }))
    .expect("a Secret literal");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the Secret");
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("trackvia.io", "v1alpha1", "TrackViaConnection"),
        "trackviaconnections",
    );
    let connections: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &resource);
    let connection: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": { "name": "crm" },
        "spec": {
            "host": "acme.trackvia.com",
            "credentialsSecretRef": { "name": "trackvia-api-user" },
            "tokenExpiresOn": "2030-01-01",
        },
    }))
    .expect("a TrackViaConnection literal");
    connections
        .create(&PostParams::default(), &connection)
        .await
        .expect("creating a TrackViaConnection");

    // Upgrade with different values: leader election, restarts, a network policy.
    {
        let (release, namespace, chart) = (release.clone(), namespace.clone(), chart.clone());
        tokio::task::spawn_blocking(move || {
            helm_in_bed(&[
                "upgrade",
                &release,
                &chart,
                "--namespace",
                &namespace,
                "--set",
                "replicaCount=2",
                "--set",
                "logLevel=debug",
                "--set",
                "rolloutRestart.enabled=true",
                "--set",
                "networkPolicy.enabled=true",
                "--set",
                "crds.enabled=false",
                "--timeout",
                "60s",
            ])
        })
        .await
        .expect("helm upgrade ran");
    }
    let deploy = deployments.get(&full).await.expect("the Deployment exists");
    let spec = deploy.spec.expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(2));
    let upgraded_args = spec.template.spec.expect("a pod spec").containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        upgraded_args.contains(&"--log-level=debug".to_string()),
        "{upgraded_args:?}"
    );
    assert!(
        upgraded_args.contains(&"--leader-election".to_string()),
        "{upgraded_args:?}"
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), &namespace);
    roles
        .get(&format!("{full}-leader-election"))
        .await
        .expect("the leader-election Role exists after the upgrade");
    let cluster_role = cluster_roles.get(&full).await.expect("the ClusterRole");
    assert!(
        cluster_role.rules.unwrap_or_default().iter().any(|r| r
            .resources
            .as_ref()
            .is_some_and(|res| res.contains(&"deployments".to_string()))),
        "the upgrade granted workload restarts"
    );

    {
        let (release, namespace) = (release.clone(), namespace.clone());
        tokio::task::spawn_blocking(move || {
            helm_in_bed(&[
                "uninstall",
                &release,
                "--namespace",
                &namespace,
                "--timeout",
                "60s",
            ])
        })
        .await
        .expect("helm uninstall ran");
    }
    guard.installed = false;

    // The chart's own objects are gone; the CRD and what people made with it stay.
    assert!(
        deployments
            .get_opt(&full)
            .await
            .expect("reading the Deployment")
            .is_none()
    );
    assert!(
        cluster_roles
            .get_opt(&full)
            .await
            .expect("reading the ClusterRole")
            .is_none()
    );
    crds.get(CRD_NAME)
        .await
        .expect("a CRD the release does not manage survives uninstall");
    connections
        .get("crm")
        .await
        .expect("the TrackViaConnection survives uninstall");
    secrets
        .get("trackvia-api-user")
        .await
        .expect("the credentials Secret survives uninstall");

    ns.cleanup().await;
}
