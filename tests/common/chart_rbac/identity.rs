//! The chart's ServiceAccount as a client: a token from the TokenRequest API, and what it may
//! and may not do.

use std::path::PathBuf;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;

use super::*;

/// A ServiceAccount's token, in a kubeconfig of its own and as a client.
pub struct Identity {
    pub username: String,
    pub kubeconfig: PathBuf,
    pub client: Client,
}

/// One expected answer of `kubectl auth can-i`: verb, resource (`resource[.group][/sub]`,
/// optionally `=name`), namespace (empty: all namespaces), allowed.
pub type Access<'a> = (&'a str, &'a str, &'a str, bool);

impl Identity {
    /// A token for ServiceAccount `namespace/name` from the TokenRequest API, written into a
    /// kubeconfig with the administrator's server and CA. Checks with a TokenReview that the
    /// API server takes it for that ServiceAccount.
    pub async fn service_account(
        bed: &Bed,
        namespace: &str,
        name: &str,
        scratch: &Scratch,
    ) -> Identity {
        let request: TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": [], "expirationSeconds": 3600},
        }))
        .expect("a TokenRequest");
        let token = Api::<ServiceAccount>::namespaced(bed.client.clone(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("requesting a token for {namespace}/{name}: {e}"))
            .status
            .expect("the TokenRequest has a status")
            .token;

        let username = format!("system:serviceaccount:{namespace}:{name}");
        let review: TokenReview = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }))
        .expect("a TokenReview");
        let reviewed = Api::<TokenReview>::all(bed.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap_or_else(|e| panic!("reviewing the token: {e}"))
            .status
            .expect("the TokenReview has a status");
        assert_eq!(reviewed.authenticated, Some(true), "{reviewed:?}");
        assert_eq!(
            reviewed.user.and_then(|u| u.username).as_deref(),
            Some(username.as_str())
        );

        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "bed", "cluster": bed.cluster()}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "bed", "user": name, "namespace": namespace}}],
            "current-context": name,
        });
        let path = scratch.file(
            &format!("kubeconfig-{name}.json"),
            kubeconfig.to_string().as_bytes(),
        );
        let parsed = Kubeconfig::read_from(&path)
            .unwrap_or_else(|e| panic!("reading back {}: {e}", path.display()));
        Identity {
            username,
            kubeconfig: path,
            client: client_for(parsed).await,
        }
    }

    /// What `kubectl auth can-i` asks: a SelfSubjectAccessReview, made with this identity.
    pub async fn can_i(&self, verb: &str, what: &str, namespace: &str) -> bool {
        let (what, name) = match what.split_once('=') {
            Some((w, n)) => (w, Some(n)),
            None => (what, None),
        };
        let (resource, subresource) = match what.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (what, None),
        };
        let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
        let review: SelfSubjectAccessReview = serde_json::from_value(json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": subresource,
                "name": name,
                "namespace": namespace,
            }},
        }))
        .expect("a SelfSubjectAccessReview");
        Api::<SelfSubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap_or_else(|e| panic!("asking whether {} can {verb} {what}: {e}", self.username))
            .status
            .is_some_and(|s| s.allowed)
    }

    /// Asks every question of `table`; panics listing each wrong answer.
    pub async fn assert_access(&self, table: &[Access<'_>]) {
        let mut wrong = Vec::new();
        for &(verb, what, namespace, expected) in table {
            let got = self.can_i(verb, what, namespace).await;
            if got != expected {
                let scope = if namespace.is_empty() {
                    "--all-namespaces".to_string()
                } else {
                    format!("-n {namespace}")
                };
                wrong.push(format!(
                    "  can-i {verb} {what} {scope}: expected {}, got {}",
                    yes_no(expected),
                    yes_no(got)
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} has the wrong permissions:\n{}",
            self.username,
            wrong.join("\n")
        );
    }
}

pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Asserts that `result` is the API server's 403.
pub fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}
