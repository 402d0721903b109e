//! Golden files of what users see: the help of every command, the answers to
//! usage mistakes, and the `status` views (table, detail, JSON, YAML) of fixed
//! connections at a fixed instant. A change to any of them is a change users
//! see; `UPDATE_GOLDEN=1 cargo test --test golden_cli` rewrites the files.

use std::path::Path;
use std::process::Command;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use serde_json::Value;
use trackvia_operator::cli::status::encode::{to_json, to_yaml};
use trackvia_operator::cli::status::{
    ConnectionList, Workload, detail, from_deployment, render_detail, render_table, summarize,
};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::golden::check as golden;

const OPERATOR: &str = env!("CARGO_BIN_EXE_trackvia-operator");

/// Run `program` with `args` and no TRACKVIA_* variables: exit code, stdout, stderr.
fn run(program: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(program);
    cmd.args(args).env("NO_COLOR", "1");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TRACKVIA_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().expect("running the program");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("UTF-8"),
        String::from_utf8(out.stderr).expect("UTF-8"),
    )
}

#[test]
fn help_of_every_command() {
    let commands: &[&[&str]] = &[
        &[],
        &["run"],
        &["crd"],
        &["verify"],
        &["status"],
        &["status", "verify"],
        &["status", "rotate"],
        &["status", "completion"],
        &["completion"],
        &["probe"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let (code, out, err) = run(Path::new(OPERATOR), &args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let name = if command.is_empty() {
            "root".to_string()
        } else {
            command.join("-")
        };
        golden(&format!("help/{name}.txt"), &out);
    }
    let (code, out, _) = run(Path::new(OPERATOR), &["-h"]);
    assert_eq!(code, 0);
    golden("help/root-short.txt", &out);

    // Through the kubectl plugin link, the commands are those of `status`.
    let dir = std::env::temp_dir().join(format!("trackvia-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let plugin = dir.join("kubectl-trackvia");
    let _ = std::fs::remove_file(&plugin);
    std::os::unix::fs::symlink(OPERATOR, &plugin).expect("symlinking the plugin");
    for command in [&[][..], &["verify"], &["rotate"]] {
        let mut args = command.to_vec();
        args.push("--help");
        let (code, out, err) = run(&plugin, &args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let name = match command.first() {
            None => "plugin".to_string(),
            Some(c) => format!("plugin-{c}"),
        };
        golden(&format!("help/{name}.txt"), &out);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_mistakes_exit_1_with_the_parser_message() {
    let cases: &[(&str, &[&str])] = &[
        ("unknown-flag", &["status", "--nope"]),
        ("verify-account-id", &["verify", "--account-id", "x"]),
        ("rotate-no-date", &["status", "rotate", "crm"]),
        (
            "rotate-bad-date",
            &["status", "rotate", "crm", "--expires-on", "2031-02-30"],
        ),
        ("completion-shell", &["completion", "tcsh"]),
    ];
    for (name, args) in cases {
        let (code, out, err) = run(Path::new(OPERATOR), args);
        assert_eq!((code, out.as_str()), (1, ""), "{args:?}: {err}");
        golden(&format!("usage/{name}.txt"), &err);
    }
}

#[test]
fn run_names_the_flag_it_refuses() {
    // `run` logs these (with a timestamp), so the lines are matched, not pinned whole.
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--request-timeout", "5x"], "--request-timeout: "),
        (&["run", "--allowed-hosts", "a/b"], "--allowed-hosts: "),
        (&["run", "--clock-offset", "-later"], "--clock-offset: "),
        (
            &["run", "--extra-ca-file", "/nonexistent/ca.pem"],
            "--extra-ca-file /nonexistent/ca.pem: ",
        ),
    ];
    for (args, expected) in cases {
        let (code, out, err) = run(Path::new(OPERATOR), args);
        assert_eq!((code, out.as_str()), (1, ""), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

struct Input {
    now: Timestamp,
    connections: Vec<TrackViaConnection>,
    workloads: Vec<Workload>,
    events: Vec<Event>,
}

fn input() -> Input {
    let text = std::fs::read_to_string(trackvia_testsupport::golden::path("input.json"))
        .expect("input.json");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let deployments: Vec<Deployment> =
        serde_json::from_value(v["workloads"].clone()).expect("Deployments");
    Input {
        now: v["now"].as_str().expect("now").parse().expect("an instant"),
        connections: serde_json::from_value(v["connections"].clone()).expect("connections"),
        workloads: deployments.iter().map(from_deployment).collect(),
        events: serde_json::from_value(v["events"].clone()).expect("events"),
    }
}

#[test]
fn status_views_of_fixed_connections() {
    let i = input();
    let now = i.now;
    let rows = |namespace: Option<&str>, workloads: Option<&[Workload]>| {
        i.connections
            .iter()
            .filter(|t| namespace.is_none() || t.metadata.namespace.as_deref() == namespace)
            .map(|t| summarize(t, workloads, now))
            .collect::<Vec<_>>()
    };
    let apps = rows(Some("apps"), Some(&i.workloads));
    let all = rows(None, Some(&i.workloads));
    golden("status/table.txt", &render_table(&apps, false, now, false));
    golden(
        "status/table-all.txt",
        &render_table(&all, true, now, false),
    );
    golden(
        "status/table-color.txt",
        &render_table(&all, true, now, true),
    );
    let unknown = rows(Some("apps"), None);
    golden(
        "status/table-consumers-unknown.txt",
        &render_table(&unknown, false, now, false),
    );
    let list = ConnectionList { connections: all };
    golden("status/list.json", &to_json(&list).expect("JSON"));
    golden("status/list.yaml", &to_yaml(&list).expect("YAML"));

    for tvc in &i.connections {
        let name = tvc.metadata.name.clone().expect("a name");
        let d = detail(tvc, Some(&i.workloads), Some(&i.events), now);
        golden(
            &format!("status/detail-{name}.txt"),
            &render_detail(&d, now, false),
        );
        golden(
            &format!("status/detail-{name}.json"),
            &to_json(&d).expect("JSON"),
        );
    }
    let billing = &i.connections[0];
    let d = detail(billing, None, None, now);
    golden(
        "status/detail-billing-unknown.txt",
        &render_detail(&d, now, false),
    );
    golden(
        "status/detail-billing-color.txt",
        &render_detail(&d, now, true),
    );
    golden("status/detail-billing.yaml", &to_yaml(&d).expect("YAML"));
}
