//! `status verify NAME` (and `kubectl trackvia verify NAME`) against the real
//! operator and the fake TrackVia on the test bed; `-o yaml`, `--kubeconfig` and
//! `--context`; and the shell completion scripts, loaded by a real bash.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cli::{run_cli, tempfile_dir};
use common::{Harness, OPERATOR};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::command::run;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::TestNamespace;
use trackvia_testsupport::time::assert_within;
use trackvia_testsupport::tools::tool;

/// Times masked, so the output can be compared whole.
fn mask_times(text: &str) -> String {
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").expect("regex");
    time.replace_all(text, "<time>").into_owned()
}

// The fake TrackVia runs in the test's runtime: the command, run blocking here,
// must leave it a thread to answer on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_name_forces_a_check_and_tells_the_answer_in_its_exit_code() {
    // A loaded machine must not turn an answer into a timeout.
    let mut h = Harness::start("cli-verify", &["--request-timeout", "10s"]).await;
    let ns = h.ns.name().to_string();
    let (key, token) = h
        .connect(
            "crm",
            "src",
            Behavior::Valid,
            json!({"target": {"name": "crm-out"}}),
        )
        .await;
    h.wait_ready("crm", "True", "Verified").await;
    forced_check_is_answered(&h, &ns, &key, &token).await;
    second_check_is_deferred_then_answered(&h, &ns, &key, &token).await;
    missing_or_unwatched_get_no_answer(&h, &ns).await;
    h.assert_no_leaks().await;
    h.finish().await;
}

/// A forced check: a new call to TrackVia, answered within seconds.
async fn forced_check_is_answered(h: &Harness, ns: &str, key: &str, token: &str) {
    let calls_before = h.fake.calls_for(key, token);
    let started = Instant::now();
    let (code, out, err) = run_cli(
        Path::new(OPERATOR),
        &["status", "verify", "crm", "-n", ns],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_within(started, Duration::from_secs(20));
    assert_eq!(
        mask_times(&out),
        "Verified: TrackVia accepted the credentials (HTTP 200)\n\
         Ready: True (Verified): the credentials work and are published\n\
         Last verified: <time>\n",
        "{err}"
    );
    assert!(err.is_empty(), "no note for a first forced check: {err}");
    assert!(
        h.fake.calls_for(key, token) > calls_before,
        "TrackVia was asked"
    );
    let after = h.connections().get("crm").await.expect("reading crm");
    let requested = after
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("trackvia.io/verify-requested-at"))
        .cloned()
        .expect("the annotation is set");
    let status = after.status.clone().expect("a status");
    assert_eq!(
        status.verify_requested_at.as_deref(),
        Some(requested.as_str())
    );
}

