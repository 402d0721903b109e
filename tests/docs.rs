//! The documentation holds together: every relative link and anchor resolves, every flag of
//! `run` is documented, and the API reference covers every field of the generated CRD.
//! (Every chart value in the chart README is checked by `tests/chart_consistency.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_yaml_ng::Value;
use trackvia_testsupport::command::run;
use trackvia_testsupport::markdown::{anchors, links};
use trackvia_testsupport::tools::{chart_dir, repo_root};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Markdown pages users read.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![
        root.join("README.md"),
        root.join("CHANGELOG.md"),
        chart_dir().join("README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 6, "docs/ holds the pages: {docs:?}");
    pages.extend(docs);
    pages
}

/// Every relative link of `pages` that names a missing file or a missing heading.
fn broken_links(pages: &[PathBuf]) -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages {
        for link in links(&read(page)) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().expect("a page's directory").join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", page.display()));
            } else if !fragment.is_empty() && !anchors(&read(&target)).iter().any(|a| a == fragment)
            {
                broken.push(format!("{}: {link}: no such heading", page.display()));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let pages = pages();
    let broken = broken_links(&pages);
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn a_missing_file_or_heading_is_reported() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = dir.path().join("a.md");
    let other = dir.path().join("b.md");
    std::fs::write(&other, "# B\n\n## Rotation runbook\n").expect("b.md");
    std::fs::write(
        &page,
        "# A\n\n[ok](b.md#rotation-runbook) [self](#a) [web](https://x.invalid/y.md#z)\n\
         [gone](c.md) [no heading](b.md#troubleshooting) [not here](#b)\n",
    )
    .expect("a.md");
    let broken = broken_links(&[page]);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].ends_with("c.md: no such file"), "{broken:#?}");
    assert!(broken[1].ends_with("b.md#troubleshooting: no such heading"));
    assert!(broken[2].ends_with("#b: no such heading"));
}

/// The long flags a `--help` text lists.
fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split([' ', ',', '=']).find(|w| w.starts_with("--")))
        .filter(|f| *f != "--help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_flag_of_run_is_documented() {
    let mut help = Command::new(env!("CARGO_BIN_EXE_trackvia-operator"));
    help.args(["run", "--help"]);
    let help = run(help, Duration::from_secs(30)).expect_success();
    let flags = long_flags(&help.stdout);
    assert!(flags.len() >= 10, "flags read from run --help: {flags:?}");
    assert_all_named("docs/cli.md", &flags);
}

/// Asserts that the document at `doc` (from the repository's root) names each of `names`
/// in backticks.
fn assert_all_named(doc: &str, names: &[String]) {
    let text = read(&repo_root().join(doc));
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !text.contains(&format!("`{n}`")))
        .collect();
    assert!(missing.is_empty(), "{doc} lacks {missing:?}");
}

/// The path of every field under `schema` that is not an object of documented fields, arrays
/// written `name[]`.
fn field_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(properties) = schema["properties"].as_mapping() else {
        return;
    };
    for (key, child) in properties {
        let key = key.as_str().expect("a property name");
        let mut path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        let mut child = child;
        if child["type"].as_str() == Some("array") {
            path.push_str("[]");
            child = &child["items"];
        }
        if child["properties"].as_mapping().is_none() || path.ends_with("[]") {
            out.push(path.clone());
        }
        field_paths(child, &path, out);
    }
}

#[test]
fn the_api_reference_covers_every_spec_field_of_the_crd() {
    let crd: Value = serde_yaml_ng::from_str(&read(
        &repo_root().join("crds/trackviaconnections.trackvia.io.yaml"),
    ))
    .expect("the CRD parses");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut paths = Vec::new();
    field_paths(spec, "", &mut paths);
    assert!(
        paths.len() >= 20,
        "spec fields read from the CRD: {paths:?}"
    );
    assert_all_named("docs/api.md", &paths);
}
