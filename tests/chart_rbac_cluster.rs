//! The chart's RBAC cluster-wide: the operator runs as the chart's ServiceAccount on a private
//! control plane (an operator watching every namespace of the shared bed would reconcile the
//! connections of the tests beside it) and needs nothing the chart does not grant.

mod common;

use std::time::{Duration, Instant};

use common::chart_rbac::*;
use common::secret_text;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::kube::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_works_with_exactly_the_charts_rbac_cluster_wide() {
    bounded("the cluster-wide RBAC test", cluster_wide()).await;
}

async fn cluster_wide() {
    let started = Instant::now();
    let mut bed = Bed::private("rbac-cluster").await;
    let scratch = Scratch::new("cluster");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("trackvia-system").await;
    let team_a = bed.namespace("team-a").await;
    let team_b = bed.namespace("team-b").await;
    publish_ca(&bed, &release_ns, &fake, false).await;
    // Default values otherwise: one replica, cluster mode, no restarts, no leader election.
    // At most two source watches: three source Secrets are watched with one watch of all.
    let mut values = base_values(&fake, "configMapName");
    values["sourceWatchTotalLimit"] = json!(2);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    sa.assert_access(&cluster_access(&release_ns, &team_a, &team_b))
        .await;

    let mut pod = Pod::start(&bed, &release, &sa, &scratch, "0").await;
    assert!(
        pod.flag("--namespaces").is_none(),
        "the default values run the operator cluster-wide: {:?}",
        pod.args
    );
    // One replica elects itself too: it uses the chart's Lease RBAC.
    assert!(pod.args.iter().any(|a| a == "--leader-election"));
    pod.wait_ready().await;
    pod.wait_leading().await;

    let mut credentials = Vec::new();
    let a = Place::new(&bed, &team_a, &fake);
    let b = Place::new(&bed, &team_b, &fake);
    connections_reach_their_states(&a, &b, &fake, &mut credentials).await;
    events_come_from_the_pod(&a, &b, &pod).await;

    // The Secret appears: the operator notices (the watch of every Secret: three Secrets
    // read, over the limit of two) and recovers.
    wait_source_watches(&pod, 1.0, 0.0).await;
    let (late_key, late_token) = credential(&fake, Behavior::Valid, &mut credentials);
    b.put_source("later-user", &late_key, &late_token).await;
    b.wait_ready("later", "True", "Verified").await;
    b.wait_event("later", "Verified", "Normal").await;
    assert!(b.secrets().get_opt("later").await.unwrap().is_some());
    source_watches_stay_under_the_total(&pod, &a, &b, &fake, &mut credentials).await;

    forbidden_for_real(&sa, &release, &a).await;
    pod.assert_clean_log(&credentials);
    pod.stop_cleanly().await;
    eprintln!("cluster-wide test took {:?}", started.elapsed());
    drop(release);
    bed.finish().await;
}

