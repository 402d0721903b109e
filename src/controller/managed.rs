//! Field ownership of an output Secret the operator created with a plain
//! create (POST): the API server records its fields under the operator's
//! manager with operation `Update`, which a later server-side apply by the
//! same manager neither removes nor takes over. Before an apply that drops
//! one of those fields (a key, label, annotation or ownerReference) or marks
//! the Secret adopted, and before letting go of the Secret, that entry is
//! merged into the operator's `Apply` entry (see [`upgraded`]), so the apply
//! owns, and may remove, everything the operator wrote.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use serde_json::{Map, Value};

use crate::crd::{ADOPTED_ANNOTATION, MANAGER_NAME};

fn is_ours(entry: &ManagedFieldsEntry, operation: &str) -> bool {
    entry.manager.as_deref() == Some(MANAGER_NAME)
        && entry.operation.as_deref() == Some(operation)
        && entry.subresource.as_deref().unwrap_or_default().is_empty()
}

/// The fields the operator's `Update` entry owns, when there is one.
fn created_fields(meta: &ObjectMeta) -> Option<&Value> {
    meta.managed_fields
        .iter()
        .flatten()
        .find(|e| is_ours(e, "Update"))
        .map(|e| e.fields_v1.as_ref().map_or(&Value::Null, |f| &f.0))
}

/// What a Secret's fields name: `data/K`, `labels/K`, `annotations/K`, `owner/UID`.
fn items_of_fields(fields: &Value) -> BTreeSet<String> {
    let keys = |v: &Value, prefix: &str, what: &str| -> Vec<String> {
        v.as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|k| k.strip_prefix(prefix).map(|k| format!("{what}/{k}")))
            .collect()
    };
    let meta = &fields["f:metadata"];
    let owners = meta["f:ownerReferences"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| serde_json::from_str::<Value>(k.strip_prefix("k:")?).ok())
        .map(|k| format!("owner/{}", k["uid"].as_str().unwrap_or_default()));
    keys(&fields["f:data"], "f:", "data")
        .into_iter()
        .chain(keys(&meta["f:labels"], "f:", "labels"))
        .chain(keys(&meta["f:annotations"], "f:", "annotations"))
        .chain(owners)
        .collect()
}

fn items_of_secret(s: &Secret) -> BTreeSet<String> {
    let named = |what: &str, keys: Vec<&String>| -> Vec<String> {
        keys.into_iter().map(|k| format!("{what}/{k}")).collect()
    };
    let m = &s.metadata;
    named("data", s.data.iter().flatten().map(|(k, _)| k).collect())
        .into_iter()
        .chain(named(
            "labels",
            m.labels.iter().flatten().map(|(k, _)| k).collect(),
        ))
        .chain(named(
            "annotations",
            m.annotations.iter().flatten().map(|(k, _)| k).collect(),
        ))
        .chain(
            m.owner_references
                .iter()
                .flatten()
                .map(|o| format!("owner/{}", o.uid)),
        )
        .collect()
}

/// Must the fields of the create be handed to the apply before `desired` is
/// applied over `existing`? When the create's entry owns something `desired`
/// no longer has, or `desired` adopts the Secret (adopted Secrets are let go
/// of by an apply that must own every field the operator wrote).
pub fn must_upgrade_before(existing: &Secret, desired: &Secret) -> bool {
    let Some(created) = created_fields(&existing.metadata) else {
        return false;
    };
    let adopts = desired
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ADOPTED_ANNOTATION));
    adopts || !items_of_fields(created).is_subset(&items_of_secret(desired))
}

