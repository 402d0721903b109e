//! Files that must agree with the chart: the crate version, the generated CRD, the
//! Dockerfile, and values.yaml against the values schema and the chart README.

mod common;

use common::chart::*;
use serde_json::{Value, json};
use trackvia_testsupport::tools::{chart_dir, repo_root};

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
