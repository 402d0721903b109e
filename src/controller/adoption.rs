//! Never lose data: which Secret the operator may write, which Secrets it
//! adopted rather than created, and what it may do to a Secret it lets go of.
//! The decisions are pure; the writes that let go of a Secret are in
//! [`super::orphans`].
//!
//! The rules:
//! - the output Secret is never the source Secret (`InvalidSpec`);
//! - an adopted Secret never carries an ownerReference, so the garbage
//!   collector never deletes it; letting go of it removes only the fields the
//!   operator's field manager owns (its keys, label and annotations);
//! - `deletionPolicy: Retain` leaves every Secret as it is, in every path;
//! - only a Secret the operator created is garbage-collected whole.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::secret::{self, Ownership};
use crate::crd::{ADOPTED_ANNOTATION, CONNECTION_ANNOTATION, DeletionPolicy, TrackViaConnection};

/// How often Secrets adopted by connections that no longer exist are looked for.
pub const ORPHAN_SCAN_INTERVAL: Duration = Duration::from_secs(3);

/// The connection's output Secret would be its own source Secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "spec.target.name (default: the connection's name) is {0}, the Secret named by spec.credentialsSecretRef; the operator never writes its source Secret: set spec.target.name to another name"
)]
pub struct TargetIsSource(pub String);

/// `Err` when the connection's output Secret is its own source Secret.
pub fn check_target(tvc: &TrackViaConnection) -> Result<(), TargetIsSource> {
    let target = tvc.target_name();
    if target == tvc.spec.credentials_secret_ref.name {
        return Err(TargetIsSource(target));
    }
    Ok(())
}

/// The value of [`ADOPTED_ANNOTATION`] for a policy.
fn policy_text(policy: DeletionPolicy) -> &'static str {
    match policy {
        DeletionPolicy::Delete => "Delete",
        DeletionPolicy::Retain => "Retain",
    }
}

/// Is the Secret at the target name adopted rather than created by the
/// operator? True when it is about to be taken over (not written by the
/// operator), was taken over earlier (it carries [`ADOPTED_ANNOTATION`]), or
/// holds a key the operator did not write (added by hand to a Secret it
/// created, or adopted by an operator version that did not mark adoptions).
pub fn is_adopted(existing: Option<&Secret>, tvc: &TrackViaConnection) -> bool {
    existing.is_some_and(|s| {
        secret::ownership(&s.metadata, tvc) == Ownership::Foreign
            || marked_adopted(&s.metadata)
            || holds_others_keys(s)
    })
}

fn marked_adopted(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ADOPTED_ANNOTATION))
}

/// Does the Secret hold a data key that the operator's field manager does not
/// own? Without `managedFields` every key counts as someone else's.
fn holds_others_keys(s: &Secret) -> bool {
    let ours = secret::keys_written_by_operator(&s.metadata);
    s.data.iter().flatten().any(|(k, _)| !ours.contains(k))
}

/// The desired Secret as it is written over an adopted one: marked as
/// adopted, with the connection's deletion policy, and without an
/// ownerReference whatever the policy, so the garbage collector never
/// deletes it with its other keys. A change here needs `published::RULES`
/// bumped.
pub fn as_adopted(mut desired: Secret, policy: DeletionPolicy) -> Secret {
    desired.metadata.owner_references = None;
    desired
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            ADOPTED_ANNOTATION.to_string(),
            policy_text(policy).to_string(),
        );
    desired
}

/// What happens to the Secret a connection published under its previous
/// `target.name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LetGo {
    /// Left exactly as it is; the text says why.
    Keep(&'static str),
    /// The operator's own fields are removed; the Secret and every other key stay.
    Release,
    /// Created by the operator under `Delete`: emptied and garbage-collected whole.
    Collect,
}