/// TrackVia now refuses the token. A second forced check within the minute is
/// deferred by the operator: the command says so, then waits for the answer.
async fn second_check_is_deferred_then_answered(h: &Harness, ns: &str, key: &str, token: &str) {
    h.fake.set(key, token, Behavior::Revoked);
    let dir = tempfile_dir();
    let plugin = dir.join("kubectl-trackvia");
    std::os::unix::fs::symlink(OPERATOR, &plugin).expect("symlinking the plugin");
    let started = Instant::now();
    let (code, out, err) = run_cli(
        &plugin,
        &["-n", ns, "verify", "crm", "--timeout", "100s"],
        &[],
    );
    assert_eq!(code, 2, "Unauthorized: {out}\n{err}");
    assert!(out.starts_with("Unauthorized: "), "{out}");
    assert!(
        err.contains("at most one forced check per connection per minute")
            && err.contains("may be deferred until"),
        "{err}"
    );
    assert_within(started, Duration::from_secs(75));
    h.wait_ready("crm", "False", "Unauthorized").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Not found, and a connection no operator watches: no answer within the timeout.
async fn missing_or_unwatched_get_no_answer(h: &Harness, ns: &str) {
    let (code, _, err) = run_cli(
        Path::new(OPERATOR),
        &["status", "verify", "nope", "-n", ns],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not found"), "{err}");
    let unwatched = TestNamespace::create(&h.client, "cli-unwatched").await;
    let api = unwatched.api::<TrackViaConnection>();
    let body: TrackViaConnection = serde_json::from_value(json!({
        "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
        "metadata": {"name": "alone"},
        "spec": {"host": h.fake.host(), "credentialsSecretRef": {"name": "src"}},
    }))
    .expect("a connection");
    api.create(&Default::default(), &body)
        .await
        .expect("creating");
    let (code, out, err) = run_cli(
        Path::new(OPERATOR),
        &[
            "status",
            "verify",
            "alone",
            "-n",
            unwatched.name(),
            "--timeout",
            "2s",
        ],
        &[],
    );
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(out.starts_with("No answer within 2s"), "{out}");
    unwatched.cleanup().await;
}

#[tokio::test]
async fn yaml_output_and_the_kubeconfig_and_context_flags() {
    let mut h = Harness::start("cli-flags", &[]).await;
    let ns = h.ns.name().to_string();
    h.connect("crm", "src", Behavior::Valid, json!({})).await;
    h.wait_ready("crm", "True", "Verified").await;

    // -o yaml holds what -o json holds (the expiry countdown aside, which moves).
    let run = |args: &[&str]| {
        let (code, out, err) = run_cli(Path::new(OPERATOR), args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    for args in [vec!["status", "-n", &ns], vec!["status", "crm", "-n", &ns]] {
        let with = |format: &str| {
            let mut a = args.clone();
            a.extend(["-o", format]);
            run(&a)
        };
        let json: Value = serde_json::from_str(&with("json")).expect("JSON");
        let yaml: Value = serde_yaml_ng::from_str(&with("yaml")).expect("YAML");
        assert_eq!(yaml, json, "{args:?}");
    }

    // --kubeconfig and --context pick a context of another file: here one whose
    // namespace is the test's, while the file's current context has none.
    let dir = tempfile_dir();
    let config = kubeconfig_with_context("tv-test", &ns);
    let file = dir.join("kubeconfig");
    std::fs::write(&file, serde_yaml_ng::to_string(&config).expect("YAML")).expect("writing");
    let file = file.to_str().expect("a UTF-8 path");
    let missing = dir.join("missing");
    let env = [("KUBECONFIG", missing.to_str().expect("a UTF-8 path"))];
    let (code, out, err) = run_cli(
        Path::new(OPERATOR),
        &[
            "status",
            "--kubeconfig",
            file,
            "--context",
            "tv-test",
            "-o",
            "json",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(doc["connections"][0]["name"], "crm", "{out}");
    assert_eq!(doc["connections"][0]["namespace"], ns.as_str());
    let (code, _, err) = run_cli(
        Path::new(OPERATOR),
        &["status", "--kubeconfig", file, "--context", "nope"],
        &env,
    );
    assert_eq!(code, 1);
    assert!(err.contains("nope"), "{err}");
    let (code, _, err) = run_cli(Path::new(OPERATOR), &["status", "-n", &ns], &env);
    assert_eq!(
        code, 1,
        "without --kubeconfig the missing KUBECONFIG is used: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    h.finish().await;
}

#[test]
fn completion_scripts_load_in_bash_and_name_every_command() {
    let dir = tempfile_dir();
    let plugin = dir.join("kubectl-trackvia");
    std::os::unix::fs::symlink(OPERATOR, &plugin).expect("symlinking the plugin");
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, err) = run_cli(Path::new(OPERATOR), &["completion", shell], &[]);
        assert_eq!(code, 0, "{err}");
        for word in ["status", "verify", "completion", "kubeconfig", "context"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
        let (code, same, _) = run_cli(Path::new(OPERATOR), &["status", "completion", shell], &[]);
        assert_eq!((code, &same), (0, &script), "{shell}");
        let (code, plugin_script, err) = run_cli(&plugin, &["completion", shell], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(plugin_script.contains("kubectl-trackvia"), "{shell}");
        assert!(plugin_script.contains("verify"), "{shell}");
    }
    let (code, _, err) = run_cli(Path::new(OPERATOR), &["completion", "tcsh"], &[]);
    assert_eq!(code, 1, "{err}");

    // bash loads both scripts and completes the subcommands.
    let check = format!(
        "set -e
         source <('{op}' completion bash)
         source <('{plugin}' completion bash)
         complete -p trackvia-operator kubectl-trackvia
         COMP_WORDS=(trackvia-operator status ve); COMP_CWORD=2; COMP_LINE='trackvia-operator status ve'
         _trackvia_operator trackvia-operator ve status
         echo \"${{COMPREPLY[@]}}\"
         COMP_WORDS=(kubectl-trackvia ve); COMP_CWORD=1; COMP_LINE='kubectl-trackvia ve'
         _kubectl_trackvia kubectl-trackvia ve kubectl-trackvia
         echo \"${{COMPREPLY[@]}}\"",
        op = OPERATOR,
        plugin = plugin.display()
    );
    let mut bash = std::process::Command::new(tool("bash"));
    bash.args(["-c", &check]);
    let stdout = run(bash, Duration::from_secs(60)).expect_success().stdout;
    assert!(
        stdout.contains("-F _trackvia_operator trackvia-operator\n")
            && stdout.contains("-F _kubectl_trackvia kubectl-trackvia\n"),
        "{stdout}"
    );
    let last: Vec<&str> = stdout.lines().rev().take(2).collect();
    assert_eq!(last, ["verify", "verify"], "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Error text echoing what the user or the API server supplied (here a kubeconfig path with
/// an escape sequence) reaches the terminal escaped, from `rotate` and from `status`.
#[test]
fn errors_reach_the_terminal_escaped() {
    let path = "/nonexistent/\u{1b}[31mred";
    let commands: [&[&str]; 2] = [
        &[
            "status",
            "rotate",
            "x",
            "--expires-on",
            "2030-01-01",
            "--kubeconfig",
            path,
        ],
        &["status", "--kubeconfig", path],
    ];
    for args in commands {
        let (code, _out, err) =
            common::cli::run_cli_input(Path::new(OPERATOR), args, &[], Some("token\n"));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains("kubeconfig"), "{args:?}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "{args:?} printed a raw escape: {err:?}"
        );
    }
}

/// The bed's kubeconfig with one more context, `name`: the current one with `namespace`.
fn kubeconfig_with_context(name: &str, namespace: &str) -> Value {
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG is set");
    let path = std::env::split_paths(&path)
        .next()
        .expect("a kubeconfig path");
    let mut config: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("reading")).expect("YAML");
    let current = config["current-context"]
        .as_str()
        .expect("a context")
        .to_string();
    let contexts = config["contexts"].as_array_mut().expect("contexts");
    let mut ours = contexts
        .iter()
        .find(|c| c["name"] == current.as_str())
        .cloned()
        .expect("the current context");
    ours["name"] = json!(name);
    ours["context"]["namespace"] = json!(namespace);
    contexts.push(ours);
    config
}
