//! Smoke tests of the test bed itself: the Kubernetes features the operator's integration
//! tests rely on work on the control plane `KUBECONFIG` points at. Without a bed these fail
//! with instructions (they never skip).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use trackvia_testsupport::fixtures::random_lowercase;
use trackvia_testsupport::kube::{
    ClusterObjectGuard, TestNamespace, client, crd_established, wait_for, wait_for_absent,
};

const MANAGER: &str = "smoke-test";

/// A namespaced `Widget` CRD in a group of its own, so parallel runs never collide.
fn widget_crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{group}") },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "required": ["colour"],
                        "properties": {
                            "colour": { "type": "string", "minLength": 1 },
                            "replicas": { "type": "integer", "minimum": 0 },
                        },
                    }},
                }},
            }],
        },
    }))
    .unwrap()
}

fn widget(name: &str, spec: serde_json::Value, resource: &ApiResource) -> DynamicObject {
    let mut obj = DynamicObject::new(name, resource);
    obj.data = serde_json::json!({ "spec": spec });
    obj
}

/// Creates `obj`, retrying while the new kind is not yet served (a 404 just after the CRD is
/// Established is normal).
async fn create_when_served(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match api.create(&PostParams::default(), obj).await {
            Err(kube::Error::Api(status)) if status.code == 404 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

fn expect_invalid(result: Result<DynamicObject, kube::Error>, field: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected 422 Invalid: {status:?}");
            assert!(
                status.message.contains(field),
                "the rejection should name {field}: {}",
                status.message
            );
        }
        Ok(obj) => panic!(
            "the server accepted an invalid widget: {}",
            serde_json::to_string(&obj).unwrap()
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn crd_becomes_established_and_its_schema_is_enforced() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "smoke-crd").await;
    let group = format!("{}.smoke.trackvia.io", random_lowercase(8));
    let crd = widget_crd(&group);
    let crd_name = crd.name_any();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let guard = ClusterObjectGuard::new::<CustomResourceDefinition>(&crd_name);
    crds.create(&PostParams::default(), &crd).await.unwrap();
    wait_for(
        &crds,
        &crd_name,
        Duration::from_secs(30),
        "the Widget CRD to be Established",
        crd_established,
    )
    .await;

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), ns.name(), &resource);

    let good = widget(
        "good",
        serde_json::json!({"colour": "blue", "replicas": 2}),
        &resource,
    );
    let created = create_when_served(&widgets, &good).await.unwrap();
    assert_eq!(created.data["spec"]["colour"], "blue");

    let no_colour = widget("no-colour", serde_json::json!({"replicas": 1}), &resource);
    expect_invalid(create_when_served(&widgets, &no_colour).await, "colour");

    let negative = widget(
        "negative",
        serde_json::json!({"colour": "red", "replicas": -1}),
        &resource,
    );
    expect_invalid(create_when_served(&widgets, &negative).await, "replicas");

    let wrong_type = widget(
        "wrong-type",
        serde_json::json!({"colour": "red", "replicas": "many"}),
        &resource,
    );
    expect_invalid(create_when_served(&widgets, &wrong_type).await, "replicas");

    ns.cleanup().await;
    guard.delete(&client).await;
    wait_for_absent(
        &crds,
        &crd_name,
        Duration::from_secs(60),
        "the Widget CRD to be deleted",
    )
    .await;
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.to_string());
    secret.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect::<BTreeMap<_, _>>(),
    );
    secret
}

fn data_of(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

#[tokio::test]
async fn server_side_apply_of_a_secret() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "smoke-ssa").await;
    let secrets: Api<Secret> = ns.api();
    let params = PatchParams::apply(MANAGER).force();

    let applied = secrets
        .patch(
            "conn",
            &params,
            &Patch::Apply(secret("conn", &[("host", "a.example"), ("token", "t1")])),
        )
        .await
        .unwrap();
    assert_eq!(data_of(&applied)["token"], "t1");

    // Re-apply with a changed value and one key less: the key this manager owned is removed.
    let reapplied = secrets
        .patch(
            "conn",
            &params,
            &Patch::Apply(secret("conn", &[("host", "b.example")])),
        )
        .await
        .unwrap();
    assert_eq!(
        data_of(&reapplied),
        BTreeMap::from([("host".to_string(), "b.example".to_string())])
    );
    assert!(
        reapplied.resource_version() != applied.resource_version(),
        "the change was written"
    );

    let managers: Vec<(String, String)> = reapplied
        .managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&(MANAGER.to_string(), "Apply".to_string())),
        "field manager {MANAGER} should own fields: {managers:?}"
    );

    // Another manager may not take a field without forcing.
    let conflict = secrets
        .patch(
            "conn",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(secret("conn", &[("host", "c.example")])),
        )
        .await
        .unwrap_err();
    match conflict {
        kube::Error::Api(status) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("expected a conflict, got {other}"),
    }

    ns.cleanup().await;
}

#[tokio::test]
async fn dependents_are_garbage_collected() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "smoke-gc").await;
    let config_maps: Api<ConfigMap> = ns.api();

    let mut owner = ConfigMap::default();
    owner.metadata.name = Some("owner".to_string());
    let owner = config_maps
        .create(&PostParams::default(), &owner)
        .await
        .unwrap();

    ns.create_from_json::<ConfigMap>(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": "owner",
                "uid": owner.uid().unwrap(),
            }],
        },
        "data": { "k": "v" },
    }))
    .await;

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_for_absent(
        &config_maps,
        "dependent",
        Duration::from_secs(30),
        "the garbage collector (kube-controller-manager) to delete the dependent ConfigMap",
    )
    .await;

    ns.cleanup().await;
}

#[tokio::test]
async fn namespace_deletion_completes() {
    let client: Client = client().await;
    let ns = TestNamespace::create(&client, "smoke-ns").await;
    let name = ns.name().to_string();

    let mut config_map = ConfigMap::default();
    config_map.metadata.name = Some("content".to_string());
    ns.api::<ConfigMap>()
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret("content", &[("k", "v")]))
        .await
        .unwrap();

    // Deleting the content and then the namespace itself is the namespace controller's work.
    ns.delete_and_wait(Duration::from_secs(60)).await;
    let namespaces = Api::<Namespace>::all(client);
    assert!(namespaces.get_opt(&name).await.unwrap().is_none());
}