/// The decision for the previous output Secret `existing` after a rename.
pub fn after_rename(existing: &Secret, tvc: &TrackViaConnection) -> LetGo {
    let meta = &existing.metadata;
    if secret::ownership(meta, tvc) != Ownership::Ours {
        return LetGo::Keep("it is not published by this connection");
    }
    if meta.name.as_deref() == Some(tvc.spec.credentials_secret_ref.name.as_str()) {
        return LetGo::Keep("it is now the connection's source Secret");
    }
    if tvc.spec.target.deletion_policy == DeletionPolicy::Retain {
        return LetGo::Keep("deletionPolicy is Retain");
    }
    if marked_adopted(meta) || holds_others_keys(existing) {
        LetGo::Release
    } else {
        LetGo::Collect
    }
}

/// Adopted Secrets whose connection is not in the cache: (namespace, Secret
/// name, connection name). Only those adopted under `deletionPolicy: Delete`.
pub fn orphans<'a>(
    secrets: impl IntoIterator<Item = &'a ObjectMeta>,
    connection_exists: impl Fn(&str, &str) -> bool,
) -> Vec<(String, String, String)> {
    secrets
        .into_iter()
        .filter_map(|meta| {
            let annotations = meta.annotations.as_ref()?;
            if annotations.get(ADOPTED_ANNOTATION).map(String::as_str) != Some("Delete") {
                return None;
            }
            let owner = annotations.get(CONNECTION_ANNOTATION)?;
            let ns = meta.namespace.as_ref()?;
            let name = meta.name.as_ref()?;
            (!connection_exists(ns, owner)).then(|| (ns.clone(), name.clone(), owner.clone()))
        })
        .collect()
}

/// The apply body that lets go of a Secret: applied with the operator's field
/// manager, it removes exactly the fields that manager owns.
pub fn release_body(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name },
    })
}

