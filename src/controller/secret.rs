//! Pure decisions about the output Secret: its desired content, the content
//! hash, whether an existing Secret is ours, and whether it needs writing.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::Sha256;

use crate::crd::{
    CONNECTION_ANNOTATION, DeletionPolicy, HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGER_NAME,
    TrackViaConnection,
};
use crate::trackvia::Credentials;

pub use super::credentials::{CredentialsError, credentials_from_data};

/// The Secret the connection should publish. `Debug` of the result must never
/// be printed: it holds the credentials. A change to the data rendered here
/// (or to [`content_hash`]) needs `published::RULES` bumped.
pub fn desired_secret(tvc: &TrackViaConnection, host: &str, creds: &Credentials) -> Secret {
    let keys = &tvc.spec.target.keys;
    let mut data: BTreeMap<String, ByteString> = BTreeMap::new();
    data.insert(
        keys.api_key.to_string(),
        ByteString(creds.api_key.clone().into_bytes()),
    );
    data.insert(
        keys.auth_token.to_string(),
        ByteString(creds.auth_token.clone().into_bytes()),
    );
    data.insert(keys.host.to_string(), ByteString(host.as_bytes().to_vec()));
    data.insert(
        keys.base_url.to_string(),
        ByteString(format!("https://{host}").into_bytes()),
    );
    if let Some(id) = tvc.spec.account_id {
        data.insert(
            keys.account_id.to_string(),
            ByteString(id.to_string().into_bytes()),
        );
    }
    let hash = content_hash(&data, tvc.uid().as_deref().unwrap_or_default().as_bytes());
    Secret {
        data: Some(data),
        ..rendered_without_values(tvc, hash)
    }
}

/// The Secret the connection publishes, but for its values: they are in it
/// only through `hash`, their keyed content hash (an annotation).
pub fn rendered_without_values(tvc: &TrackViaConnection, hash: String) -> Secret {
    let mut labels = tvc.spec.target.labels.clone();
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER_NAME.to_string());
    let mut annotations = tvc.spec.target.annotations.clone();
    annotations.insert(CONNECTION_ANNOTATION.to_string(), tvc.name_any());
    annotations.insert(HASH_ANNOTATION.to_string(), hash);

    let owner_references = match tvc.spec.target.deletion_policy {
        DeletionPolicy::Delete => tvc.controller_owner_ref(&()).map(|o| vec![o]),
        DeletionPolicy::Retain => None,
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(tvc.target_name()),
            namespace: tvc.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}

/// Keyed hash of a Secret's data: 16 hex digits of HMAC-SHA256 over the sorted
/// keys and values. It changes exactly when a value changes.
pub fn content_hash(data: &BTreeMap<String, ByteString>, key: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for (k, v) in data {
        mac.update(&(k.len() as u64).to_be_bytes());
        mac.update(k.as_bytes());
        mac.update(&(v.0.len() as u64).to_be_bytes());
        mac.update(&v.0);
    }
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// The uid of an owner that never exists: a retired Secret points at it so the
/// garbage collector deletes it.
pub fn retired_owner_uid() -> &'static str {
    "00000000-0000-4000-8000-000000000000"
}

/// The hash annotation of a Secret.
pub fn hash_of(secret: &Secret) -> Option<&str> {
    secret
        .annotations()
        .get(HASH_ANNOTATION)
        .map(String::as_str)
}

/// Who holds an existing Secret at the target name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Written by this operator for this connection.
    Ours,
    /// Written by this operator for another connection.
    OtherConnection(String),
    /// Not written by this operator.
    Foreign,
}