/// What the chart's ServiceAccount may and may not do, cluster-wide.
fn cluster_access<'a>(release_ns: &'a str, team_a: &'a str, team_b: &'a str) -> Vec<Access<'a>> {
    vec![
        // What the operator needs, in every namespace.
        ("list", "secrets", "", true),
        ("watch", "secrets", "", true),
        ("get", "secrets", team_a, true),
        ("create", "secrets", team_a, true),
        ("patch", "secrets", team_a, true),
        ("list", "trackviaconnections.trackvia.io", "", true),
        ("watch", "trackviaconnections.trackvia.io", "", true),
        (
            "patch",
            "trackviaconnections.trackvia.io/status",
            team_b,
            true,
        ),
        ("create", "events.events.k8s.io", team_b, true),
        ("patch", "events.events.k8s.io", team_b, true),
        // What it must not be able to do.
        ("delete", "secrets", team_a, false),
        ("delete", "secrets", release_ns, false),
        ("update", "secrets", team_a, false),
        ("deletecollection", "secrets", team_a, false),
        ("patch", "deployments.apps", team_a, false),
        ("get", "deployments.apps", team_a, false),
        ("patch", "statefulsets.apps", team_a, false),
        ("patch", "daemonsets.apps", team_a, false),
        ("create", "trackviaconnections.trackvia.io", team_a, false),
        ("update", "trackviaconnections.trackvia.io", team_a, false),
        ("delete", "trackviaconnections.trackvia.io", team_a, false),
        (
            "update",
            "trackviaconnections.trackvia.io/status",
            team_a,
            false,
        ),
        // Leader election is on by default: its Lease, in the release namespace only.
        ("create", "leases.coordination.k8s.io", release_ns, true),
        ("create", "leases.coordination.k8s.io", team_a, false),
        ("create", "events", team_a, false),
        ("list", "configmaps", team_a, false),
        ("list", "pods", team_a, false),
        ("list", "namespaces", "", false),
        ("create", "serviceaccounts/token", release_ns, false),
        ("impersonate", "serviceaccounts", release_ns, false),
        ("bind", "clusterroles.rbac.authorization.k8s.io", "", false),
        (
            "escalate",
            "clusterroles.rbac.authorization.k8s.io",
            "",
            false,
        ),
        (
            "patch",
            "customresourcedefinitions.apiextensions.k8s.io",
            "",
            false,
        ),
    ]
}

/// A valid connection is Verified with its Secret published and owned; a revoked token is
/// Unauthorized with nothing published; a connection whose Secret does not exist yet, in
/// another namespace, waits for it.
async fn connections_reach_their_states(
    a: &Place,
    b: &Place,
    fake: &FakeTrackVia,
    credentials: &mut Vec<String>,
) {
    let (key, token) = credential(fake, Behavior::Valid, credentials);
    a.put_source("api-user", &key, &token).await;
    a.apply("crm", "api-user", json!({})).await;
    let (bad_key, bad_token) = credential(fake, Behavior::Revoked, credentials);
    a.put_source("revoked-user", &bad_key, &bad_token).await;
    a.apply("revoked", "revoked-user", json!({})).await;
    b.apply("later", "later-user", json!({})).await;

    let crm = a.wait_ready("crm", "True", "Verified").await;
    let published = a.secrets().get("crm").await.expect("the output Secret");
    assert_eq!(
        secret_text(&published, "apiKey").as_deref(),
        Some(key.as_str())
    );
    assert_eq!(
        secret_text(&published, "authToken").as_deref(),
        Some(token.as_str())
    );
    let owner = &published
        .metadata
        .owner_references
        .as_ref()
        .expect("the output Secret has an owner")[0];
    assert_eq!(Some(&owner.uid), crm.metadata.uid.as_ref());
    let revoked = a.wait_ready("revoked", "False", "Unauthorized").await;
    let verified = revoked
        .status
        .as_ref()
        .and_then(|s| s.condition("Verified"))
        .expect("a Verified condition");
    assert!(verified.message.contains("401"), "{verified:?}");
    assert!(a.secrets().get_opt("revoked").await.unwrap().is_none());
    b.wait_ready("later", "False", "CredentialsNotFound").await;
}

/// Three source Secrets over `sourceWatchTotalLimit: 2`: one watch of every Secret, through
/// which `later-user` was seen to appear (above) and a rotation arrives. Back to a watch by
/// name once one Secret is read (half the limit), and a rotation arrives through it.
async fn source_watches_stay_under_the_total(
    pod: &Pod,
    a: &Place,
    b: &Place,
    fake: &FakeTrackVia,
    credentials: &mut Vec<String>,
) {
    wait_source_watches(pod, 1.0, 0.0).await;
    rotate(b, "later-user", "later", fake, credentials).await;
    a_first_read_is_reported(pod, a, fake, credentials).await;
    for (place, name) in [(a, "revoked"), (a, "extra"), (b, "later")] {
        place
            .connections()
            .delete(name, &DeleteParams::default())
            .await
            .expect("deleting a connection");
    }
    wait_source_watches(pod, 0.0, 1.0).await;
    rotate(a, "api-user", "crm", fake, credentials).await;
}

