//! Rendering the Helm chart in `charts/trackvia-operator` for the chart tests: running the real
//! `helm` (taken from `PATH`, else from the test bed's cache; a missing tool fails the test and
//! says to run `hack/testbed install`), splitting and validating its output with
//! `kubernetes-validate --strict`, and reading the rendered objects.

pub mod checks;
pub mod rbac;

// Each test binary uses only some of these.
#[allow(unused_imports)]
pub use self::{checks::*, rbac::*};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

/// Release name used for rendering.
pub const RELEASE: &str = "tvo";
/// Namespace the chart is rendered into.
pub const NAMESPACE: &str = "trackvia-system";
/// Kubernetes version the renderings are made for and validated against.
pub const KUBE_VERSION: &str = "1.33.0";
/// Upper bound for one tool invocation.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// The CRD's name.
pub const CRD_NAME: &str = "trackviaconnections.trackvia.io";
/// The generated CRD file, relative to the repository.
pub const CRD_FILE: &str = "crds/trackviaconnections.trackvia.io.yaml";
/// The chart's copy of it, relative to the chart; `templates/crds.yaml` renders it.
pub const CHART_CRD_FILE: &str = "files/crds/trackviaconnections.trackvia.io.yaml";
/// The annotation that keeps an object on `helm uninstall`.
pub const KEEP: &str = "helm.sh/resource-policy";
/// What every test says when a tool is missing.
pub const INSTALL_HINT: &str = "run `hack/testbed install` (or `eval \"$(hack/testbed up)\"`)";

// ---------------------------------------------------------------------------------------------
// Finding and running the tools
// ---------------------------------------------------------------------------------------------

use trackvia_testsupport::command::{Ran, run_blocking};
use trackvia_testsupport::tools::{chart_dir, tool};

/// Runs `program` with `args`, killing it after `timeout`; panics when it cannot be started
/// or does not finish in time.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Ran {
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
pub fn scratch_file(stem: &str, contents: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-tests");
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{stem}-{}-{n}.yaml", std::process::id()));
    std::fs::write(&path, contents).expect("writing a scratch file");
    path
}

/// Writes `values` to a scratch file for `--values` (JSON is YAML).
pub fn values_file(values: &Value) -> PathBuf {
    scratch_file("values", &values.to_string())
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Rendering and validating
// ---------------------------------------------------------------------------------------------

/// `helm template` of the chart with `values`, without judging the outcome.
pub fn helm_template_output(values: &Value) -> Ran {
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
pub struct Document {
    text: String,
    value: Value,
}

/// The objects `helm template` renders for `values`, as printed and parsed.
pub fn render_documents(values: &Value) -> Vec<Document> {
    let out = helm_template_output(values).expect_success();
    split_documents(&out.stdout)
}

/// The objects `helm template` renders for `values`.
pub fn render(values: &Value) -> Vec<Value> {
    render_documents(values)
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// Every non-empty YAML document of `text` (helm separates them with `---` lines).
pub fn split_documents(text: &str) -> Vec<Document> {
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
pub fn is_prometheus_operator_kind(doc: &Value) -> bool {
    str_at(doc, "/apiVersion").starts_with("monitoring.coreos.com/")
}

/// Validates every built-in object of `docs` with `kubernetes-validate --strict` against
/// Kubernetes [`KUBE_VERSION`]; every one must pass and none may be left unchecked. The
/// text goes to the validator as helm printed it, so both read the same YAML.
pub fn validate_builtin(docs: &[Document]) {
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

pub fn str_at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn kind(doc: &Value) -> &str {
    str_at(doc, "/kind")
}

pub fn name(doc: &Value) -> &str {
    str_at(doc, "/metadata/name")
}

pub fn namespace(doc: &Value) -> &str {
    str_at(doc, "/metadata/namespace")
}

pub fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

pub fn only<'a>(docs: &'a [Value], wanted: &str) -> &'a Value {
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

pub fn deployment(docs: &[Value]) -> &Value {
    only(docs, "Deployment")
}

pub fn container(docs: &[Value]) -> &Value {
    let containers = deployment(docs)
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .expect("the Deployment has containers");
    assert_eq!(containers.len(), 1, "one container expected");
    &containers[0]
}

pub fn args(docs: &[Value]) -> Vec<String> {
    strings(container(docs).get("args"))
}

pub fn strings(value: Option<&Value>) -> Vec<String> {
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
pub fn flag(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn chart_yaml() -> Value {
    serde_yaml_ng::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml parses")
}

pub fn chart_app_version() -> String {
    str_at(&chart_yaml(), "/appVersion").to_string()
}

/// Renders `values`, expects helm to refuse them, and returns its error output.
pub fn refused(values: &Value) -> String {
    let out = helm_template_output(values);
    assert!(
        !out.succeeded(),
        "helm accepted values it should refuse: {values}\n{}",
        out.stdout
    );
    out.stderr
}

/// The generated CRD, as parsed YAML.
pub fn generated_crd() -> Value {
    let text = read(&trackvia_testsupport::tools::repo_root().join(CRD_FILE));
    serde_yaml_ng::from_str(&text).expect("the generated CRD parses")
}

/// The API of TrackViaConnections in `namespace`, untyped (as a person's tools see them).
pub fn connections_api(
    client: &kube::Client,
    namespace: &str,
) -> kube::Api<kube::api::DynamicObject> {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("trackvia.io", "v1alpha1", "TrackViaConnection"),
        "trackviaconnections",
    );
    kube::Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Connection `crm` as a person writes it, reading Secret `trackvia-api-user`.
pub fn connection_literal() -> kube::api::DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": { "name": "crm" },
        "spec": {
            "host": "acme.trackvia.com",
            "credentialsSecretRef": { "name": "trackvia-api-user" },
            "tokenExpiresOn": "2030-01-01",
        },
    }))
    .expect("a TrackViaConnection literal")
}
