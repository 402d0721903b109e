//! Finding the command-line tools the tests run (helm, kubernetes-validate, promtool,
//! prometheus) and rendering the chart. A missing tool is a loud failure that says how to
//! install it: tests that need a tool never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::command::run;

/// The most one tool run by [`run_ok`] or a Helm rendering may take.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// Root of the test bed's tool cache (`TESTBED_CACHE`, else `~/.cache/trackvia-operator/testbed`).
pub fn testbed_cache() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TESTBED_CACHE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".cache/trackvia-operator/testbed"))
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How to get `name` when it is missing.
fn install_hint(name: &str) -> &'static str {
    match name {
        "prometheus" | "promtool" => {
            "install Debian's `prometheus` package (`hack/testbed install` does it as root)"
        }
        _ => "run `hack/testbed install` (or `eval \"$(hack/testbed up)\"`)",
    }
}

/// `name` from `PATH`, else from the most recent complete test bed install that has it
/// (`bin/` or `venv/bin/`). Panics with instructions when neither has it.
pub fn tool(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return candidate;
            }
        }
    }
    let cache = testbed_cache();
    if let Some(cache) = &cache {
        let mut installs: Vec<PathBuf> = std::fs::read_dir(cache)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        // An install still being built lives in `<key>.tmp`; it is not ready to use.
        installs.retain(|p| p.extension().is_none_or(|ext| ext != "tmp"));
        // Cache keys do not sort by age; prefer the most recently installed.
        installs.sort_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
        for install in installs.iter().rev() {
            for sub in ["bin", "venv/bin"] {
                let candidate = install.join(sub).join(name);
                if is_executable(&candidate) {
                    return candidate;
                }
            }
        }
    }
    panic!(
        "`{name}` is neither on PATH nor under {}/*/bin; {}",
        cache
            .map(|c| c.display().to_string())
            .unwrap_or_else(|| "~/.cache/trackvia-operator/testbed".to_string()),
        install_hint(name)
    );
}

/// The repository's root directory: the one cargo runs the test in, when it says. The
/// path compiled in is that of the checkout the build was made in, which a build reused
/// by another checkout (a shared target directory, sources older than the build) would
/// otherwise read. Such a build still runs the other checkout's code: a target directory
/// per checkout, or sources newer than it, avoids that.
pub fn repo_root() -> PathBuf {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"));
    let running = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    running
        .iter()
        .flat_map(|dir| dir.ancestors())
        .find(|dir| dir.join("charts/trackvia-operator").is_dir())
        .unwrap_or_else(|| {
            built_in
                .parent()
                .expect("testsupport lives inside the repository")
        })
        .to_path_buf()
}

/// The Helm chart's directory.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/trackvia-operator")
}

/// `helm template RELEASE <chart> --namespace NAMESPACE --set ...`, as parsed documents.
/// Panics with helm's output when it fails.
pub fn helm_template(release: &str, namespace: &str, sets: &[&str]) -> Vec<Value> {
    helm_template_for(release, namespace, None, sets)
}

/// The Prometheus Operator's API, which the chart's ServiceMonitor and PrometheusRule need
/// the cluster to serve; `helm template` is told the cluster has it.
pub const MONITORING_API: &str = "monitoring.coreos.com/v1";

/// [`helm_template`] for a cluster of `kube_version` (helm's own default when `None`).
pub fn helm_template_for(
    release: &str,
    namespace: &str,
    kube_version: Option<&str>,
    sets: &[&str],
) -> Vec<Value> {
    helm_template_result(release, namespace, kube_version, &[MONITORING_API], sets)
        .unwrap_or_else(|e| panic!("helm template failed: {e}"))
}

/// [`helm_template_for`] for a cluster serving `api_versions` besides the built-in ones,
/// with helm's error output when it refuses the values.
pub fn helm_template_result(
    release: &str,
    namespace: &str,
    kube_version: Option<&str>,
    api_versions: &[&str],
    sets: &[&str],
) -> Result<Vec<Value>, String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(version) = kube_version {
        args.extend(["--kube-version".into(), version.into()]);
    }
    for api in api_versions {
        args.extend(["--api-versions".into(), api.to_string()]);
    }
    for set in sets {
        args.extend(["--set".into(), set.to_string()]);
    }
    let text = helm_template_text(release, namespace, &args)?;
    Ok(serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|d| {
            let v: Value = serde::Deserialize::deserialize(d).ok()?;
            (!v.is_null()).then_some(v)
        })
        .collect())
}

/// `helm template RELEASE <chart> --namespace NAMESPACE ARGS...` as helm prints it, with
/// helm's error output when it fails.
pub fn helm_template_text(
    release: &str,
    namespace: &str,
    args: &[String],
) -> Result<String, String> {
    let mut helm = Command::new(tool("helm"));
    helm.arg("template")
        .arg(release)
        .arg(chart_dir())
        .args(["--namespace", namespace])
        .args(args);
    let out = run(helm, TIME_LIMIT).into_output();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
}

/// The chart's PrometheusRule rendered with `sets` (plus `prometheusRule.enabled=true`), as a
/// Prometheus rule file: `{"groups": spec.groups}`.
pub fn rendered_rule_file(release: &str, namespace: &str, sets: &[&str]) -> Value {
    let mut all = vec!["prometheusRule.enabled=true"];
    all.extend_from_slice(sets);
    let docs = helm_template(release, namespace, &all);
    let rule = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the chart renders a PrometheusRule");
    serde_json::json!({ "groups": rule["spec"]["groups"] })
}

/// The release notes `helm install --dry-run` prints for `sets` (release `tvo` in
/// `trackvia-system`). Helm asks the cluster for its version and APIs: the test bed
/// `KUBECONFIG` names (no Prometheus Operator there).
pub fn helm_install_notes(sets: &[&str]) -> String {
    assert!(
        std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()),
        "KUBECONFIG must name the test bed (eval \"$(hack/testbed up)\")"
    );
    let mut command = Command::new(tool("helm"));
    command.args(["install", "tvo"]).arg(chart_dir()).args([
        "--namespace",
        "trackvia-system",
        "--dry-run=client",
        // The bed's CRD belongs to the other tests.
        "--set",
        "crds.enabled=false",
    ]);
    for set in sets {
        command.args(["--set", set]);
    }
    let out = run(command, TIME_LIMIT).into_output();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm install --dry-run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_once("NOTES:\n")
        .map(|(_, notes)| notes.to_string())
        .unwrap_or_else(|| panic!("no NOTES in:\n{stdout}"))
}

/// Runs `program` with `args`; panics with its output unless it succeeds. Returns stdout.
pub fn run_ok<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(program: &Path, args: &[A]) -> String {
    let mut command = Command::new(program);
    command.args(args);
    let out = run(command, TIME_LIMIT).into_output();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {:?} failed ({}):\n{stdout}{}",
        program.display(),
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every PromQL query of a Grafana dashboard: each `expr`, and each query variable's
/// `definition`, recursively.
pub fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    match (k.as_str(), child) {
                        ("expr", Value::String(s)) | ("definition", Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(child, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}