/// A Secret the watch of all listed before any connection read it is reported, when a
/// connection first reads it, by a read of its metadata: a pass more than 10 s later (when
/// a read no watch reported is no longer used) finds the credentials in memory.
async fn a_first_read_is_reported(
    pod: &Pod,
    a: &Place,
    fake: &FakeTrackVia,
    credentials: &mut Vec<String>,
) {
    let (key, token) = credential(fake, Behavior::Valid, credentials);
    a.put_source("extra-user", &key, &token).await;
    a.apply("extra", "extra-user", json!({})).await;
    a.wait_ready("extra", "True", "Verified").await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let reads = pod.metric("trackvia_secret_reads_total").await;
    let forced =
        json!({"metadata": {"annotations": {"trackvia.io/verify-requested-at": "first-read"}}});
    a.connections()
        .patch("extra", &PatchParams::default(), &Patch::Merge(&forced))
        .await
        .expect("asking for a check");
    wait_for(
        &a.connections(),
        "extra",
        Duration::from_secs(30),
        "the forced check done",
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.verify_requested_at.as_deref())
                == Some("first-read")
        },
    )
    .await;
    assert_eq!(
        pod.metric("trackvia_secret_reads_total").await,
        reads,
        "the pass read a Secret its watch had reported"
    );
}

async fn wait_source_watches(pod: &Pod, all: f64, by_name: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = (
            pod.metric(r#"trackvia_source_secret_watches{selector="all"}"#)
                .await,
            pod.metric(r#"trackvia_source_secret_watches{selector="name"}"#)
                .await,
        );
        if seen == (all, by_name) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "source watches (all, by name) are {seen:?}, expected ({all}, {by_name})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A new valid token in `source`, published to `connection`'s Secret.
async fn rotate(
    place: &Place,
    source: &str,
    connection: &str,
    fake: &FakeTrackVia,
    credentials: &mut Vec<String>,
) {
    let (key, token) = credential(fake, Behavior::Valid, credentials);
    place.put_source(source, &key, &token).await;
    wait_for(
        &place.secrets(),
        connection,
        Duration::from_secs(30),
        "the rotated token published",
        |s| secret_text(s, "authToken").as_deref() == Some(token.as_str()),
    )
    .await;
}

/// Events through events.k8s.io, as the ServiceAccount, from the pod named by the
/// Deployment's downward-API POD_NAME.
async fn events_come_from_the_pod(a: &Place, b: &Place, pod: &Pod) {
    let event = a.wait_event("revoked", "Unauthorized", "Warning").await;
    assert_eq!(event.reporting_instance.as_deref(), Some(pod.name.as_str()));
    // Ready at the first answer records no event: the status says it. (Events
    // are recorded before the status is written, so none can still be coming.)
    assert_eq!(a.events_of("crm").await, Vec::<String>::new());
    b.wait_event("later", "CredentialsNotFound", "Warning")
        .await;
}

/// What the ServiceAccount cannot do, tried for real: the Secret stays.
async fn forbidden_for_real(sa: &Identity, release: &Release, a: &Place) {
    assert_forbidden(
        Api::<Secret>::namespaced(sa.client.clone(), &a.ns)
            .delete("crm", &DeleteParams::default())
            .await,
        "the ServiceAccount deleting a Secret",
    );
    assert_forbidden(
        Api::<Deployment>::namespaced(sa.client.clone(), &release.namespace)
            .patch(
                &release.fullname(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await,
        "the ServiceAccount patching a Deployment",
    );
    assert!(a.secrets().get_opt("crm").await.unwrap().is_some());
}
