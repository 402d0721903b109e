//! The CRD's life with the chart on a private control plane (the shared bed's CRD belongs to
//! the other tests): updated by `helm upgrade` and kept by `helm uninstall`, applied by hand
//! with the documented commands, and adopted from an earlier chart with them.

mod common;

use common::chart::{CRD_NAME, KEEP, connection_literal, connections_api, generated_crd};
use common::within;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};
use trackvia_testsupport::bed::PrivateBed;
use trackvia_testsupport::kube::wait_crd_established;
use trackvia_testsupport::tools::{chart_dir, repo_root, run_ok, tool};

/// A copy of the chart whose CRD has one more printer column and another description: what
/// a chart release with a changed CRD looks like.
fn chart_with_changed_crd(into: &Path) -> std::path::PathBuf {
    let copy = into.join("trackvia-operator");
    run_ok(
        Path::new("cp"),
        &["-r".as_ref(), chart_dir().as_os_str(), copy.as_os_str()],
    );
    let file = copy.join("files/crds").join(format!("{CRD_NAME}.yaml"));
    let mut crd: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&file).expect("the copied CRD"))
            .expect("the copied CRD parses");
    let version = &mut crd["spec"]["versions"][0];
    version["additionalPrinterColumns"]
        .as_array_mut()
        .expect("printer columns")
        .push(json!({"name": "Upgraded", "type": "string", "jsonPath": ".spec.host"}));
    version["schema"]["openAPIV3Schema"]["description"] = json!("Changed by the upgrade test.");
    std::fs::write(&file, serde_yaml_ng::to_string(&crd).expect("YAML")).expect("writing the CRD");
    copy
}

async fn helm(kubeconfig: &Path, args: &[&str]) -> String {
    let mut all: Vec<std::ffi::OsString> = vec!["--kubeconfig".into(), kubeconfig.into()];
    all.extend(args.iter().map(Into::into));
    tokio::task::spawn_blocking(move || run_ok(&tool("helm"), &all))
        .await
        .expect("the helm thread")
}

fn has_column(crd: &CustomResourceDefinition, column: &str) -> bool {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .any(|c| c.name == column)
}

/// A private control plane of its own, brought up on a blocking thread.
async fn private_bed(name: &'static str) -> PrivateBed {
    tokio::task::spawn_blocking(move || PrivateBed::up(name))
        .await
        .expect("the bed thread")
}

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_updates_the_crd_and_uninstall_keeps_it() {
    within(
        TEST_TIMEOUT,
        "the CRD lifecycle test",
        upgrade_updates_the_crd(),
    )
    .await;
}

async fn upgrade_updates_the_crd() {
    let bed = private_bed("chart-crds").await;
    let kubeconfig = bed.kubeconfig();
    let client = bed.client().await;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let chart = chart_dir();
    let changed = chart_with_changed_crd(scratch.path());
    let (release, ns) = ("tvo", "trackvia-system");
    // No kubelet runs in the bed: replicas 0.
    let common = [
        "--namespace",
        ns,
        "--set",
        "replicaCount=0",
        "--timeout",
        "60s",
    ];

    let mut args = vec![
        "install",
        release,
        chart.to_str().expect("UTF-8"),
        "--create-namespace",
    ];
    args.extend(common);
    helm(&kubeconfig, &args).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    installed_crd_is_kept(&crds).await;
    let connections = create_connection(&client, ns).await;

    let mut args = vec!["upgrade", release, changed.to_str().expect("UTF-8")];
    args.extend(common);
    helm(&kubeconfig, &args).await;
    let upgraded = crds.get(CRD_NAME).await.expect("the CRD after the upgrade");
    assert!(
        has_column(&upgraded, "Upgraded"),
        "helm upgrade did not update the CRD's printer columns"
    );
    let description = upgraded.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.description.clone());
    assert_eq!(description.as_deref(), Some("Changed by the upgrade test."));
    connections
        .get("crm")
        .await
        .expect("the connection survives the upgrade");

    helm(
        &kubeconfig,
        &["uninstall", release, "--namespace", ns, "--timeout", "60s"],
    )
    .await;
    crds.get(CRD_NAME)
        .await
        .expect("crds.keep leaves the CRD on uninstall");
    connections
        .get("crm")
        .await
        .expect("the connection survives uninstall");
    drop(bed);
}

