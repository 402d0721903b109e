//! The chart on a real node (`hack/testbed up --with-node`: kubelet, containerd, runc): the
//! Deployment runs as pods from the image `hack/image` builds, with the chart's restricted
//! securityContext, probes and ServiceAccount token; two replicas elect one leader, which
//! reconciles a connection through the fake TrackVia; the leader's deletion and a `helm upgrade`
//! hand over without two reconcilers (the API server's audit log says who wrote); `helm
//! uninstall` keeps the CRD and the connections.
//!
//! Networking: the bed has no kube-proxy and no DNS. The pods are on the node's own bridge;
//! the node's gateway namespace answers at the `kubernetes` Service's address (10.0.0.1:443,
//! which the kubelet hands the pods as KUBERNETES_SERVICE_HOST/PORT) and forwards to the API
//! server on 127.0.0.1, and forwards the fake TrackVia's loopback port at 10.0.0.2. Nothing
//! leaves the machine. `helm test` is not run: its pod asks the metrics Service by DNS name.

mod common;

use common::node::*;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use trackvia_testsupport::bed::PrivateBed;
use trackvia_testsupport::fake::{FakeOptions, FakeTrackVia};
use trackvia_testsupport::image::Image;

const TEST_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_on_a_real_node_with_one_leader_at_a_time() {
    common::within(TEST_TIMEOUT, "the node test", on_a_real_node()).await;
}

async fn on_a_real_node() {
    let test_started = Instant::now();
    let image = tokio::task::spawn_blocking(Image::get)
        .await
        .expect("the image thread");
    let started = Instant::now();
    let bed = tokio::task::spawn_blocking(|| PrivateBed::up_with_node("node"))
        .await
        .expect("the bed thread");
    eprintln!("bed and node Ready in {:?}", started.elapsed());
    let reference = format!("{IMAGE_REPOSITORY}:{IMAGE_TAG}");
    let tagged = image.engine(&["tag", &image.id, &reference]);
    assert!(tagged.status.success(), "tagging the image: {tagged:?}");
    bed.load_image(&reference);

    let (fake, host, client) = fake_trackvia_and_namespaces(&bed).await;
    let values = values_file(&bed, &host);

    // Both pods Running and Ready: image started, probes passing, token mounted.
    let started = Instant::now();
    helm_release(&bed, "install", &values, &[]).await;
    let pods = wait_pods(&client, 2, Duration::from_secs(180)).await;
    eprintln!(
        "2 operator pods Ready {:?} after helm install",
        started.elapsed()
    );
    pods_run_hardened(&client, &pods, &reference).await;

    // One leader, which reconciles a connection through the fake TrackVia.
    let leader = wait_leader(&client, &pods, Duration::from_secs(60)).await;
    let conn = Connection::new(&client, &fake, &host);
    conn.apply("first").await;
    conn.wait_ready("first").await;
    leader_deletion_hands_over(&client, &leader, &conn).await;
    upgrade_rolls_the_pods(&bed, &client, &values, &conn).await;
    assert_one_writer_at_a_time(&bed);
    conn.assert_no_leaks(&client).await;
    uninstall_keeps_the_crd_and_connections(&bed, &client, &conn).await;
    eprintln!("node test done in {:?}", test_started.elapsed());
}

/// The fake TrackVia, exposed to the node; the namespaces; the fake's CA, mounted by the
/// chart (extraCA) and trusted for TrackVia calls. The fake, its host, a client.
async fn fake_trackvia_and_namespaces(bed: &PrivateBed) -> (FakeTrackVia, String, kube::Client) {
    let fake = FakeTrackVia::start_with(FakeOptions {
        extra_sans: vec![EXPOSED_ADDRESS.to_string()],
        ..Default::default()
    })
    .await;
    let host = bed.expose(fake.port());
    let client = bed.client().await;
    for ns in [NAMESPACE, APPS] {
        create::<Namespace>(&Api::all(client.clone()), json!({"metadata": {"name": ns}})).await;
    }
    // The fake's CA, mounted by the chart (extraCA) and trusted for TrackVia calls.
    let ca = json!({"metadata": {"name": "fake-trackvia-ca"}, "data": {"ca.crt": fake.ca_pem()}});
    create::<ConfigMap>(&Api::namespaced(client.clone(), NAMESPACE), ca).await;
    (fake, host, client)
}

