//! The chart's RBAC in scoped mode (`watchNamespaces`): the operator, run as the chart's
//! ServiceAccount on the shared bed, touches only the listed namespaces.

mod common;

use std::time::Instant;

use common::chart_rbac::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde_json::json;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_mode_touches_only_listed_namespaces() {
    bounded("the scoped-mode RBAC test", scoped()).await;
}

async fn scoped() {
    let started = Instant::now();
    let mut bed = Bed::shared().await;
    let scratch = Scratch::new("scoped");
    let fake = FakeTrackVia::start().await;
    let release_ns = bed.namespace("rbac-scoped").await;
    let ns_a = bed.namespace("rbac-scoped-a").await;
    let ns_b = bed.namespace("rbac-scoped-b").await;
    let ns_c = bed.namespace("rbac-scoped-c").await;
    publish_ca(&bed, &release_ns, &fake, false).await;
    let mut values = base_values(&fake, "configMapName");
    values["watchNamespaces"] = json!([ns_a, ns_b]);
    let release = Release::install(&bed, &release_ns, &values, &scratch).await;
    let sa_name = release.service_account(&bed).await;
    let sa = Identity::service_account(&bed, &release_ns, &sa_name, &scratch).await;
    may_touch_only_a_and_b(&sa, &release_ns, [&ns_a, &ns_b, &ns_c]).await;

    let mut pod = Pod::start(&bed, &release, &sa, &scratch, "0").await;
    assert_eq!(
        pod.flag("--namespaces"),
        Some(format!("{ns_a},{ns_b}").as_str()),
        "{:?}",
        pod.args
    );
    pod.wait_ready().await;

    let mut credentials = Vec::new();
    let places: Vec<Place> = [&ns_a, &ns_b, &ns_c]
        .iter()
        .map(|ns| Place::new(&bed, ns, &fake))
        .collect();
    let mut keys = Vec::new();
    for place in &places {
        let (key, token) = credential(&fake, Behavior::Valid, &mut credentials);
        place.put_source("api-user", &key, &token).await;
        place.apply("crm", "api-user", json!({})).await;
        keys.push((key, token));
    }
    let applied = Instant::now();
    for place in &places[..2] {
        served(place, &fake, &mut credentials).await;
    }
    c_is_untouched(&places[2], &fake, &keys[2], applied).await;
    assert_eq!(pod.metric("trackvia_secret_writes_total").await, 2.0);

    pod.assert_clean_log(&credentials);
    pod.stop_cleanly().await;
    eprintln!("scoped test took {:?}", started.elapsed());
    release.uninstall().await;
    bed.finish().await;
}

/// The chart's ServiceAccount may read and report on the watched namespaces a and b, and
/// nothing in c, the release's namespace or cluster-wide.
async fn may_touch_only_a_and_b(sa: &Identity, release_ns: &str, [ns_a, ns_b, ns_c]: [&str; 3]) {
    sa.assert_access(&[
        ("list", "secrets", ns_a, true),
        ("watch", "secrets", ns_b, true),
        ("list", "trackviaconnections.trackvia.io", ns_a, true),
        (
            "patch",
            "trackviaconnections.trackvia.io/status",
            ns_b,
            true,
        ),
        ("create", "events.events.k8s.io", ns_a, true),
        ("list", "secrets", ns_c, false),
        ("get", "secrets", ns_c, false),
        ("list", "trackviaconnections.trackvia.io", ns_c, false),
        (
            "patch",
            "trackviaconnections.trackvia.io/status",
            ns_c,
            false,
        ),
        ("create", "events.events.k8s.io", ns_c, false),
        ("list", "secrets", release_ns, false),
        ("list", "secrets", "", false),
        ("list", "trackviaconnections.trackvia.io", "", false),
        ("delete", "secrets", ns_a, false),
        ("patch", "deployments.apps", ns_a, false),
    ])
    .await;
    assert_forbidden(
        Api::<Secret>::namespaced(sa.client.clone(), ns_c)
            .list(&ListParams::default())
            .await,
        "the ServiceAccount listing Secrets outside its namespaces",
    );
}

/// A watched namespace: its connection is Ready with its Secret, and events are written
/// there (Ready at the first answer records none; a refusal does).
async fn served(place: &Place, fake: &FakeTrackVia, credentials: &mut Vec<String>) {
    place.wait_ready("crm", "True", "Verified").await;
    assert!(place.secrets().get_opt("crm").await.unwrap().is_some());
    let (bad_key, bad_token) = credential(fake, Behavior::Revoked, credentials);
    place.put_source("revoked-user", &bad_key, &bad_token).await;
    place.apply("revoked", "revoked-user", json!({})).await;
    place.wait_event("revoked", "Unauthorized", "Warning").await;
}

/// Namespace c, its connection applied at `applied` with `key`: never read, called for,
/// written to or reported on.
async fn c_is_untouched(c: &Place, fake: &FakeTrackVia, key: &(String, String), applied: Instant) {
    let untouched_version = c.version_of_connection("crm").await;
    tokio::time::sleep(UNTOUCHED_FOR.saturating_sub(applied.elapsed())).await;
    let tvc = c.connection("crm").await;
    assert!(
        tvc.status.is_none(),
        "c's connection got a status: {:?}",
        tvc.status
    );
    assert_eq!(
        tvc.metadata.resource_version.as_deref(),
        Some(untouched_version.as_str())
    );
    assert!(
        c.secrets().get_opt("crm").await.unwrap().is_none(),
        "a Secret was published in c"
    );
    assert!(c.events().await.is_empty(), "the operator reported on c");
    assert_eq!(
        fake.calls_for(&key.0, &key.1),
        0,
        "c's credentials were sent to TrackVia"
    );
}
