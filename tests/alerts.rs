//! The chart's alerts with the real Prometheus tools: `promtool check rules` of the rendered
//! PrometheusRule, and `promtool test rules` unit tests (tests/prometheus/) with the chart's
//! thresholds and `for:` durations. A real Prometheus server scraping the operator is in
//! alerts_prometheus.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Instant;

use common::alerts::*;
use serde_json::Value;
use trackvia_testsupport::prometheus::check_rules;
use trackvia_testsupport::tools::{repo_root, run_ok, tool};

// ---------------------------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------------------------

#[test]
fn promtool_accepts_the_rendered_rules() {
    let variants: [&[&str]; 3] = [
        &[],
        &[
            "prometheusRule.verificationStaleHours=0",
            "prometheusRule.expiringSoonDays=30",
        ],
        &[
            "prometheusRule.additionalAlertLabels.team=payments",
            "prometheusRule.notReadyFor=1h",
            "prometheusRule.expiredFor=0s",
            "prometheusRule.expiringSoonFor=2h",
            "prometheusRule.verificationStaleFor=1h30m",
            "prometheusRule.operatorDownFor=10m",
        ],
    ];
    for sets in variants {
        let dir = rendered_rules(sets);
        let expected = if sets.contains(&"prometheusRule.verificationStaleHours=0") {
            4
        } else {
            5
        };
        let out = check_rules(&dir.path().join("rules.yaml"));
        assert!(
            out.contains(&format!("SUCCESS: {expected} rules found")),
            "promtool check rules with {sets:?}:\n{out}"
        );
    }
}

/// The promtool unit test files shipped in tests/prometheus.
fn promtool_test_files() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.yaml in {}", dir.display());
    files
}

/// Alert name → (has a case where it fires, has a case where it stays silent), over the
/// `alert_rule_test` entries of `files`.
fn coverage(files: &[PathBuf]) -> BTreeMap<String, (bool, bool)> {
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("reading a promtool test");
        let doc: Value = serde_yaml_ng::from_str(&text).expect("a promtool test is YAML");
        for test in doc["tests"].as_array().into_iter().flatten() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().expect("alertname").to_string();
                let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                let entry = seen.entry(name).or_default();
                entry.0 |= fires;
                entry.1 |= !fires;
            }
        }
    }
    seen
}

#[test]
fn promtool_unit_tests_of_every_alert_pass() {
    let dir = rendered_rules(&[]);
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir.path().join("rules.yaml")).expect("rules.yaml"),
    )
    .expect("YAML");
    let shipped = alert_names(&rules);
    assert_eq!(
        shipped,
        ALERTS
            .iter()
            .map(|a| a.to_string())
            .collect::<BTreeSet<_>>()
    );
    let files = promtool_test_files();
    let covered = coverage(&files);
    for alert in &shipped {
        assert_eq!(
            covered.get(alert),
            Some(&(true, true)),
            "{alert} needs a promtool case where it fires and one where it stays silent"
        );
    }
    // The test files name `rules.yaml` beside them: run copies next to the rendered rules.
    let mut args: Vec<PathBuf> = Vec::new();
    for file in &files {
        let copy = dir.path().join(file.file_name().expect("a file name"));
        std::fs::copy(file, &copy).expect("copying a promtool test");
        args.push(copy);
    }
    let mut argv: Vec<&OsStr> = vec![OsStr::new("test"), OsStr::new("rules")];
    argv.extend(args.iter().map(|p| p.as_os_str()));
    let started = Instant::now();
    let out = run_ok(&tool("promtool"), &argv);
    println!("promtool test rules ({:?}):\n{out}", started.elapsed());
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

/// `prometheusRule.expiringSoonDays` is a floor besides each connection's own warning instant.
#[test]
fn promtool_expiring_soon_floor() {
    let dir = rendered_rules(&["prometheusRule.expiringSoonDays=14"]);
    let copy = dir.path().join("expiring-floor.test.yaml");
    std::fs::copy(
        repo_root().join("tests/prometheus/floor/expiring-floor.test.yaml"),
        &copy,
    )
    .expect("copying the promtool test");
    let out = run_ok(
        &tool("promtool"),
        &[OsStr::new("test"), OsStr::new("rules"), copy.as_os_str()],
    );
    assert_eq!(out.matches("SUCCESS").count(), 1, "{out}");
}