/// The installed CRD, without the upgrade's column, kept on uninstall, Established.
async fn installed_crd_is_kept(crds: &Api<CustomResourceDefinition>) {
    let installed = crds
        .get(CRD_NAME)
        .await
        .expect("the install created the CRD");
    assert!(!has_column(&installed, "Upgraded"));
    assert_eq!(
        installed
            .metadata
            .annotations
            .unwrap_or_default()
            .get(KEEP)
            .map(String::as_str),
        Some("keep")
    );
    wait_crd_established(crds, CRD_NAME).await;
}

/// A connection made between install and upgrade, in `ns`; the API of connections there.
async fn create_connection(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let connections = connections_api(client, ns);
    let connection = connection_literal();
    let mut created = None;
    for _ in 0..50 {
        match connections
            .create(&PostParams::default(), &connection)
            .await
        {
            Ok(c) => {
                created = Some(c);
                break;
            }
            // Discovery needs a moment after Established.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(
        created.is_some(),
        "the TrackViaConnection could not be created"
    );
    connections
}

/// The chart README's `sh` block that starts with `first`.
fn documented_commands(first: &str) -> String {
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).expect("the chart README");
    let start = readme
        .find(&format!("```sh\n{first}"))
        .unwrap_or_else(|| panic!("the chart README has no block starting with {first:?}"));
    let block = &readme[start + "```sh\n".len()..];
    block[..block.find("```").expect("the block ends")].to_string()
}

/// Runs `script` with bash in the repository, against the bed `kubeconfig`, with the test
/// bed's helm and kubectl first on `PATH`; panics with its output when it fails.
async fn run_documented(script: String, kubeconfig: &Path) {
    let kubeconfig = kubeconfig.to_path_buf();
    let tools = tool("kubectl")
        .parent()
        .expect("kubectl's directory")
        .to_path_buf();
    let helm = tool("helm")
        .parent()
        .expect("helm's directory")
        .to_path_buf();
    let shown = script.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo_root())
            .env("KUBECONFIG", &kubeconfig)
            .env(
                "PATH",
                format!(
                    "{}:{}:{}",
                    tools.display(),
                    helm.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .expect("running bash")
    })
    .await
    .expect("the bash thread");
    assert!(
        out.status.success(),
        "the documented commands failed:\n{shown}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_manual_crd_apply_works_on_the_bed() {
    within(TEST_TIMEOUT, "the manual CRD test", async {
        let bed = private_bed("chart-crds-manual").await;
        let script =
            documented_commands("helm template trackvia-operator charts/trackvia-operator");
        run_documented(script, &bed.kubeconfig()).await;
        let crds: Api<CustomResourceDefinition> = Api::all(bed.client().await);
        crds.get(CRD_NAME)
            .await
            .expect("the documented commands created the CRD");
        drop(bed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_from_an_earlier_chart_is_adopted_with_the_documented_commands() {
    within(TEST_TIMEOUT, "the adoption test", adoption()).await;
}

async fn adoption() {
    let bed = private_bed("chart-crds-adopt").await;
    let kubeconfig = bed.kubeconfig();
    let client = bed.client().await;
    // What an earlier chart left: the CRD, without any release's labels or annotations.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition =
        serde_json::from_value(generated_crd()).expect("the generated CRD");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("creating the CRD as an earlier chart did");

    // The documented release name and namespace.
    let chart = chart_dir();
    let install = [
        "install",
        "trackvia-operator",
        chart.to_str().expect("UTF-8"),
        "--namespace",
        "trackvia-system",
        "--create-namespace",
        "--set",
        "replicaCount=0",
        "--timeout",
        "60s",
    ];
    let refused = {
        let kubeconfig = kubeconfig.clone();
        let args: Vec<String> = install.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(tool("helm"))
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .output()
                .expect("running helm")
        })
        .await
        .expect("the helm thread")
    };
    assert!(
        !refused.status.success(),
        "helm took over a CRD it does not own"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("invalid ownership metadata"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    run_documented(documented_commands("kubectl annotate crd"), &kubeconfig).await;
    helm(&kubeconfig, &install).await;
    let adopted = crds.get(CRD_NAME).await.expect("the CRD");
    assert_eq!(
        adopted
            .metadata
            .annotations
            .unwrap_or_default()
            .get(KEEP)
            .map(String::as_str),
        Some("keep"),
        "the release manages the adopted CRD"
    );
    drop(bed);
}
