//! Running the program's command line in tests: its output and exit code, and
//! kubeconfig files pointing at the test bed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// Run `program` with `args` (and `env` added): exit code, stdout, stderr.
pub fn run_cli(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_cli_input(program, args, env, None)
}

/// [`run_cli`] with `input` written to the program's standard input (a pipe).
pub fn run_cli_input(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&str>,
) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(program);
    cmd.args(args).env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("running the status command");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that stops before reading (a usage error) closes the pipe: not an error here.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .expect("running the status command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    )
}

/// A fresh temporary directory.
pub fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "trackvia-obs-{}-{}",
        std::process::id(),
        super::secret_value("d")
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// A copy of the bed's kubeconfig whose current context has `namespace`.
pub fn kubeconfig_with_namespace(dir: &Path, namespace: &str) -> PathBuf {
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG is set");
    let path = std::env::split_paths(&path)
        .next()
        .expect("a kubeconfig path");
    let text = std::fs::read_to_string(&path).expect("reading the kubeconfig");
    let mut config: Value = serde_yaml_ng::from_str(&text).expect("a kubeconfig");
    let current = config["current-context"]
        .as_str()
        .expect("a current context")
        .to_string();
    let contexts = config["contexts"].as_array_mut().expect("contexts");
    let context = contexts
        .iter_mut()
        .find(|c| c["name"] == current.as_str())
        .expect("the current context");
    context["context"]["namespace"] = json!(namespace);
    let out = dir.join("kubeconfig");
    std::fs::write(&out, serde_yaml_ng::to_string(&config).expect("YAML")).expect("writing");
    out
}

/// A kubeconfig acting as `user` through the administrator's credentials
/// (impersonation), so RBAC rules bound to `user` are what a program using it gets.
pub fn impersonating_kubeconfig(user: &str) -> std::path::PathBuf {
    let mut config = kube::config::Kubeconfig::read().expect("reading KUBECONFIG");
    for named in &mut config.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_string());
        }
    }
    let path = std::env::temp_dir().join(format!("{user}.kubeconfig.json"));
    std::fs::write(
        &path,
        serde_json::to_vec(&config).expect("kubeconfig as JSON"),
    )
    .expect("writing the kubeconfig");
    path
}