/// `b` merged into `a`, object by object.
fn merge(a: &mut Value, b: &Value) {
    if let (Value::Object(a), Value::Object(b)) = (a, b) {
        for (k, v) in b {
            match a.get_mut(k) {
                Some(x) => merge(x, v),
                None => {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// The managed fields with the operator's `Update` entry merged into its
/// `Apply` entry (or turned into one); `None` when there is no `Update` entry.
pub fn upgraded(meta: &ObjectMeta) -> Option<Vec<ManagedFieldsEntry>> {
    let entries = meta.managed_fields.as_ref()?;
    let created = entries.iter().find(|e| is_ours(e, "Update"))?;
    let mut out: Vec<ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| !is_ours(e, "Update"))
        .cloned()
        .collect();
    let fields = created
        .fields_v1
        .as_ref()
        .map_or(Value::Null, |f| f.0.clone());
    match out.iter_mut().find(|e| is_ours(e, "Apply")) {
        Some(applied) => {
            let mut merged = applied
                .fields_v1
                .as_ref()
                .map_or(Value::Object(Map::new()), |f| f.0.clone());
            merge(&mut merged, &fields);
            applied.fields_v1 = Some(FieldsV1(merged));
        }
        None => out.push(ManagedFieldsEntry {
            operation: Some("Apply".into()),
            ..created.clone()
        }),
    }
    Some(out)
}

/// The merge patch replacing the managed fields with `entries`, only if the
/// Secret is still at `resource_version` (else the API server answers 409).
pub fn upgrade_patch(resource_version: &str, entries: &[ManagedFieldsEntry]) -> Value {
    serde_json::json!({
        "metadata": {"resourceVersion": resource_version, "managedFields": entries},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    /// What the API server records for a Secret the operator created.
    fn created() -> Value {
        json!({
            "f:data": {".": {}, "f:apiKey": {}, "f:accountId": {}},
            "f:metadata": {
                "f:labels": {".": {}, "f:app.kubernetes.io/managed-by": {}},
                "f:ownerReferences": {".": {}, "k:{\"uid\":\"uid-1\"}": {".": {}, "f:uid": {}}}
            },
            "f:type": {}
        })
    }

    fn secret(keys: &[&str], owner: bool, entries: Vec<ManagedFieldsEntry>) -> Secret {
        let mut s = Secret {
            data: Some(
                keys.iter()
                    .map(|k| (k.to_string(), ByteString(b"v".to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        s.metadata.labels = Some([(crate::crd::MANAGED_BY_LABEL.to_string(), "x".into())].into());
        if owner {
            s.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    uid: "uid-1".into(),
                    ..Default::default()
                },
            ]);
        }
        s.metadata.resource_version = Some("7".into());
        s.metadata.managed_fields = Some(entries);
        s
    }

    #[test]
    fn an_apply_that_keeps_what_the_create_wrote_needs_no_upgrade() {
        let existing = secret(
            &["apiKey", "accountId"],
            true,
            vec![entry(MANAGER_NAME, "Update", created())],
        );
        let same_keys = secret(&["apiKey", "accountId", "more"], true, vec![]);
        assert!(
            !must_upgrade_before(&existing, &same_keys),
            "a value change or an added key"
        );
        let applied_only = secret(
            &["apiKey"],
            true,
            vec![entry(MANAGER_NAME, "Apply", created())],
        );
        assert!(
            !must_upgrade_before(&applied_only, &secret(&[], false, vec![])),
            "no create entry"
        );
    }

    #[test]
    fn dropping_or_adopting_what_the_create_wrote_needs_an_upgrade() {
        let existing = secret(
            &["apiKey", "accountId"],
            true,
            vec![entry(MANAGER_NAME, "Update", created())],
        );
        assert!(
            must_upgrade_before(&existing, &secret(&["apiKey"], true, vec![])),
            "a key dropped"
        );
        assert!(
            must_upgrade_before(&existing, &secret(&["apiKey", "accountId"], false, vec![])),
            "the owner dropped"
        );
        let mut adopted = secret(&["apiKey", "accountId"], true, vec![]);
        adopted.metadata.annotations =
            Some([(ADOPTED_ANNOTATION.to_string(), "Delete".into())].into());
        assert!(must_upgrade_before(&existing, &adopted), "adopted");
        let someone = secret(
            &["apiKey", "accountId"],
            true,
            vec![entry("kubectl", "Update", created())],
        );
        assert!(
            !must_upgrade_before(&someone, &secret(&[], false, vec![])),
            "not the operator's create"
        );
    }

    #[test]
    fn the_upgrade_merges_the_create_into_the_apply_and_keeps_the_others() {
        let theirs = entry("kubectl", "Update", json!({"f:data": {"f:theirs": {}}}));
        let applied = entry(
            MANAGER_NAME,
            "Apply",
            json!({"f:data": {"f:authToken": {}}}),
        );
        let meta = secret(
            &[],
            false,
            vec![
                theirs.clone(),
                entry(MANAGER_NAME, "Update", created()),
                applied,
            ],
        )
        .metadata;
        let up = upgraded(&meta).unwrap();
        assert_eq!(up.len(), 2);
        assert_eq!(up[0], theirs);
        assert_eq!(up[1].operation.as_deref(), Some("Apply"));
        let fields = &up[1].fields_v1.as_ref().unwrap().0;
        assert!(
            fields["f:data"].get("f:authToken").is_some()
                && fields["f:data"].get("f:apiKey").is_some()
        );
        assert!(
            fields["f:metadata"]["f:ownerReferences"]
                .get("k:{\"uid\":\"uid-1\"}")
                .is_some()
        );

        let only_created =
            secret(&[], false, vec![entry(MANAGER_NAME, "Update", created())]).metadata;
        let up = upgraded(&only_created).unwrap();
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].operation.as_deref(), Some("Apply"));
        assert_eq!(up[0].fields_v1.as_ref().unwrap().0, created());
        assert!(upgraded(&secret(&[], false, vec![theirs]).metadata).is_none());
    }

    #[test]
    fn the_upgrade_is_conditional_on_the_version_read() {
        let meta = secret(&[], false, vec![entry(MANAGER_NAME, "Update", created())]).metadata;
        let body = upgrade_patch("7", &upgraded(&meta).unwrap());
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["metadata"]["managedFields"][0]["operation"], "Apply");
    }
}
