//! Connections and their source Secrets, made by an administrator in one namespace.

use std::time::{Duration, Instant};

use crate::common::SETTLE;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::fake::FakeTrackVia;
use trackvia_testsupport::fixtures::apply_connection;
use trackvia_testsupport::kube::wait_for;

use super::*;

/// A namespace with TrackViaConnections and their Secrets, written as the administrator.
pub struct Place {
    pub client: Client,
    pub ns: String,
    pub host: String,
}

impl Place {
    pub fn new(bed: &Bed, ns: &str, fake: &FakeTrackVia) -> Place {
        Place {
            client: bed.client.clone(),
            ns: ns.to_string(),
            host: fake.host(),
        }
    }

    pub fn connections(&self) -> Api<TrackViaConnection> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates or updates the source Secret `name`.
    pub async fn put_source(&self, name: &str, key: &str, token: &str) {
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "data": {"apiKey": crate::common::base64(key), "authToken": crate::common::base64(token)},
        });
        self.secrets()
            .patch(
                name,
                &PatchParams::apply("chart-rbac-tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap_or_else(|e| panic!("writing Secret {}/{name}: {e}", self.ns));
    }

    /// Applies connection `name` reading Secret `source`, with `extra` merged into the spec.
    pub async fn apply(&self, name: &str, source: &str, extra: Value) {
        let mut spec = json!({
            "host": self.host,
            "credentialsSecretRef": {"name": source},
            "tokenExpiresOn": "2099-01-31",
        });
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
        apply_connection(&self.connections(), "chart-rbac-tests", name, spec)
            .await
            .unwrap_or_else(|e| panic!("applying TrackViaConnection {}/{name}: {e}", self.ns));
    }

    /// Waits until Ready is `status` for `reason`.
    pub async fn wait_ready(&self, name: &str, status: &str, reason: &str) -> TrackViaConnection {
        let what = format!("{}/{name} Ready={status} ({reason})", self.ns);
        wait_for(
            &self.connections(),
            name,
            SETTLE,
            &what,
            |t: &TrackViaConnection| {
                t.status
                    .as_ref()
                    .and_then(|s| s.condition("Ready"))
                    .is_some_and(|c| c.status == status && c.reason == reason)
            },
        )
        .await
    }

    pub async fn connection(&self, name: &str) -> TrackViaConnection {
        self.connections()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading {}/{name}: {e}", self.ns))
    }

    pub async fn version_of_connection(&self, name: &str) -> String {
        self.connection(name)
            .await
            .metadata
            .resource_version
            .expect("a resourceVersion")
    }

    pub async fn version_of_secret(&self, name: &str) -> String {
        self.secrets()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading Secret {}/{name}: {e}", self.ns))
            .metadata
            .resource_version
            .expect("a resourceVersion")
    }

    /// The resourceVersions of connection `name` and of its output Secret.
    pub async fn versions(&self, name: &str) -> (String, String) {
        (
            self.version_of_connection(name).await,
            self.version_of_secret(name).await,
        )
    }

    /// The operator's events (events.k8s.io) in this namespace.
    pub async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing events in {}: {e}", self.ns))
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some(REPORTER))
            .collect()
    }

    /// Reasons of the operator's events about `name`.
    pub async fn events_of(&self, name: &str) -> Vec<String> {
        self.events()
            .await
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| e.reason.clone().unwrap_or_default())
            .collect()
    }

    /// Waits for an event of the operator about `name` with `reason` and `type_`.
    pub async fn wait_event(&self, name: &str, reason: &str, type_: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.events().await;
            if let Some(e) = events.iter().find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some(type_)
            }) {
                return e.clone();
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = events
                    .iter()
                    .map(|e| {
                        format!(
                            "{:?} {:?} {:?}",
                            e.regarding.as_ref().and_then(|r| r.name.clone()),
                            e.reason,
                            e.type_
                        )
                    })
                    .collect();
                panic!(
                    "no {type_} event {reason} about {}/{name} from {REPORTER}; seen: {seen:?}",
                    self.ns
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
