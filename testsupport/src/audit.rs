//! The write requests in the test bed's API server audit log (`hack/testbed` logs every
//! create, update, patch and delete at metadata level in `DIR/logs/audit.log`).

use std::path::Path;

use serde_json::Value;

/// One write request of the audit log.
#[derive(Clone, Debug)]
pub struct AuditedWrite {
    /// The client's user agent; the operator's names its process:
    /// `trackvia-operator/<version> (<instance>-<pid>)`.
    pub user_agent: String,
    /// `create`, `update`, `patch`, ...
    pub verb: String,
    /// The resource (`secrets`, `trackviaconnections`, ...).
    pub resource: String,
    /// The object's namespace, empty for cluster objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The answer's status code.
    pub code: i64,
    /// When the API server received it.
    pub received: jiff::Timestamp,
}

impl AuditedWrite {
    /// Written by the operator process `pid`?
    pub fn by_operator_pid(&self, pid: u32) -> bool {
        self.user_agent.starts_with("trackvia-operator/")
            && self.user_agent.ends_with(&format!("-{pid})"))
    }
}

/// Every write in the audit log of the bed in `bed_dir`; panics when there is no log.
pub fn audited_writes(bed_dir: &Path) -> Vec<AuditedWrite> {
    let path = bed_dir.join("logs/audit.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading the API server's audit log {}: {e} (start the bed with this hack/testbed)",
            path.display()
        )
    });
    let text_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| AuditedWrite {
            user_agent: text_of(&e["userAgent"]),
            verb: text_of(&e["verb"]),
            resource: text_of(&e["objectRef"]["resource"]),
            namespace: text_of(&e["objectRef"]["namespace"]),
            name: text_of(&e["objectRef"]["name"]),
            code: e["responseStatus"]["code"].as_i64().unwrap_or(0),
            received: e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
        })
        .collect()
}