/// Whose is `existing`? Ours when it carries our label and names this
/// connection (or is controlled by it).
pub fn ownership(existing: &ObjectMeta, tvc: &TrackViaConnection) -> Ownership {
    let controlled = existing
        .owner_references
        .iter()
        .flatten()
        .any(|o: &OwnerReference| Some(&o.uid) == tvc.meta().uid.as_ref());
    if controlled {
        return Ownership::Ours;
    }
    let managed = existing
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .map(String::as_str)
        == Some(MANAGER_NAME);
    let named = existing
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONNECTION_ANNOTATION));
    match (managed, named) {
        (true, Some(n)) if *n == tvc.name_any() => {
            // An owner reference to a different connection object of the same name
            // (deleted and recreated) still counts as ours.
            Ownership::Ours
        }
        (true, Some(n)) => Ownership::OtherConnection(n.clone()),
        _ => Ownership::Foreign,
    }
}

/// The data keys the operator's field manager owns in a Secret, from its
/// `managedFields` (empty when they are not given).
pub fn keys_written_by_operator(meta: &ObjectMeta) -> BTreeSet<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(MANAGER_NAME))
        .filter_map(|m| m.fields_v1.as_ref()?.0.get("f:data")?.as_object())
        .flat_map(|data| data.keys())
        .filter_map(|k| k.strip_prefix("f:").map(str::to_string))
        .collect()
}

/// Does `existing` differ from `desired` in anything the operator sets?
/// Extra keys, labels or annotations added by others are left alone; a key
/// the operator wrote and no longer wants is a difference. A change here that
/// the rendering does not show needs `published::RULES` bumped.
pub fn needs_apply(existing: Option<&Secret>, desired: &Secret) -> bool {
    let Some(existing) = existing else {
        return true;
    };
    let empty = BTreeMap::new();
    let have = existing.data.as_ref().unwrap_or(&empty);
    let want = desired.data.as_ref().unwrap_or(&empty);
    if want.iter().any(|(k, v)| have.get(k) != Some(v))
        || keys_written_by_operator(&existing.metadata)
            .iter()
            .any(|k| !want.contains_key(k))
    {
        return true;
    }
    if existing.type_.as_deref().unwrap_or("Opaque") != desired.type_.as_deref().unwrap_or("Opaque")
    {
        return true;
    }
    let subset = |want: &Option<BTreeMap<String, String>>,
                  have: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    if !subset(&desired.metadata.labels, &existing.metadata.labels)
        || !subset(
            &desired.metadata.annotations,
            &existing.metadata.annotations,
        )
    {
        return true;
    }
    let owner_uids = |m: &ObjectMeta| -> Vec<String> {
        m.owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect()
    };
    let want = owner_uids(&desired.metadata);
    let have = owner_uids(&existing.metadata);
    if want.is_empty() {
        // Retain: our owner reference must be gone.
        return !have.is_empty() && desired_owner_missing(existing, desired);
    }
    want != have
}

