//! What the stores keep of the objects they watch: thousands are kept, so
//! what the operator never reads is dropped on arrival.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::reflector::{Lookup, ObjectRef};
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};

use super::watches::SecretMeta;
use crate::crd::{
    ADOPTED_ANNOTATION, CONNECTION_ANNOTATION, MANAGED_BY_LABEL, MANAGER_NAME, TrackViaConnection,
};

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

/// What the operator reads of an output Secret, and all its store keeps of one:
/// name, namespace and version; whether it carries the operator's label; the
/// connection and adoption annotations; the owners' uids. A few hundred bytes
/// where the metadata as delivered takes over a kilobyte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeptSecret {
    name: String,
    namespace: Option<String>,
    version: Option<String>,
    managed: bool,
    connection: Option<String>,
    adopted: Option<String>,
    owner_uids: Vec<String>,
}

impl KeptSecret {
    /// Keep what passes read of `meta`, dropping the rest.
    pub fn keep(meta: SecretMeta) -> KeptSecret {
        let m = meta.metadata;
        let mut annotations = m.annotations.unwrap_or_default();
        KeptSecret {
            name: m.name.unwrap_or_default(),
            namespace: m.namespace,
            version: m.resource_version,
            managed: m
                .labels
                .is_some_and(|l| l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGER_NAME)),
            connection: annotations.remove(CONNECTION_ANNOTATION),
            adopted: annotations.remove(ADOPTED_ANNOTATION),
            owner_uids: m
                .owner_references
                .into_iter()
                .flatten()
                .map(|o| o.uid)
                .collect(),
        }
    }

    /// The Secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Secret's namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The Secret's resourceVersion when it was last seen.
    pub fn seen_version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Was it adopted (the adoption annotation is set)?
    pub fn adopted(&self) -> bool {
        self.adopted.is_some()
    }

    /// The connection named in the Secret's annotation.
    pub fn connection(&self) -> Option<&str> {
        self.connection.as_deref()
    }

    /// The metadata decisions read ([`super::secret::ownership`],
    /// [`super::adoption::orphans`]), rebuilt from what was kept.
    pub fn metadata(&self) -> ObjectMeta {
        let annotations: BTreeMap<String, String> = [
            (CONNECTION_ANNOTATION, &self.connection),
            (ADOPTED_ANNOTATION, &self.adopted),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
        .collect();
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: self.namespace.clone(),
            resource_version: self.version.clone(),
            labels: self.managed.then(|| {
                BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGER_NAME.to_string())])
            }),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: (!self.owner_uids.is_empty()).then(|| {
                self.owner_uids
                    .iter()
                    .map(|uid| OwnerReference {
                        uid: uid.clone(),
                        ..OwnerReference::default()
                    })
                    .collect()
            }),
            ..ObjectMeta::default()
        }
    }
}

/// What a watch event of output Secrets becomes in their store.
pub fn keep_event(event: Event<SecretMeta>) -> Event<KeptSecret> {
    match event {
        Event::Apply(m) => Event::Apply(KeptSecret::keep(m)),
        Event::Delete(m) => Event::Delete(KeptSecret::keep(m)),
        Event::Init => Event::Init,
        Event::InitApply(m) => Event::InitApply(KeptSecret::keep(m)),
        Event::InitDone => Event::InitDone,
    }
}

/// A kept Secret is found in its store as a Secret: by namespace and name.
impl Lookup for KeptSecret {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        <Secret as Resource>::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        <Secret as Resource>::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        <Secret as Resource>::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        <Secret as Resource>::plural(&())
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        self.version.as_deref().map(Cow::Borrowed)
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
    /// The store's key: name and namespace. Keys compare by those alone either way; this
    /// one also leaves out the copies of the version and uid the default key carries.
    fn to_object_ref(&self, dyntype: ()) -> ObjectRef<Self> {
        let key = ObjectRef::new_with(&self.name, dyntype);
        match &self.namespace {
            Some(ns) => key.within(ns),
            None => key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_keeps_what_passes_read_and_drops_the_rest() {
        let meta: SecretMeta = serde_json::from_value(serde_json::json!({
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
        let kept = KeptSecret::keep(meta);
        assert_eq!(kept.connection(), Some("crm"));
        let kept = serde_json::to_value(kept.metadata()).expect("encodes");
        assert_eq!(
            kept,
            serde_json::json!({
                "name": "crm-trackvia", "namespace": "apps", "resourceVersion": "42",
                "labels": {"app.kubernetes.io/managed-by": "trackvia-operator"},
                "annotations": {"trackvia.io/connection": "crm", "trackvia.io/adopted": "Delete"},
                "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": "c-1"}]
            })
        );
        // Nothing else is kept: a Secret without the label or annotations keeps none.
        let bare: SecretMeta = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "other", "namespace": "apps",
                         "labels": {"app.kubernetes.io/managed-by": "someone-else"}}
        }))
        .expect("metadata");
        assert_eq!(
            serde_json::to_value(KeptSecret::keep(bare).metadata()).expect("encodes"),
            serde_json::json!({"name": "other", "namespace": "apps"})
        );
    }

    #[test]
    fn a_kept_secret_is_found_in_its_store_by_namespace_and_name() {
        use kube::runtime::reflector;
        let at = |version: &str| {
            let meta: SecretMeta = serde_json::from_value(serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "out", "namespace": "apps", "resourceVersion": version}
            }))
            .expect("metadata");
            KeptSecret::keep(meta)
        };
        let (store, mut writer) = reflector::store::<KeptSecret>();
        writer.apply_watcher_event(&Event::Apply(at("1")));
        writer.apply_watcher_event(&Event::Apply(at("2")));
        // One entry per name, holding the later version.
        assert_eq!(store.state().len(), 1);
        let found = store.get(&ObjectRef::new("out").within("apps"));
        assert_eq!(
            found.as_deref().and_then(KeptSecret::seen_version),
            Some("2")
        );
        assert!(store.get(&ObjectRef::new("out").within("other")).is_none());
        writer.apply_watcher_event(&Event::Delete(at("3")));
        assert!(store.state().is_empty());
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
