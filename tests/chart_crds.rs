//! The CRD as the chart renders it: from the generated file by `templates/crds.yaml` behind
//! `crds.enabled`, without CEL rules before Kubernetes 1.25, kept on uninstall unless
//! `crds.keep=false`. Installing and upgrading it on a private control plane is in
//! chart_crds_upgrade.rs.

mod common;

use common::chart::{CRD_NAME, KEEP, generated_crd};

use serde_json::{Value, json};
use trackvia_testsupport::tools::helm_template_for;

/// The CRDs the chart renders with `sets` (`--set` values and `kubeVersion=` picks the
/// cluster's version, which `helm template` otherwise takes as its own default).
fn rendered_crds(sets: &[&str]) -> Vec<Value> {
    let kube_version = sets.iter().find_map(|s| s.strip_prefix("kubeVersion="));
    let sets: Vec<&str> = sets
        .iter()
        .copied()
        .filter(|s| !s.starts_with("kubeVersion="))
        .collect();
    helm_template_for("tvo", "trackvia-system", kube_version, &sets)
        .into_iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|mut d| {
            numbers_as_floats(&mut d);
            d
        })
        .collect()
}

/// Every number as a float: Helm's YAML round trip prints `minimum: 1.0` as `1`.
fn numbers_as_floats(value: &mut Value) {
    match value {
        Value::Number(n) => *value = json!(n.as_f64().expect("a finite number")),
        Value::Array(items) => items.iter_mut().for_each(numbers_as_floats),
        Value::Object(map) => map.values_mut().for_each(numbers_as_floats),
        _ => {}
    }
}

/// Where `a` and `b` first differ, as a path and the two values.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    &x.get(k).cloned().unwrap_or(Value::Null),
                    &y.get(k).cloned().unwrap_or(Value::Null),
                    &format!("{at}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| format!("{at}: {a} vs {b}")),
    }
}

/// Every place `key` occurs in `value`.
fn count_key(value: &Value, key: &str) -> usize {
    match value {
        Value::Array(items) => items.iter().map(|i| count_key(i, key)).sum(),
        Value::Object(map) => {
            usize::from(map.contains_key(key))
                + map.values().map(|v| count_key(v, key)).sum::<usize>()
        }
        _ => 0,
    }
}

#[test]
fn the_crd_is_rendered_from_the_generated_file_and_kept_by_default() {
    let crds = rendered_crds(&["kubeVersion=1.33.0"]);
    assert_eq!(crds.len(), 1, "one CRD by default");
    let crd = &crds[0];
    let mut generated = generated_crd();
    numbers_as_floats(&mut generated);
    assert_eq!(
        first_difference(&crd["spec"], &generated["spec"], "spec"),
        None,
        "the rendered CRD is the generated one"
    );
    assert!(count_key(&generated, "x-kubernetes-validations") > 0);
    assert_eq!(crd["metadata"]["name"], json!(CRD_NAME));
    assert_eq!(crd["metadata"]["annotations"][KEEP], json!("keep"));
    assert_eq!(
        crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        json!("Helm")
    );
}

#[test]
fn before_kubernetes_1_25_the_crd_has_no_cel_rules() {
    for (version, with_rules) in [("1.20.2", false), ("1.24.9", false), ("1.25.0", true)] {
        let crds = rendered_crds(&[&format!("kubeVersion={version}")]);
        assert_eq!(crds.len(), 1);
        let rules = count_key(&crds[0], "x-kubernetes-validations");
        assert_eq!(
            rules > 0,
            with_rules,
            "Kubernetes {version}: {rules} rule lists"
        );
        // Nothing else is lost.
        let mut expected = generated_crd();
        numbers_as_floats(&mut expected);
        if !with_rules {
            drop_key(&mut expected, "x-kubernetes-validations");
        }
        assert_eq!(
            first_difference(&crds[0]["spec"], &expected["spec"], "spec"),
            None,
            "Kubernetes {version}"
        );
    }
}

fn drop_key(value: &mut Value, key: &str) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|i| drop_key(i, key)),
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| drop_key(v, key));
        }
        _ => {}
    }
}

#[test]
fn crds_keep_false_lets_uninstall_delete_the_crd() {
    let crds = rendered_crds(&["crds.keep=false"]);
    assert_eq!(crds.len(), 1);
    assert!(
        crds[0]["metadata"]["annotations"].get(KEEP).is_none(),
        "{:?}",
        crds[0]["metadata"]
    );
}

#[test]
fn crds_enabled_false_renders_no_crd() {
    assert!(rendered_crds(&["crds.enabled=false"]).is_empty());
}