fn desired_owner_missing(existing: &Secret, _desired: &Secret) -> bool {
    // Under Retain we drop only the owner reference we wrote: the one marked controller.
    existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "TrackViaConnection")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TrackViaConnectionSpec;

    fn tvc(policy: DeletionPolicy) -> TrackViaConnection {
        let spec: TrackViaConnectionSpec = serde_json::from_value(serde_json::json!({
            "host": "acme.trackvia.com",
            "accountId": 42,
            "credentialsSecretRef": {"name": "src"},
            "target": {"name": "out", "labels": {"team": "crm"}, "deletionPolicy": format!("{policy:?}")}
        }))
        .unwrap();
        let mut t = TrackViaConnection::new("crm", spec);
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("uid-1".into());
        t
    }

    fn creds(token: &str) -> Credentials {
        Credentials {
            api_key: "key-1".into(),
            auth_token: token.into(),
        }
    }

    fn text(s: &Secret, k: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap()
    }

    #[test]
    fn desired_secret_is_complete() {
        let s = desired_secret(
            &tvc(DeletionPolicy::Delete),
            "acme.trackvia.com",
            &creds("tok-1"),
        );
        assert_eq!(s.metadata.name.as_deref(), Some("out"));
        assert_eq!(text(&s, "apiKey"), "key-1");
        assert_eq!(text(&s, "authToken"), "tok-1");
        assert_eq!(text(&s, "host"), "acme.trackvia.com");
        assert_eq!(text(&s, "accountId"), "42");
        assert_eq!(text(&s, "baseUrl"), "https://acme.trackvia.com");
        assert!(s.string_data.is_none());
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGER_NAME);
        assert_eq!(labels["team"], "crm");
        let owners = s.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].controller, Some(true));
        assert!(hash_of(&s).is_some());
    }

    #[test]
    fn retain_has_no_owner_reference() {
        let s = desired_secret(
            &tvc(DeletionPolicy::Retain),
            "acme.trackvia.com",
            &creds("tok-1"),
        );
        assert!(s.metadata.owner_references.is_none());
    }

    #[test]
    fn hash_changes_only_with_values() {
        let t = tvc(DeletionPolicy::Delete);
        let a = desired_secret(&t, "acme.trackvia.com", &creds("tok-1"));
        let b = desired_secret(&t, "acme.trackvia.com", &creds("tok-1"));
        let c = desired_secret(&t, "acme.trackvia.com", &creds("tok-2"));
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_ne!(hash_of(&a), hash_of(&c));
        assert!(!hash_of(&a).unwrap().contains("tok"));
    }

    #[test]
    fn needs_apply_detects_drift_but_ignores_foreign_extras() {
        let t = tvc(DeletionPolicy::Delete);
        let desired = desired_secret(&t, "acme.trackvia.com", &creds("tok-1"));
        assert!(needs_apply(None, &desired));
        let mut same = desired.clone();
        same.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "x".into());
        assert!(!needs_apply(Some(&same), &desired));
        let mut edited = desired.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("authToken".into(), ByteString(b"hand-edit".to_vec()));
        assert!(needs_apply(Some(&edited), &desired));
        let mut unlabeled = desired.clone();
        unlabeled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(MANAGED_BY_LABEL);
        assert!(needs_apply(Some(&unlabeled), &desired));
        let mut extra_key = desired.clone();
        extra_key
            .data
            .as_mut()
            .unwrap()
            .insert("theirs".into(), ByteString(b"x".to_vec()));
        assert!(
            !needs_apply(Some(&extra_key), &desired),
            "others' keys stay"
        );
    }

    #[test]
    fn a_key_the_operator_wrote_and_no_longer_wants_is_drift() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let t = tvc(DeletionPolicy::Delete);
        let desired = desired_secret(&t, "acme.trackvia.com", &creds("tok-1"));
        let mut existing = desired.clone();
        existing
            .data
            .as_mut()
            .unwrap()
            .insert("stale".into(), ByteString(b"x".to_vec()));
        let entry = |manager: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:data": {"f:authToken": {}, "f:stale": {}},
                "f:metadata": {"f:labels": {}}
            }))),
            ..ManagedFieldsEntry::default()
        };
        existing.metadata.managed_fields = Some(vec![entry("someone-else")]);
        assert!(keys_written_by_operator(&existing.metadata).is_empty());
        assert!(!needs_apply(Some(&existing), &desired));
        existing.metadata.managed_fields = Some(vec![entry(MANAGER_NAME)]);
        assert_eq!(
            keys_written_by_operator(&existing.metadata),
            BTreeSet::from(["authToken".to_string(), "stale".to_string()])
        );
        assert!(needs_apply(Some(&existing), &desired));
    }

    #[test]
    fn ownership_rules() {
        let t = tvc(DeletionPolicy::Delete);
        let ours = desired_secret(&t, "acme.trackvia.com", &creds("tok-1"));
        assert_eq!(ownership(&ours.metadata, &t), Ownership::Ours);
        let foreign = ObjectMeta {
            name: Some("out".into()),
            ..ObjectMeta::default()
        };
        assert_eq!(ownership(&foreign, &t), Ownership::Foreign);
        let mut other = ours.metadata.clone();
        other.owner_references = None;
        other
            .annotations
            .as_mut()
            .unwrap()
            .insert(CONNECTION_ANNOTATION.into(), "other".into());
        assert_eq!(
            ownership(&other, &t),
            Ownership::OtherConnection("other".into())
        );
    }
}