/// The apply body that empties a Secret the operator created and hands it to
/// the garbage collector: an ownerReference to a connection that never exists.
pub fn collect_body(name: &str, tvc: &TrackViaConnection) -> serde_json::Value {
    use kube::Resource;
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "ownerReferences": [{
                "apiVersion": TrackViaConnection::api_version(&()),
                "kind": TrackViaConnection::kind(&()),
                "name": tvc.name_any(),
                "uid": secret::retired_owner_uid(),
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MANAGED_BY_LABEL, MANAGER_NAME, TrackViaConnectionSpec};
    use crate::trackvia::Credentials;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    fn tvc(name: &str, spec: serde_json::Value) -> TrackViaConnection {
        let spec: TrackViaConnectionSpec = serde_json::from_value(spec).unwrap();
        let mut t = TrackViaConnection::new(name, spec);
        t.metadata.namespace = Some("ns".into());
        t.metadata.uid = Some("uid-1".into());
        t
    }

    fn connection(policy: &str) -> TrackViaConnection {
        tvc(
            "crm",
            serde_json::json!({
                "credentialsSecretRef": {"name": "src"},
                "target": {"name": "out", "deletionPolicy": policy}
            }),
        )
    }

    /// The Secret as the operator wrote it: its data keys owned by its field manager.
    fn published(t: &TrackViaConnection) -> Secret {
        let creds = Credentials {
            api_key: "key-1".into(),
            auth_token: "tok-1".into(),
        };
        let mut s = secret::desired_secret(t, "acme.trackvia.com", &creds);
        let data: serde_json::Map<String, serde_json::Value> = s
            .data
            .iter()
            .flatten()
            .map(|(k, _)| (format!("f:{k}"), serde_json::json!({})))
            .collect();
        s.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(MANAGER_NAME.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({ "f:data": data }))),
            ..ManagedFieldsEntry::default()
        }]);
        s
    }

    /// `s` with a key someone else added.
    fn with_their_key(mut s: Secret) -> Secret {
        s.data
            .get_or_insert_with(Default::default)
            .insert("theirs".into(), k8s_openapi::ByteString(b"x".to_vec()));
        s
    }

    fn foreign(name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn the_target_is_never_the_source() {
        let explicit = tvc(
            "crm",
            serde_json::json!({"credentialsSecretRef": {"name": "src"}, "target": {"name": "src"}}),
        );
        let by_default = tvc(
            "src",
            serde_json::json!({"credentialsSecretRef": {"name": "src"}}),
        );
        for t in [&explicit, &by_default] {
            let err = check_target(t).unwrap_err().to_string();
            assert!(
                err.contains("spec.target.name") && err.contains("src"),
                "{err}"
            );
        }
        assert_eq!(check_target(&connection("Delete")), Ok(()));
        let named_like_source_elsewhere = tvc(
            "src",
            serde_json::json!({"credentialsSecretRef": {"name": "src"}, "target": {"name": "out"}}),
        );
        assert_eq!(check_target(&named_like_source_elsewhere), Ok(()));
    }

    #[test]
    fn adopted_secrets_carry_no_owner_reference_under_any_policy() {
        for (policy, text) in [
            (DeletionPolicy::Delete, "Delete"),
            (DeletionPolicy::Retain, "Retain"),
        ] {
            let t = connection(text);
            let s = as_adopted(published(&t), policy);
            assert!(s.metadata.owner_references.is_none());
            assert_eq!(
                s.metadata.annotations.as_ref().unwrap()[ADOPTED_ANNOTATION],
                text
            );
            assert_eq!(
                s.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
                "trackvia-operator"
            );
        }
    }

    #[test]
    fn adopted_means_found_foreign_marked_earlier_or_holding_others_keys() {
        let t = connection("Delete");
        assert!(!is_adopted(None, &t), "absent: created");
        assert!(
            is_adopted(Some(&foreign("out")), &t),
            "foreign: adopted now"
        );
        let created = published(&t);
        assert!(!is_adopted(Some(&created), &t));
        assert!(
            is_adopted(Some(&with_their_key(created.clone())), &t),
            "a key added by someone else: never collected whole"
        );
        let mut no_fields = created.clone();
        no_fields.metadata.managed_fields = None;
        assert!(
            is_adopted(Some(&no_fields), &t),
            "unknown writers: the safe side"
        );
        let adopted = as_adopted(created, DeletionPolicy::Delete);
        assert!(is_adopted(Some(&adopted), &t), "marked: stays adopted");
    }

    #[test]
    fn a_rename_collects_only_created_secrets_and_never_under_retain() {
        let t = connection("Delete");
        let created = published(&t);
        let adopted = as_adopted(published(&t), DeletionPolicy::Delete);
        assert_eq!(after_rename(&created, &t), LetGo::Collect);
        assert_eq!(after_rename(&adopted, &t), LetGo::Release);
        assert_eq!(
            after_rename(&with_their_key(created.clone()), &t),
            LetGo::Release
        );
        assert!(matches!(after_rename(&foreign("out"), &t), LetGo::Keep(_)));

        let retain = connection("Retain");
        let created = published(&retain);
        let adopted = as_adopted(published(&retain), DeletionPolicy::Retain);
        assert!(matches!(after_rename(&created, &retain), LetGo::Keep(_)));
        assert!(matches!(after_rename(&adopted, &retain), LetGo::Keep(_)));

        // The old output became the source: never emptied.
        let moved = tvc(
            "crm",
            serde_json::json!({"credentialsSecretRef": {"name": "out"}, "target": {"name": "new"}}),
        );
        assert!(matches!(
            after_rename(&published(&t), &moved),
            LetGo::Keep(_)
        ));
    }

    #[test]
    fn orphans_are_adopted_delete_secrets_without_their_connection() {
        let t = connection("Delete");
        let adopted = as_adopted(published(&t), DeletionPolicy::Delete).metadata;
        let retained = as_adopted(published(&t), DeletionPolicy::Retain).metadata;
        let created = published(&t).metadata;
        let all = [adopted, retained, created, foreign("x").metadata];
        let gone = orphans(all.iter(), |_, _| false);
        assert_eq!(gone, vec![("ns".into(), "out".into(), "crm".into())]);
        assert!(orphans(all.iter(), |ns, name| ns == "ns" && name == "crm").is_empty());
    }

    #[test]
    fn the_release_body_names_only_the_secret() {
        let body = release_body("out");
        assert_eq!(body["metadata"], serde_json::json!({"name": "out"}));
        assert!(body.get("data").is_none());
        let collect = collect_body("out", &connection("Delete"));
        let owner = &collect["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], secret::retired_owner_uid());
        assert!(collect.get("data").is_none());
    }
}
