//! A real `helm install`, `upgrade` and `uninstall` of the chart on the shared test bed
//! (`eval "$(hack/testbed up)"`); `helm` comes from `PATH` or the bed's cache.

mod common;

use std::time::Duration;

use common::chart::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;
use trackvia_testsupport::command::Ran;
use trackvia_testsupport::tools::{chart_dir, tool};

/// Uninstalls a release when dropped, so that a failed test leaves no cluster-wide objects.
struct ReleaseGuard {
    release: String,
    namespace: String,
    installed: bool,
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if self.installed {
            let _ = run(
                &tool("helm"),
                &[
                    "uninstall",
                    &self.release,
                    "--namespace",
                    &self.namespace,
                    "--timeout",
                    "60s",
                ],
                TOOL_TIMEOUT,
            );
        }
    }
}
/// `helm` with `args` on the shared bed, on a blocking thread; fails the test when it fails.
async fn helm_in_bed(args: &[&str]) -> Ran {
    let helm = tool("helm");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&helm, &args, TOOL_TIMEOUT).expect_success()
    })
    .await
    .expect("helm ran")
}
/// Bound on the whole install test; each helm call has its own, shorter one.
const INSTALL_TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall_on_the_shared_bed() {
    common::within(
        INSTALL_TEST_TIMEOUT,
        "the install test",
        install_upgrade_uninstall(),
    )
    .await;
}
async fn install_upgrade_uninstall() {
    let client = trackvia_testsupport::kube::client().await;
    // The shared bed's CRD belongs to every test binary: the chart leaves it alone here
    // (crds.enabled=false); tests/chart_crds_upgrade.rs installs and upgrades it on a
    // private bed.
    common::ensure_crd(&client).await;
    let ns = trackvia_testsupport::kube::TestNamespace::create(&client, "chart-install").await;
    let namespace = ns.name().to_string();
    let release = namespace.clone();
    let full = format!("{release}-trackvia-operator");
    let chart = chart_dir();
    let chart = path_str(&chart).to_string();

    let mut guard = ReleaseGuard {
        release: release.clone(),
        namespace: namespace.clone(),
        installed: false,
    };
    // No kubelet runs in the bed, so pods never start: replicas 0 keeps that honest.
    guard.installed = true;
    helm_in_bed(&[
        "install",
        &release,
        &chart,
        "--namespace",
        &namespace,
        "--set",
        "replicaCount=0",
        "--set",
        "crds.enabled=false",
        "--timeout",
        "60s",
    ])
    .await;
    installed_objects_exist(&client, &namespace, &full).await;
    made_by_a_person(&client, &namespace).await;

    // Upgrade with different values: leader election, restarts, a network policy.
    helm_in_bed(&[
        "upgrade",
        &release,
        &chart,
        "--namespace",
        &namespace,
        "--set",
        "replicaCount=2",
        "--set",
        "logLevel=debug",
        "--set",
        "rolloutRestart.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "crds.enabled=false",
        "--timeout",
        "60s",
    ])
    .await;
    upgrade_changed_the_release(&client, &namespace, &full).await;

    helm_in_bed(&[
        "uninstall",
        &release,
        "--namespace",
        &namespace,
        "--timeout",
        "60s",
    ])
    .await;
    guard.installed = false;
    uninstall_kept_what_people_made(&client, &namespace, &full).await;
    ns.cleanup().await;
}

/// The CRD, the Deployment with no replicas and the operator's ClusterRole.
async fn installed_objects_exist(client: &kube::Client, namespace: &str, full: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get(CRD_NAME).await.expect("the CRD is installed");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deploy = deployments.get(full).await.expect("the Deployment exists");
    assert_eq!(deploy.spec.and_then(|s| s.replicas), Some(0));
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    cluster_roles
        .get(full)
        .await
        .expect("the operator's ClusterRole exists");
}

/// A connection and its credentials, made by a person between install and upgrade.
async fn made_by_a_person(client: &kube::Client, namespace: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "trackvia-api-user" },
        "stringData": { "apiKey": "not-a-real-key", "authToken": "not-a-real-token" },
    }))
    .expect("a Secret literal");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the Secret");
    connections_api(client, namespace)
        .create(&PostParams::default(), &connection_literal())
        .await
        .expect("creating a TrackViaConnection");
}

/// The upgrade's values reached the Deployment, the leader-election Role and the ClusterRole.
async fn upgrade_changed_the_release(client: &kube::Client, namespace: &str, full: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let deploy = deployments.get(full).await.expect("the Deployment exists");
    let spec = deploy.spec.expect("a Deployment spec");
    assert_eq!(spec.replicas, Some(2));
    let upgraded_args = spec.template.spec.expect("a pod spec").containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        upgraded_args.contains(&"--log-level=debug".to_string()),
        "{upgraded_args:?}"
    );
    assert!(
        upgraded_args.contains(&"--leader-election".to_string()),
        "{upgraded_args:?}"
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    roles
        .get(&format!("{full}-leader-election"))
        .await
        .expect("the leader-election Role exists after the upgrade");
    let cluster_role = cluster_roles.get(full).await.expect("the ClusterRole");
    assert!(
        cluster_role.rules.unwrap_or_default().iter().any(|r| r
            .resources
            .as_ref()
            .is_some_and(|res| res.contains(&"deployments".to_string()))),
        "the upgrade granted workload restarts"
    );
}

/// The chart's own objects are gone; the CRD and what people made with it stay.
async fn uninstall_kept_what_people_made(client: &kube::Client, namespace: &str, full: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    assert!(
        deployments
            .get_opt(full)
            .await
            .expect("reading the Deployment")
            .is_none()
    );
    assert!(
        cluster_roles
            .get_opt(full)
            .await
            .expect("reading the ClusterRole")
            .is_none()
    );
    crds.get(CRD_NAME)
        .await
        .expect("a CRD the release does not manage survives uninstall");
    connections_api(client, namespace)
        .get("crm")
        .await
        .expect("the TrackViaConnection survives uninstall");
    secrets
        .get("trackvia-api-user")
        .await
        .expect("the credentials Secret survives uninstall");
}
