//! The mocked API server of the test bed: objects by path, GET, create, apply
//! and merge patch answered as the API server would, every call recorded.

use std::collections::HashMap;

use http::Method;
use serde_json::{Value, json};

use super::secret_path;
use crate::controller::FIELD_MANAGER;

/// One request a pass sent.
#[derive(Clone, Debug)]
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The JSON body (`null` when there is none).
    pub body: Value,
    /// The status code of the answer.
    pub code: u16,
}

/// The mocked API server: objects by path, and the calls received.
#[derive(Debug, Default)]
pub(super) struct Server {
    pub(super) objects: HashMap<String, Value>,
    pub(super) calls: Vec<Call>,
    pub(super) events: Vec<String>,
    pub(super) version: u64,
}

impl Server {
    pub(super) fn bump(&mut self, object: &mut Value) {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
    }

    /// The answer to one call: (HTTP status, body).
    pub(super) fn answer(&mut self, call: &Call) -> (u16, Value) {
        let status_of = call.path.strip_suffix("/status");
        match (&call.method, status_of) {
            (&Method::GET, _) => match self.objects.get(&call.path) {
                Some(found) => (200, found.clone()),
                None => not_found(),
            },
            (&Method::PATCH, Some(owner)) => {
                let Some(mut object) = self.objects.get(owner).cloned() else {
                    return not_found();
                };
                object["status"] = call.body["status"].clone();
                self.bump(&mut object);
                self.objects.insert(owner.to_string(), object.clone());
                (200, object)
            }
            (&Method::PATCH, None) if call.body.get("apiVersion").is_some() => {
                // A server-side apply by the operator: the body becomes the
                // object, its data keys owned by the operator's field manager.
                let mut object = call.body.clone();
                object["metadata"]["namespace"] = json!("ns");
                object["metadata"]["managedFields"] = applied_fields(&call.body);
                self.bump(&mut object);
                self.objects.insert(call.path.clone(), object.clone());
                (200, object)
            }
            (&Method::PATCH, None) => self.merge(call),
            (&Method::POST, _) if call.path.starts_with(&secret_path("")) => self.create(call),
            (&Method::POST, _) => {
                let reason = call.body["reason"].as_str().unwrap_or_default();
                self.events.push(reason.to_string());
                (201, call.body.clone())
            }
            _ => not_found(),
        }
    }

    /// A create, refused (409 AlreadyExists) when the path holds an object. The
    /// fields it sets are recorded as the API server does: an `Update` by the
    /// operator's field manager.
    fn create(&mut self, call: &Call) -> (u16, Value) {
        if self.objects.contains_key(&call.path) {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "code": 409, "reason": "AlreadyExists", "message": "already exists"});
            return (409, status);
        }
        let mut object = call.body.clone();
        object["metadata"]["namespace"] = json!("ns");
        let mut fields = applied_fields(&call.body);
        fields[0]["operation"] = json!("Update");
        object["metadata"]["managedFields"] = fields;
        self.bump(&mut object);
        self.objects.insert(call.path.clone(), object.clone());
        (201, object)
    }

    /// A JSON merge patch, refused (409) when it names another resourceVersion.
    fn merge(&mut self, call: &Call) -> (u16, Value) {
        let Some(mut object) = self.objects.get(&call.path).cloned() else {
            return not_found();
        };
        let wanted = &call.body["metadata"]["resourceVersion"];
        if !wanted.is_null() && *wanted != object["metadata"]["resourceVersion"] {
            return (
                409,
                json!({"kind": "Status", "code": 409, "message": "conflict"}),
            );
        }
        merge_patch(&mut object, &call.body);
        self.bump(&mut object);
        self.objects.insert(call.path.clone(), object.clone());
        (200, object)
    }
}

pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The managed fields of an apply by the operator: its data keys.
fn applied_fields(body: &Value) -> Value {
    let keys: serde_json::Map<String, Value> = body["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| (format!("f:{k}"), json!({})))
        .collect();
    json!([{"manager": FIELD_MANAGER, "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": keys}}])
}

fn not_found() -> (u16, Value) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": 404, "reason": "NotFound", "message": "not found"});
    (404, status)
}
