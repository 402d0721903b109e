//! Stuck connections cost nothing on the real test bed: a connection whose
//! output Secret the API server refuses, or whose credentials TrackVia refuses,
//! has its status written once, then not again while nothing changes, although
//! the operator keeps retrying the Secret.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use common::cli::impersonating_kubeconfig;
use k8s_openapi::api::core::v1::{ResourceQuota, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::ClusterObjectGuard;
use trackvia_testsupport::metrics::series;

/// How long the connections are watched once settled: four Secret retries.
const IDLE: Duration = Duration::from_secs(65);

/// The value of an unlabelled counter in the operator's metrics.
fn counter(metrics: &str, name: &str) -> f64 {
    series(metrics, name).unwrap_or_else(|| panic!("no {name} in the metrics:\n{metrics}"))
}

fn resource_version(t: &TrackViaConnection) -> String {
    t.metadata.resource_version.clone().unwrap_or_default()
}

/// A ResourceQuota that allows no more Secrets than the namespace holds. The
/// test bed runs no quota controller, so its usage is recorded here as the
/// controller would; the API server's quota admission does the refusing.
async fn quota_secrets_at_current_count(h: &Harness) {
    let used = h
        .secrets_api()
        .list(&ListParams::default())
        .await
        .expect("listing Secrets")
        .items
        .len()
        .to_string();
    let quotas: kube::Api<ResourceQuota> = h.ns.api();
    let quota: ResourceQuota = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "secrets"},
        "spec": {"hard": {"secrets": used}},
    }))
    .expect("a quota");
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("creating the quota");
    let status = json!({"status": {"hard": {"secrets": used}, "used": {"secrets": used}}});
    quotas
        .patch_status("secrets", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("recording the quota's usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_connections_write_their_status_once() {
    let mut h = Harness::start("tvc-stuck", &[]).await;
    let (key, token) = h.credential(Behavior::Valid);
    h.put_source("src", &key, &token).await;
    let (bad_key, bad_token) = h.credential(Behavior::Revoked);
    h.put_source("src-revoked", &bad_key, &bad_token).await;
    quota_secrets_at_current_count(&h).await;

    let stuck = refused_three_ways(&h).await;
    an_idle_window_writes_nothing(&h, &stuck).await;
    room_in_the_quota_publishes(&h, &token).await;
    h.finish().await;
}

/// The quota refuses a new Secret, annotations over 256 KiB are invalid, TrackVia
/// refuses the token: three connections stuck with Ready=False and no Secret.
async fn refused_three_ways(h: &Harness) -> Vec<String> {
    h.apply_connection("quota", "src", json!({}))
        .await
        .expect("applying");
    let huge = "x".repeat(300 * 1024);
    h.apply_connection(
        "huge",
        "src",
        json!({"target": {"annotations": {"example.com/note": huge}}}),
    )
    .await
    .expect("applying");
    h.apply_connection("revoked", "src-revoked", json!({}))
        .await
        .expect("applying");

    let quota = h.wait_ready("quota", "False", "SecretSyncFailed").await;
    let huge = h.wait_ready("huge", "False", "SecretSyncFailed").await;
    h.wait_ready("revoked", "False", "Unauthorized").await;
    let message = |t: &TrackViaConnection| {
        t.status
            .as_ref()
            .and_then(|s| s.condition("Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    assert!(
        message(&quota).contains("exceeded quota"),
        "{}",
        message(&quota)
    );
    assert!(message(&huge).contains("Too long"), "{}", message(&huge));
    for name in ["quota", "huge", "revoked"] {
        assert!(
            h.secrets_api()
                .get_opt(name)
                .await
                .expect("reading")
                .is_none(),
            "{name} was written"
        );
    }
    ["quota", "huge", "revoked"].map(String::from).to_vec()
}

/// Nothing new for a bounded window: no TrackVia call, no status write, no new
/// resourceVersion, although passes run and the Secrets are retried.
async fn an_idle_window_writes_nothing(h: &Harness, versions: &[String]) {
    // Let the first retries settle, then watch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = h.metrics().await;
    let mut start = Vec::new();
    for name in versions {
        start.push(resource_version(
            &h.connections().get(name).await.expect("reading"),
        ));
    }
    let calls = h.fake.total_calls();
    let started = Instant::now();
    tokio::time::sleep(IDLE).await;
    assert_eq!(h.fake.total_calls(), calls, "TrackVia asked again");
    let after = h.metrics().await;
    for (name, rv) in versions.iter().zip(&start) {
        let now = h.connections().get(name).await.expect("reading");
        assert_eq!(
            &resource_version(&now),
            rv,
            "{name} was rewritten during {:?} of nothing new",
            started.elapsed()
        );
    }
    let writes = |m: &str| counter(m, "trackvia_status_writes_total");
    assert_eq!(
        writes(&after),
        writes(&before),
        "status writes during an idle window"
    );
    // The operator did try again meanwhile: passes ran, Secrets were retried.
    let passes = |m: &str| counter(m, "trackvia_reconcile_duration_seconds_count");
    assert!(
        passes(&after) >= passes(&before) + 6.0,
        "the Secrets were not retried: {} -> {} passes",
        passes(&before),
        passes(&after)
    );
}

/// Something changes: room in the quota. The Secret is written at the next
/// retry and Ready turns True once.
async fn room_in_the_quota_publishes(h: &Harness, token: &str) {
    let quotas: kube::Api<ResourceQuota> = h.ns.api();
    quotas
        .delete("secrets", &Default::default())
        .await
        .expect("deleting the quota");
    h.wait_ready("quota", "True", "Verified").await;
    let published: Secret = h
        .wait_published(
            "quota",
            token,
            Duration::from_secs(30),
            "the Secret after the quota is gone",
        )
        .await;
    assert!(published.metadata.name.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_secret_the_operator_may_not_read_turns_ready_false() {
    let admin = trackvia_testsupport::kube::client().await;
    let user = format!(
        "tvc-operator-{}",
        common::secret_value("").get(..8).unwrap_or("x")
    );
    let (role_guard, binding_guard) = grant_all_but_reading_the_source(&admin, &user).await;
    let roles: kube::Api<ClusterRole> = kube::Api::all(admin.clone());

    let kubeconfig = impersonating_kubeconfig(&user);
    let mut h = Harness::start_with_env(
        "tvc-unreadable",
        &[],
        &[("KUBECONFIG".to_string(), kubeconfig.display().to_string())],
    )
    .await;
    let (_key, token) = h.connect("crm", "src", Behavior::Valid, json!({})).await;
    let tvc = h.wait_ready("crm", "False", "CredentialsUnreadable").await;
    let ready = tvc
        .status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .expect("Ready");
    assert!(
        ready.message.contains("forbidden") && ready.message.contains("403"),
        "{}",
        ready.message
    );
    assert_eq!(h.fake.total_calls(), 0);

    // The missing rule is added: the next periodic read succeeds by itself.
    let fixed = json!({"rules": [
        {"apiGroups": ["trackvia.io"], "resources": ["trackviaconnections", "trackviaconnections/status"],
         "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "patch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]});
    roles
        .patch(&user, &PatchParams::default(), &Patch::Merge(&fixed))
        .await
        .expect("adding the rule");
    h.wait_published(
        "crm",
        &token,
        Duration::from_secs(90),
        "the Secret once the source can be read",
    )
    .await;
    h.finish().await;
    binding_guard.delete(&admin).await;
    role_guard.delete(&admin).await;
    let _ = std::fs::remove_file(kubeconfig);
}

/// What the operator needs, but `get` on Secrets only for the output Secret: the
/// rule for the source Secret is missing. The guards delete the role and binding.
async fn grant_all_but_reading_the_source(
    admin: &kube::Client,
    user: &str,
) -> (ClusterObjectGuard, ClusterObjectGuard) {
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": user},
        "rules": [
            {"apiGroups": ["trackvia.io"], "resources": ["trackviaconnections", "trackviaconnections/status"],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch", "create", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["crm"], "verbs": ["get"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    }))
    .expect("a ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("a ClusterRoleBinding");
    let roles: kube::Api<ClusterRole> = kube::Api::all(admin.clone());
    let bindings: kube::Api<ClusterRoleBinding> = kube::Api::all(admin.clone());
    let role_guard = ClusterObjectGuard::new::<ClusterRole>(user);
    let binding_guard = ClusterObjectGuard::new::<ClusterRoleBinding>(user);
    roles
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the role");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding the role");
    (role_guard, binding_guard)
}