/// The release's values: two replicas of the loaded image, the fake's host and CA. The file.
fn values_file(bed: &PrivateBed, host: &str) -> String {
    let values = bed.dir().join("values.yaml");
    let values_text = json!({
        "replicaCount": 2,
        "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG, "pullPolicy": "Never"},
        "allowedHosts": [host],
        "extraCA": {"configMapName": "fake-trackvia-ca"},
        "logFormat": "text",
    });
    std::fs::write(&values, values_text.to_string()).expect("writing the values");
    values.to_str().expect("UTF-8 path").to_string()
}

/// `helm <verb>` of the chart as release RELEASE in NAMESPACE with `values`, and `extra`.
async fn helm_release(bed: &PrivateBed, verb: &str, values: &str, extra: &[&str]) {
    let chart = trackvia_testsupport::tools::chart_dir();
    let chart = chart.to_str().expect("UTF-8 path");
    let mut args = vec![verb, RELEASE, chart, "--namespace", NAMESPACE, "-f", values];
    args.extend(extra);
    helm(bed, &args).await;
}

/// Both pods run the image, with a read-only root filesystem and the ServiceAccount token.
async fn pods_run_hardened(client: &kube::Client, pods: &[String], reference: &str) {
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    for name in pods {
        let pod = pod_api.get(name).await.expect("the pod");
        let spec = pod.spec.expect("a spec");
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some(reference));
        let sc = c.security_context.as_ref().expect("a securityContext");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert!(
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount")
        );
    }
}

/// Deleting the leader: the other pod takes over within the Lease duration, and reconciles.
async fn leader_deletion_hands_over(client: &kube::Client, leader: &str, conn: &Connection) {
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    pod_api
        .delete(leader, &DeleteParams::default())
        .await
        .expect("deleting the leader");
    // The standby, or the ReplicaSet's replacement if it starts first.
    let second = wait_holder(client, LEASE_DURATION, |pod| pod != leader).await;
    assert!(
        pod_api.get_opt(&second).await.expect("get").is_some(),
        "{second} is no pod"
    );
    eprintln!(
        "handover to {second} {:?} after deleting {leader}",
        started.elapsed()
    );
    conn.apply("second").await;
    conn.wait_ready("second").await;
}

/// A changed value rolls the pods; requests for verification keep arriving meanwhile. The
/// new leader reconciles.
async fn upgrade_rolls_the_pods(
    bed: &PrivateBed,
    client: &kube::Client,
    values: &str,
    conn: &Connection,
) {
    let started = Instant::now();
    let poke = tokio::spawn(conn.clone().poke_forever("first"));
    helm_release(bed, "upgrade", values, &["--set", "logLevel=debug"]).await;
    let rolled = wait_rollout(client, Duration::from_secs(240)).await;
    poke.abort();
    let third = wait_leader(client, &rolled, Duration::from_secs(60)).await;
    eprintln!(
        "rolled to {rolled:?} in {:?}; leader {third}",
        started.elapsed()
    );
    conn.apply("third").await;
    conn.wait_ready("third").await;
}

/// Uninstall keeps the CRD, the connections and their Secrets.
async fn uninstall_keeps_the_crd_and_connections(
    bed: &PrivateBed,
    client: &kube::Client,
    conn: &Connection,
) {
    helm(
        bed,
        &["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"],
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("trackviaconnections.trackvia.io")
            .await
            .expect("get")
            .is_some()
    );
    for name in ["first", "second", "third"] {
        assert!(
            conn.api.get_opt(name).await.expect("get").is_some(),
            "{name} is gone"
        );
        let secrets: Api<Secret> = Api::namespaced(client.clone(), APPS);
        assert!(
            secrets.get_opt(name).await.expect("get").is_some(),
            "Secret {name} is gone"
        );
    }
}
