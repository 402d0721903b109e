//! Changes over a connection's life: a renamed target retires the old
//! Secret, and consumers restart once the published content has settled.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::{Bed, CONNECTION, condition, connection, secret_path, source};
use crate::controller::restart::RESTART_HASH_ANNOTATION;
use crate::controller::secret::retired_owner_uid;

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/ns/deployments/app";

fn deployment() -> (String, Value) {
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"template": {"metadata": {"annotations": {}}}},
    });
    (DEPLOYMENT.to_string(), object)
}

/// A verified connection restarting `app`, whose token then changes.
async fn rotated(debounce: Duration) -> (Bed, Option<Duration>) {
    let targets = json!({"rolloutRestartTargets": [{"kind": "Deployment", "name": "app"}]});
    let mut bed = Bed::new(
        vec![connection(targets), source("tok-1"), deployment()],
        debounce,
    );
    bed.verify().await;
    let first = bed.writes();
    assert!(
        first.iter().all(|c| c.path != DEPLOYMENT),
        "the first publish restarts nothing: {first:?}"
    );
    let (path, object) = source("tok-2");
    bed.put(&path, object);
    bed.pass().await;
    let action = bed.answered().await;
    (bed, action)
}

#[tokio::test]
async fn a_renamed_target_retires_the_secret_the_operator_created() {
    let mut bed = Bed::new(vec![connection(json!({})), source("tok-1")], Duration::ZERO);
    bed.verify().await;
    bed.writes();
    let mut renamed = bed.object(CONNECTION).expect("the connection");
    renamed["spec"]["target"]["name"] = json!("new");
    renamed["metadata"]["generation"] = json!(2);
    bed.put(CONNECTION, renamed);
    bed.pass().await;
    let writes = bed.writes();
    let order: Vec<_> = writes.iter().map(|c| c.path.clone()).collect();
    assert_eq!(
        order,
        vec![
            secret_path("new"),
            secret_path("out"),
            secret_path("out"),
            format!("{CONNECTION}/status")
        ]
    );
    // The old Secret was created: its fields are first handed to the operator's apply
    // entry (at the version read), so the apply that empties it removes them.
    let handed = &writes[1].body["metadata"];
    assert!(handed["resourceVersion"].is_string(), "{handed}");
    assert_eq!(handed["managedFields"][0]["operation"], "Apply");
    let retired = &writes[2].body["metadata"];
    assert_eq!(retired["ownerReferences"][0]["uid"], retired_owner_uid());
    assert!(writes[2].body.get("data").is_none(), "emptied");
    assert_eq!(writes[3].body["status"]["secretName"], "new");
    assert!(
        bed.events().contains(&"SecretMoved".to_string()),
        "{:?}",
        bed.events()
    );
}

#[tokio::test]
async fn a_change_waits_for_the_debounce_before_restarting() {
    let debounce = Duration::from_secs(3600);
    let (bed, wake) = rotated(debounce).await;
    let writes = bed.writes();
    assert!(writes.iter().all(|c| c.path != DEPLOYMENT), "{writes:?}");
    assert!(
        writes.iter().any(|c| c.path == secret_path("out")),
        "new content published"
    );
    let status = &writes.last().expect("a status write").body["status"];
    assert!(status["pendingRestartSince"].is_string(), "{status}");
    // The pass looks again by the end of the window.
    let wake = wake.expect("a check is pending");
    assert!(wake <= debounce + Duration::from_secs(1), "{wake:?}");
}

#[tokio::test]
async fn a_settled_change_restarts_the_consumers_once() {
    let (bed, _) = rotated(Duration::ZERO).await;
    let writes = bed.writes();
    let restarts: Vec<_> = writes.iter().filter(|c| c.path == DEPLOYMENT).collect();
    assert_eq!(restarts.len(), 1, "{writes:?}");
    assert_eq!(restarts[0].method, Method::PATCH);
    let published = bed.connection().status.expect("a status").published_hash;
    let annotations = &restarts[0].body["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations[RESTART_HASH_ANNOTATION].as_str(),
        published.as_deref()
    );
    let status = &writes.last().expect("a status write").body["status"];
    assert_eq!(condition(status, "RolloutRestart")["status"], "True");
    assert!(status["pendingRestartSince"].is_null(), "{status}");
    assert!(bed.events().contains(&"RolloutRestarted".to_string()));

    // The same content again: no second restart.
    bed.pass().await;
    assert!(bed.writes().iter().all(|c| c.path != DEPLOYMENT));
}
