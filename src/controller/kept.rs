//! What the stores keep of the objects they watch: thousands are kept, so
//! what the operator never reads is dropped on arrival.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use kube::ResourceExt;

use super::watches::SecretMeta;
use crate::crd::{ADOPTED_ANNOTATION, CONNECTION_ANNOTATION, MANAGED_BY_LABEL, TrackViaConnection};

/// What `kubectl apply` (client-side) keeps of the last applied object: the
/// whole spec again, which the operator never reads.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A connection without its managed fields and `kubectl apply`'s copy of itself.
pub fn slim_connection(tvc: &mut TrackViaConnection) {
    tvc.managed_fields_mut().clear();
    if let Some(annotations) = tvc.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// What the operator reads of an output Secret: its name, namespace and version; the operator's
/// label; the connection and adoption annotations; the owners' uids.
pub fn slim(meta: &mut SecretMeta) {
    meta.types = None;
    let m = &mut meta.metadata;
    let name = m.name.take();
    let namespace = m.namespace.take();
    let resource_version = m.resource_version.take();
    let mut labels = m.labels.take().unwrap_or_default();
    labels.retain(|k, _| k == MANAGED_BY_LABEL);
    let mut annotations = m.annotations.take().unwrap_or_default();
    annotations.retain(|k, _| k == CONNECTION_ANNOTATION || k == ADOPTED_ANNOTATION);
    let owner_references = m.owner_references.take().map(|owners| {
        owners
            .into_iter()
            .map(|o| OwnerReference {
                uid: o.uid,
                ..OwnerReference::default()
            })
            .collect()
    });
    *m = ObjectMeta {
        name,
        namespace,
        resource_version,
        labels: (!labels.is_empty()).then_some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references,
        ..ObjectMeta::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_keeps_what_passes_read_and_drops_the_rest() {
        let mut meta: SecretMeta = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {
                "name": "crm-trackvia", "namespace": "apps", "uid": "s-1",
                "resourceVersion": "42", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app.kubernetes.io/managed-by": "trackvia-operator", "team": "a"},
                "annotations": {"trackvia.io/connection": "crm", "trackvia.io/adopted": "Delete",
                                "trackvia.io/hash": "abc", "note": "x"},
                "ownerReferences": [{"apiVersion": "trackvia.io/v1alpha1",
                    "kind": "TrackViaConnection", "name": "crm", "uid": "c-1",
                    "controller": true}],
                "finalizers": ["example.com/keep"]
            }
        }))
        .expect("metadata");
        slim(&mut meta);
        let kept = serde_json::to_value(&meta.metadata).expect("encodes");
        assert_eq!(
            kept,
            serde_json::json!({
                "name": "crm-trackvia", "namespace": "apps", "resourceVersion": "42",
                "labels": {"app.kubernetes.io/managed-by": "trackvia-operator"},
                "annotations": {"trackvia.io/connection": "crm", "trackvia.io/adopted": "Delete"},
                "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": "c-1"}]
            })
        );
        assert!(meta.types.is_none());
    }

    #[test]
    fn a_connection_is_kept_without_kubectls_copy_of_itself() {
        let mut tvc: TrackViaConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
            "metadata": {"name": "crm", "namespace": "apps", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}",
                "trackvia.io/verify-requested-at": "2026-01-01T00:00:00Z"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"host": "acme.trackvia.com", "credentialsSecretRef": {"name": "src"}},
        }))
        .expect("a connection");
        slim_connection(&mut tvc);
        assert!(tvc.managed_fields().is_empty());
        assert_eq!(
            tvc.annotations().keys().collect::<Vec<_>>(),
            ["trackvia.io/verify-requested-at"]
        );
    }
}
