//! `helm upgrade` of the chart while operators run as its ServiceAccount: connections stay
//! Ready across the upgrade.

mod common;

use std::time::{Duration, Instant};

use common::chart_rbac::*;
use common::{SETTLE, secret_text, secret_value};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::kube::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_keeps_connections_ready() {
    bounded("the upgrade test", upgrade()).await;
}

async fn upgrade() {
    let started = Instant::now();
    let mut bed = Bed::shared().await;
    let scratch = Scratch::new("upgrade");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("rbac-upgrade").await;
    let first_ns = bed.namespace("rbac-upgrade-one").await;
    let second_ns = bed.namespace("rbac-upgrade-two").await;
    publish_ca(&bed, &release_ns, &fake, true).await;
    let mut values = base_values(&fake, "secretName");
    values["watchNamespaces"] = json!([first_ns]);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    let lease_by_name = format!("leases.coordination.k8s.io={}", release.fullname());
    a_consumer(&bed, &first_ns).await;

    let mut before = Pod::start(&bed, &release, &sa, &scratch, "v1").await;
    before.wait_ready().await;
    let mut credentials = Vec::new();
    let one = Place::new(&bed, &first_ns, &fake);
    let two = Place::new(&bed, &second_ns, &fake);
    let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
    one.put_source("api-user", &key, &token).await;
    one.apply(
        "crm",
        "api-user",
        json!({"rolloutRestartTargets": [{"kind": "Deployment", "name": "consumer"}]}),
    )
    .await;
    one.wait_ready("crm", "True", "Verified").await;
    // One replica elects itself too (its Lease only).
    sa.assert_access(&[
        ("patch", "deployments.apps", &first_ns, false),
        ("create", "leases.coordination.k8s.io", &release_ns, true),
        ("get", &lease_by_name, &release_ns, true),
        ("list", "secrets", &second_ns, false),
    ])
    .await;
    let namespaces = [first_ns.as_str(), second_ns.as_str()];
    upgrade_widens_the_rbac(&bed, &release, &sa, &scratch, &mut values, namespaces).await;

    // The rollout: the old pod stops, a new one starts with the upgraded spec.
    let settled = one.versions("crm").await;
    before.assert_clean_log(&credentials);
    before.stop_cleanly().await;
    let mut after = rolled_out(&bed, &release, &sa, &scratch, namespaces).await;
    settled_is_left_alone(&after, &one, settled).await;
    assert_eq!(
        fake.calls_for(&key, &token),
        1,
        "re-verified after the upgrade"
    );

    // The newly watched namespace works.
    let (key2, token2) = credential(&fake, Behavior::Valid, &mut credentials);
    two.put_source("api-user", &key2, &token2).await;
    two.apply("crm", "api-user", json!({})).await;
    two.wait_ready("crm", "True", "Verified").await;
    assert!(two.secrets().get_opt("crm").await.unwrap().is_some());

    a_new_token_restarts_the_consumer(&bed, &one, &fake, &key, &mut credentials).await;
    after.assert_clean_log(&credentials);
    after.stop_cleanly().await;
    eprintln!("upgrade test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}

/// A consumer of the published Secret, to be restarted once restarts are allowed.
async fn a_consumer(bed: &Bed, ns: &str) {
    let consumer: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "consumer"},
        "spec": {
            "selector": {"matchLabels": {"app": "consumer"}},
            "template": {
                "metadata": {"labels": {"app": "consumer"}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/consumer:1"}]},
            },
        },
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(bed.client.clone(), ns)
        .create(&PostParams::default(), &consumer)
        .await
        .expect("creating the consumer Deployment");
}

/// Upgrade: a second namespace, two replicas, restarts, debug logs; the ServiceAccount may
/// then restart workloads, hold its Lease and read the second namespace, and no more.
async fn upgrade_widens_the_rbac(
    bed: &Bed,
    release: &Release,
    sa: &Identity,
    scratch: &Scratch,
    values: &mut Value,
    [first_ns, second_ns]: [&str; 2],
) {
    let release_ns = release.namespace.as_str();
    let lease_by_name = format!("leases.coordination.k8s.io={}", release.fullname());
    values["watchNamespaces"] = json!([first_ns, second_ns]);
    values["replicaCount"] = json!(2);
    values["rolloutRestart"] = json!({"enabled": true});
    values["logLevel"] = json!("debug");
    release.upgrade(bed, values, scratch).await;
    sa.assert_access(&[
        ("get", "deployments.apps", first_ns, true),
        ("patch", "deployments.apps", first_ns, true),
        ("patch", "statefulsets.apps", second_ns, true),
        ("create", "leases.coordination.k8s.io", release_ns, true),
        ("get", &lease_by_name, release_ns, true),
        ("patch", &lease_by_name, release_ns, true),
        ("list", "secrets", second_ns, true),
        ("delete", "secrets", first_ns, false),
        ("delete", "deployments.apps", first_ns, false),
    ])
    .await;
}

/// The pod of the upgraded Deployment: debug logs, both namespaces, elected, holding the Lease.
async fn rolled_out(
    bed: &Bed,
    release: &Release,
    sa: &Identity,
    scratch: &Scratch,
    [first_ns, second_ns]: [&str; 2],
) -> Pod {
    let mut after = Pod::start(bed, release, sa, scratch, "v2").await;
    assert_eq!(after.flag("--log-level"), Some("debug"));
    assert_eq!(
        after.flag("--namespaces"),
        Some(format!("{first_ns},{second_ns}").as_str())
    );
    assert!(after.args.iter().any(|a| a == "--leader-election"));
    after.wait_ready().await;
    after.wait_leading().await;
    assert_eq!(
        holder(&release.lease(bed).await),
        Some(after.lease_identity())
    );
    after
}

/// The settled connection is gone over and left as it was (`settled`), still Ready.
async fn settled_is_left_alone(after: &Pod, one: &Place, settled: (String, String)) {
    wait_reconciled(after, 1.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(after.metric("trackvia_status_writes_total").await, 0.0);
    assert_eq!(after.metric("trackvia_secret_writes_total").await, 0.0);
    assert_eq!(
        one.versions("crm").await,
        settled,
        "the upgrade rewrote a settled connection"
    );
    let crm = one.connection("crm").await;
    assert_eq!(
        ready_reason(&crm),
        Some(("True".to_string(), "Verified".to_string()))
    );
}

/// A new token for `key`: the content changes, and the consumer is restarted under the new RBAC.
async fn a_new_token_restarts_the_consumer(
    bed: &Bed,
    one: &Place,
    fake: &FakeTrackVia,
    key: &str,
    credentials: &mut Vec<String>,
) {
    let rotated = secret_value("t");
    credentials.push(rotated.clone());
    fake.set(key, &rotated, Behavior::Valid);
    one.put_source("api-user", key, &rotated).await;
    wait_for(
        &one.connections(),
        "crm",
        SETTLE,
        "the RolloutRestart condition to be True",
        |t: &TrackViaConnection| {
            t.status
                .as_ref()
                .and_then(|s| s.condition("RolloutRestart"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await;
    let consumer = Api::<Deployment>::namespaced(bed.client.clone(), &one.ns)
        .get("consumer")
        .await
        .expect("the consumer Deployment");
    let annotations = consumer
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        annotations.contains_key("trackvia.io/restartedAt"),
        "{annotations:?}"
    );
    one.wait_event("crm", "RolloutRestarted", "Normal").await;
    let published = one.secrets().get("crm").await.expect("the output Secret");
    assert_eq!(
        secret_text(&published, "authToken").as_deref(),
        Some(rotated.as_str())
    );
}
