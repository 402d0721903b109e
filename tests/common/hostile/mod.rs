//! Helpers of the hostile-input tests: raw Secrets and connections, the outcome each hostile
//! connection must reach, and the hostile servers that stand where TrackVia should be.

pub mod cases;
pub mod server_cases;
pub mod servers;

// Each test binary uses only some of these.
#[allow(unused_imports)]
pub use self::{cases::hostile_cases, server_cases::*, servers::*};

use crate::common::{Harness, condition_parts};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;

/// Create a Secret with raw data.
pub async fn raw_secret(api: &Api<Secret>, name: &str, data: &[(&str, Vec<u8>)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.clone())))
                .collect(),
        ),
        ..Default::default()
    };
    api.create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("creating Secret {name}: {e}"));
}

/// Wait until the operator has processed the current generation of `name`.
pub async fn wait_observed(h: &Harness, name: &str) -> TrackViaConnection {
    h.wait_connection(
        name,
        "the operator to process the current generation",
        |t| {
            t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
                && condition_parts(t, "Ready").is_some()
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Hostile connections and source Secrets.
// ---------------------------------------------------------------------------------------------

/// What must happen to a hostile connection.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// The API server refuses it with a message naming this field.
    Refused(&'static str),
    /// Ready=False with this reason, the message containing this text.
    NotReady(&'static str, &'static str),
}

pub struct Case {
    pub what: &'static str,
    pub spec: Value,
    pub expect: Expect,
    /// Sent with a plain create (as `kubectl create` does) instead of server-side apply.
    pub create: bool,
}

pub fn case(what: &'static str, spec: Value, expect: Expect) -> Case {
    Case {
        what,
        spec,
        expect,
        create: false,
    }
}

/// Like `case`, sent with a plain create.
pub fn created(what: &'static str, spec: Value, expect: Expect) -> Case {
    Case {
        create: true,
        ..case(what, spec, expect)
    }
}

/// Create a connection with exactly this spec (no server-side apply).
pub async fn create_spec(
    h: &Harness,
    name: &str,
    spec: Value,
) -> Result<TrackViaConnection, kube::Error> {
    let tvc: TrackViaConnection = serde_json::from_value(json!({
        "apiVersion": "trackvia.io/v1alpha1", "kind": "TrackViaConnection",
        "metadata": {"name": name}, "spec": {"credentialsSecretRef": {"name": "-"}},
    }))
    .expect("a connection literal");
    let mut raw = serde_json::to_value(&tvc).expect("serializable");
    raw["spec"] = spec;
    let raw: DynamicObject = serde_json::from_value(raw).expect("an object");
    let api: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        h.ns.name(),
        &ApiResource::erase::<TrackViaConnection>(&()),
    );
    api.create(&PostParams::default(), &raw).await?;
    h.connections().get(name).await
}
