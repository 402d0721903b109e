//! The `status` command: TrackViaConnections as a table, one of them in detail, or
//! JSON for scripts, with the workloads that consume each output Secret and the
//! recent events of a connection.
//!
//! Building and rendering are pure functions of what was read and of `now`;
//! [`run`] does the reading. Secret contents are never read: what is shown
//! comes from the connections' spec and status, the workloads' pod templates
//! and events, none of which holds a credential.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PodSpec, PodTemplateSpec};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::crd::{Condition, TrackViaConnection, condition};
use crate::kube_helpers::scoped_api as api_for;

pub mod cli;
mod connect;
pub mod encode;
pub mod rotate;
mod safe;
pub mod verify;
use crate::status::{fmt_time, parse_spec, token_expiry_instant};
use encode::{to_json, to_yaml};

/// Name a symlink to the binary must end with to act as `kubectl trackvia`.
pub const PLUGIN_NAME: &str = "kubectl-trackvia";

/// Consumers listed per connection in the table before the rest is counted.
const MAX_CONSUMERS_SHOWN: usize = 3;

/// Events shown in the detailed view (the most recent ones).
const MAX_EVENTS: usize = 20;

/// How the result is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON with stable field names, for scripts.
    Json,
    /// YAML with the same field names as the JSON.
    Yaml,
}

/// What to show.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace; `None` means the kubeconfig context's.
    pub namespace: Option<String>,
    /// Every namespace (ignored with `name`).
    pub all_namespaces: bool,
    /// One connection, in detail.
    pub name: Option<String>,
    /// Output format.
    pub output: OutputFormat,
    /// Kubeconfig context; `None` means the current one.
    pub context: Option<String>,
    /// Kubeconfig file; `None` means kubectl's default.
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// What [`run`] produced: the text for stdout and warnings for stderr.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// For stdout.
    pub output: String,
    /// For stderr (for example workloads that could not be listed).
    pub warnings: Vec<String>,
}

/// The arguments of a `kubectl trackvia ...` invocation as those of
/// `trackvia-operator status ...`: when the program was started through a link
/// named `kubectl-trackvia`, `status` is put in front of the arguments.
pub fn plugin_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if invoked_as_plugin(&args) {
        args.insert(1.min(args.len()), OsString::from("status"));
    }
    args
}

/// Whether the program was started through a link named `kubectl-trackvia`.
pub fn invoked_as_plugin(args: &[OsString]) -> bool {
    args.first().is_some_and(|first| {
        std::path::Path::new(first)
            .file_name()
            .map(|n| n.to_string_lossy().ends_with(PLUGIN_NAME))
            .unwrap_or(false)
    })
}

/// Colour is used only on a terminal, and never when `NO_COLOR` is set.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

// ---------------------------------------------------------------------------------------------
// The model: what is shown, with stable JSON names
// ---------------------------------------------------------------------------------------------

/// A workload in the connection's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// A workload and the Secrets its pod template refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Kind and name.
    pub workload: WorkloadRef,
    /// Names of the Secrets the pod template uses.
    pub secrets: BTreeSet<String>,
}

/// One connection, as in the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready's status (`True`, `False`, `Unknown`); null before the operator's first pass.
    pub ready: Option<String>,
    /// Ready's reason.
    pub reason: Option<String>,
    /// Ready's message.
    pub message: Option<String>,
    /// TrackVia host.
    pub host: String,
    /// Account id sent as `account-id`.
    pub account_id: Option<u64>,
    /// The token's name on TrackVia's API Access page.
    pub token_name: Option<String>,
    /// The API user the token belongs to.
    pub api_user: Option<String>,
    /// The expiry date as written in the spec.
    pub token_expires_on: Option<String>,
    /// The instant the token stops working (RFC 3339).
    pub token_expires_at: Option<String>,
    /// Seconds until expiry at the time of the report; negative once expired.
    pub expires_in_seconds: Option<i64>,
    /// The expiry instant has passed.
    pub expired: bool,
    /// Inside the expiry-warning window, not yet expired.
    pub expiring: bool,
    /// When TrackVia was last asked (RFC 3339).
    pub last_verified_time: Option<String>,
    /// When TrackVia last accepted the credentials (RFC 3339).
    pub last_successful_verification_time: Option<String>,
    /// When the next check is planned (RFC 3339).
    pub next_verification_time: Option<String>,
    /// HTTP status of TrackVia's last answer.
    pub last_http_status: Option<u16>,
    /// Transient failures in a row.
    pub consecutive_failures: u32,
    /// Name of the output Secret.
    pub secret_name: String,
    /// Whether the operator has written the output Secret.
    pub published: bool,
    /// Workloads whose pod templates use the output Secret; null when they could not be listed.
    pub consumers: Option<Vec<WorkloadRef>>,
}

/// The spec, without anything secret (there is nothing secret in it).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecSummary {
    /// Source Secret name.
    pub credentials_secret: String,
    /// Key of the API key in the source Secret.
    pub api_key_key: String,
    /// Key of the auth token in the source Secret.
    pub auth_token_key: String,
    /// Expiry warning window.
    pub expiry_warning: String,
    /// Verification interval.
    pub verify_interval: String,
    /// `Verified` or `Always`.
    pub publish: String,
    /// `Delete` or `Retain`.
    pub deletion_policy: String,
    /// Workloads restarted when the published credentials change.
    pub rollout_restart_targets: Vec<WorkloadRef>,
}

/// A condition as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// Generation it was computed for.
    pub observed_generation: Option<i64>,
}

/// An event as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// How often it happened.
    pub count: i32,
    /// When it last happened (RFC 3339).
    pub last_time: Option<String>,
}

/// One connection in detail.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetail {
    /// Everything of the table row.
    #[serde(flatten)]
    pub summary: ConnectionSummary,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// When `Expiring` turns True (RFC 3339).
    pub expiry_warning_at: Option<String>,
    /// Keyed-HMAC prefix identifying the credentials (not the credentials).
    pub credentials_fingerprint: Option<String>,
    /// The spec.
    pub spec: SpecSummary,
    /// All conditions.
    pub conditions: Vec<ConditionView>,
    /// Recent events, oldest first; null when they could not be listed.
    pub events: Option<Vec<EventView>>,
}

/// The list output of `-o json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionList {
    /// The connections, by namespace and name.
    pub connections: Vec<ConnectionSummary>,
}

// ---------------------------------------------------------------------------------------------
// Pure: building the model
// ---------------------------------------------------------------------------------------------

/// Names of the Secrets a pod spec refers to: `env[].valueFrom.secretKeyRef`,
/// `envFrom[].secretRef`, `volumes[].secret` and projected volume sources, in
/// containers and init containers.
pub fn secrets_in_pod_spec(spec: &PodSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for env in c.env.iter().flatten() {
            if let Some(r) = env
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                names.insert(r.name.clone());
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.secret_ref {
                names.insert(r.name.clone());
            }
        }
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        for env in c.env.iter().flatten() {
            if let Some(r) = env
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                names.insert(r.name.clone());
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.secret_ref {
                names.insert(r.name.clone());
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            names.insert(name);
        }
        let sources = volume
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten();
        for source in sources {
            if let Some(s) = &source.secret {
                names.insert(s.name.clone());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

fn workload(
    kind: &str,
    namespace: Option<String>,
    name: String,
    template: Option<&PodTemplateSpec>,
) -> Workload {
    Workload {
        namespace: namespace.unwrap_or_default(),
        workload: WorkloadRef {
            kind: kind.to_string(),
            name,
        },
        secrets: template
            .and_then(|t| t.spec.as_ref())
            .map(secrets_in_pod_spec)
            .unwrap_or_default(),
    }
}

/// A Deployment as a [`Workload`].
pub fn from_deployment(d: &Deployment) -> Workload {
    workload(
        "Deployment",
        d.namespace(),
        d.name_any(),
        d.spec.as_ref().map(|s| &s.template),
    )
}

/// A StatefulSet as a [`Workload`].
pub fn from_stateful_set(s: &StatefulSet) -> Workload {
    workload(
        "StatefulSet",
        s.namespace(),
        s.name_any(),
        s.spec.as_ref().map(|s| &s.template),
    )
}

/// A DaemonSet as a [`Workload`].
pub fn from_daemon_set(d: &DaemonSet) -> Workload {
    workload(
        "DaemonSet",
        d.namespace(),
        d.name_any(),
        d.spec.as_ref().map(|s| &s.template),
    )
}

/// The workloads in `namespace` that use Secret `secret`, sorted.
pub fn consumers_of(workloads: &[Workload], namespace: &str, secret: &str) -> Vec<WorkloadRef> {
    let mut found: Vec<WorkloadRef> = workloads
        .iter()
        .filter(|w| w.namespace == namespace && w.secrets.contains(secret))
        .map(|w| w.workload.clone())
        .collect();
    found.sort();
    found.dedup();
    found
}

fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|t| t.parse::<Timestamp>().ok())
}

/// The instant the token stops working: from the status, else from the spec's date.
fn expiry_of(tvc: &TrackViaConnection) -> Option<Timestamp> {
    let from_status = tvc
        .status
        .as_ref()
        .and_then(|s| parse_time(s.token_expires_at.as_deref()));
    from_status.or_else(|| {
        tvc.spec
            .token_expires_on
            .as_deref()
            .and_then(|d| token_expiry_instant(d).ok())
    })
}

/// The instant the warning window opens: from the status, else from the spec.
fn warning_of(tvc: &TrackViaConnection) -> Option<Timestamp> {
    let from_status = tvc
        .status
        .as_ref()
        .and_then(|s| parse_time(s.expiry_warning_at.as_deref()));
    from_status.or_else(|| parse_spec(&tvc.spec).ok().and_then(|p| p.expiry_warning_at))
}

/// The table row of a connection. `workloads` is `None` when they could not be listed.
pub fn summarize(
    tvc: &TrackViaConnection,
    workloads: Option<&[Workload]>,
    now: Timestamp,
) -> ConnectionSummary {
    let namespace = tvc.namespace().unwrap_or_default();
    let status = tvc.status.clone().unwrap_or_default();
    let ready = status.condition(condition::READY);
    let secret_name = status
        .secret_name
        .clone()
        .unwrap_or_else(|| tvc.target_name());
    let expires_at = expiry_of(tvc);
    let expires_in = expires_at.map(|at| at.as_second() - now.as_second());
    let expired = expires_in.is_some_and(|s| s <= 0);
    let expiring = !expired && warning_of(tvc).is_some_and(|w| w <= now);
    ConnectionSummary {
        consumers: workloads.map(|w| consumers_of(w, &namespace, &secret_name)),
        namespace,
        name: tvc.name_any(),
        ready: ready.map(|c| c.status.clone()),
        reason: ready.map(|c| c.reason.clone()),
        message: ready.map(|c| c.message.clone()),
        host: tvc.spec.host.clone(),
        account_id: tvc.spec.account_id,
        token_name: tvc.spec.token_name.clone(),
        api_user: tvc.spec.api_user.clone(),
        token_expires_on: tvc.spec.token_expires_on.clone(),
        token_expires_at: expires_at.map(fmt_time),
        expires_in_seconds: expires_in,
        expired,
        expiring,
        last_verified_time: status.last_verified_time.clone(),
        last_successful_verification_time: status.last_successful_verification_time.clone(),
        next_verification_time: status.next_verification_time.clone(),
        last_http_status: status.last_http_status,
        consecutive_failures: status.consecutive_failures,
        published: status.published_hash.is_some(),
        secret_name,
    }
}

fn condition_view(c: &Condition) -> ConditionView {
    ConditionView {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
        observed_generation: c.observed_generation,
    }
}

/// When an event last happened, whichever API wrote it.
fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The events about `tvc` (by kind, name and, when known, uid), oldest first, at most
/// the latest [`MAX_EVENTS`].
pub fn events_for(tvc: &TrackViaConnection, events: &[Event]) -> Vec<EventView> {
    let name = tvc.name_any();
    let uid = tvc.uid();
    let mut about: Vec<&Event> = events
        .iter()
        .filter(|e| {
            let o = &e.involved_object;
            o.kind.as_deref() == Some("TrackViaConnection")
                && o.name.as_deref() == Some(name.as_str())
                && (uid.is_none() || o.uid.is_none() || o.uid == uid)
        })
        .collect();
    about.sort_by_key(|e| event_time(e));
    let skip = about.len().saturating_sub(MAX_EVENTS);
    about
        .into_iter()
        .skip(skip)
        .map(|e| EventView {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1)
                .max(1),
            last_time: event_time(e).map(fmt_time),
        })
        .collect()
}

/// The detailed view of a connection. `events` is `None` when they could not be listed.
pub fn detail(
    tvc: &TrackViaConnection,
    workloads: Option<&[Workload]>,
    events: Option<&[Event]>,
    now: Timestamp,
) -> ConnectionDetail {
    let status = tvc.status.clone().unwrap_or_default();
    let spec = &tvc.spec;
    ConnectionDetail {
        summary: summarize(tvc, workloads, now),
        generation: tvc.metadata.generation,
        observed_generation: status.observed_generation,
        expiry_warning_at: warning_of(tvc).map(fmt_time),
        credentials_fingerprint: status.credentials_fingerprint.clone(),
        spec: SpecSummary {
            credentials_secret: spec.credentials_secret_ref.name.clone(),
            api_key_key: spec.credentials_secret_ref.api_key_key.clone(),
            auth_token_key: spec.credentials_secret_ref.auth_token_key.clone(),
            expiry_warning: spec.expiry_warning.clone(),
            verify_interval: spec.verify_interval.clone(),
            publish: format!("{:?}", spec.publish),
            deletion_policy: format!("{:?}", spec.target.deletion_policy),
            rollout_restart_targets: spec
                .rollout_restart_targets
                .iter()
                .map(|t| WorkloadRef {
                    kind: format!("{:?}", t.kind),
                    name: t.name.clone(),
                })
                .collect(),
        },
        conditions: status.conditions.iter().map(condition_view).collect(),
        events: events.map(|e| events_for(tvc, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Pure: text
// ---------------------------------------------------------------------------------------------

/// A span of whole seconds, in its two largest units: `12d 4h`, `3h 20m`, `3h`, `45m`, `30s`.
pub fn span(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Time left until `at`: `12d 4h`, `expired 2d ago`, or `-` without a date.
pub fn expires_in(at: Option<Timestamp>, now: Timestamp) -> String {
    match at {
        None => "-".into(),
        Some(at) => {
            let left = at.as_second() - now.as_second();
            if left > 0 {
                span(left)
            } else {
                format!("expired {} ago", span(-left))
            }
        }
    }
}

/// `at` relative to `now`: `5m ago`, `in 3h`, or `-`.
pub fn relative(at: Option<&str>, now: Timestamp) -> String {
    match parse_time(at) {
        None => "-".into(),
        Some(at) => {
            let age = now.as_second() - at.as_second();
            if age >= 0 {
                format!("{} ago", span(age))
            } else {
                format!("in {}", span(-age))
            }
        }
    }
}

/// `kind/name` with kubectl's short kind names.
pub fn short_workload(w: &WorkloadRef) -> String {
    let kind = match w.kind.as_str() {
        "Deployment" => "deploy",
        "StatefulSet" => "sts",
        "DaemonSet" => "ds",
        other => other,
    };
    format!("{kind}/{}", w.name)
}

fn consumers_cell(consumers: Option<&[WorkloadRef]>) -> String {
    match consumers {
        None => "?".into(),
        Some([]) => "-".into(),
        Some(list) => {
            let mut shown: Vec<String> = list
                .iter()
                .take(MAX_CONSUMERS_SHOWN)
                .map(short_workload)
                .collect();
            if list.len() > MAX_CONSUMERS_SHOWN {
                shown.push(format!("+{} more", list.len() - MAX_CONSUMERS_SHOWN));
            }
            shown.join(", ")
        }
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// A table cell: its text and, when colouring, its style.
struct Cell {
    text: String,
    style: Option<&'static str>,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Cell {
        Cell::styled(text, None)
    }
    fn styled(text: impl Into<String>, style: Option<&'static str>) -> Cell {
        Cell {
            text: safe::for_terminal(&text.into()).into_owned(),
            style,
        }
    }
}

/// Columns separated by at least two spaces, the last one not padded. Widths count
/// characters of the text, so colour codes never disturb the alignment.
fn columns(rows: &[Vec<Cell>], color: bool, indent: &str) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; count];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (i, cell) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            match cell.style.filter(|_| color) {
                Some(style) => {
                    let _ = write!(line, "{style}{}{RESET}", cell.text);
                }
                None => line.push_str(&cell.text),
            }
            if !last {
                let pad = widths[i] - cell.text.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ready_style(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("True") => Some(GREEN),
        Some("False") => Some(RED),
        _ => Some(YELLOW),
    }
}

fn expiry_style(row: &ConnectionSummary) -> Option<&'static str> {
    if row.expired {
        Some(RED)
    } else if row.expiring {
        Some(YELLOW)
    } else {
        None
    }
}

/// The table of connections; `show_namespace` adds the NAMESPACE column (`-A`).
pub fn render_table(
    rows: &[ConnectionSummary],
    show_namespace: bool,
    now: Timestamp,
    color: bool,
) -> String {
    let mut header: Vec<&str> = Vec::new();
    if show_namespace {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "READY",
        "REASON",
        "HOST",
        "EXPIRES IN",
        "LAST VERIFIED",
        "SECRET",
        "CONSUMERS",
    ]);
    let mut table: Vec<Vec<Cell>> = vec![
        header
            .iter()
            .map(|h| Cell::styled(*h, Some(BOLD)))
            .collect(),
    ];
    for row in rows {
        let mut cells = Vec::new();
        if show_namespace {
            cells.push(Cell::plain(row.namespace.clone()));
        }
        let ready = row.ready.as_deref();
        cells.extend([
            Cell::plain(row.name.clone()),
            Cell::styled(ready.unwrap_or("-"), ready_style(ready)),
            Cell::styled(row.reason.as_deref().unwrap_or("-"), ready_style(ready)),
            Cell::plain(row.host.clone()),
            Cell::styled(
                expires_in(parse_time(row.token_expires_at.as_deref()), now),
                expiry_style(row),
            ),
            Cell::plain(relative(row.last_verified_time.as_deref(), now)),
            Cell::plain(if row.published {
                row.secret_name.as_str()
            } else {
                "-"
            }),
            Cell::plain(consumers_cell(row.consumers.as_deref())),
        ]);
        table.push(cells);
    }
    columns(&table, color, "")
}

fn or_dash(value: Option<&str>) -> String {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| "-".into())
}

fn instant_with_relative(at: Option<&str>, now: Timestamp) -> String {
    match at {
        None => "-".into(),
        Some(t) => format!("{t} ({})", relative(Some(t), now)),
    }
}

/// The detailed view of one connection.
pub fn render_detail(d: &ConnectionDetail, now: Timestamp, color: bool) -> String {
    let s = &d.summary;
    let paint = |text: String, style: Option<&'static str>| {
        let text = safe::for_terminal(&text).into_owned();
        match style.filter(|_| color) {
            Some(style) => format!("{style}{text}{RESET}"),
            None => text,
        }
    };
    // Every value is escaped; the two painted ones were escaped before painting.
    let painted = ["Ready", "Token expires"];
    let ready = match (&s.ready, &s.reason) {
        (Some(status), Some(reason)) => paint(
            format!("{status} ({reason})"),
            ready_style(Some(status.as_str())),
        ),
        _ => paint("- (not reconciled yet)".into(), Some(YELLOW)),
    };
    let expires = match &s.token_expires_at {
        None => "- (no tokenExpiresOn)".to_string(),
        Some(at) => {
            let left = expires_in(parse_time(Some(at.as_str())), now);
            let left = if s.expired {
                left
            } else {
                format!("in {left}")
            };
            paint(format!("{at} ({left})"), expiry_style(s))
        }
    };
    let restart_targets = if d.spec.rollout_restart_targets.is_empty() {
        "-".to_string()
    } else {
        d.spec
            .rollout_restart_targets
            .iter()
            .map(short_workload)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let consumers = match &s.consumers {
        None => "? (workloads could not be listed)".to_string(),
        Some(list) if list.is_empty() => "-".to_string(),
        Some(list) => list
            .iter()
            .map(short_workload)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let fields: Vec<(&str, String)> = vec![
        ("Name", s.name.clone()),
        ("Namespace", s.namespace.clone()),
        ("Ready", ready),
        ("Message", or_dash(s.message.as_deref())),
        ("Host", s.host.clone()),
        (
            "Account ID",
            s.account_id
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "Credentials",
            format!(
                "Secret {} (keys {}, {})",
                d.spec.credentials_secret, d.spec.api_key_key, d.spec.auth_token_key
            ),
        ),
        ("Token name", or_dash(s.token_name.as_deref())),
        ("API user", or_dash(s.api_user.as_deref())),
        ("Token expires", expires),
        (
            "Expiry warning",
            match &d.expiry_warning_at {
                None => "-".into(),
                Some(at) => format!("{at} (window {})", d.spec.expiry_warning),
            },
        ),
        (
            "Verify interval",
            if d.spec.verify_interval == "0" {
                "0 (periodic checks off)".into()
            } else {
                d.spec.verify_interval.clone()
            },
        ),
        ("Publish", d.spec.publish.clone()),
        (
            "Output Secret",
            format!(
                "{}{} (deletion policy {})",
                s.secret_name,
                if s.published { "" } else { ", not written" },
                d.spec.deletion_policy
            ),
        ),
        ("Consumers", consumers),
        ("Restart targets", restart_targets),
    ];
    let mut out = String::new();
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    for (key, value) in &fields {
        let value = if painted.contains(key) {
            Cow::Borrowed(value.as_str())
        } else {
            safe::for_terminal(value)
        };
        let _ = writeln!(out, "{:<width$}{value}", format!("{key}:"));
    }

    out.push_str("\nStatus:\n");
    let generation = match (d.observed_generation, d.generation) {
        (Some(o), Some(g)) => format!("{o} (generation {g})"),
        (Some(o), None) => o.to_string(),
        (None, _) => "-".into(),
    };
    let status_fields: Vec<(&str, String)> = vec![
        ("Observed generation", generation),
        (
            "Last verified",
            instant_with_relative(s.last_verified_time.as_deref(), now),
        ),
        (
            "Last success",
            instant_with_relative(s.last_successful_verification_time.as_deref(), now),
        ),
        (
            "Next verification",
            instant_with_relative(s.next_verification_time.as_deref(), now),
        ),
        (
            "Last HTTP status",
            s.last_http_status
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        ("Consecutive failures", s.consecutive_failures.to_string()),
        (
            "Credentials fingerprint",
            or_dash(d.credentials_fingerprint.as_deref()),
        ),
    ];
    let width = status_fields
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        + 2;
    for (key, value) in &status_fields {
        let value = safe::for_terminal(value);
        let _ = writeln!(out, "  {:<width$}{value}", format!("{key}:"));
    }

    out.push_str("\nConditions:\n");
    if d.conditions.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut rows = vec![
            ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]
                .iter()
                .map(|h| Cell::styled(*h, Some(BOLD)))
                .collect::<Vec<_>>(),
        ];
        for c in &d.conditions {
            let style = if c.type_ == condition::EXPIRING {
                (c.status == "True").then_some(YELLOW)
            } else {
                ready_style(Some(c.status.as_str()))
            };
            rows.push(vec![
                Cell::plain(c.type_.clone()),
                Cell::styled(c.status.clone(), style),
                Cell::plain(c.reason.clone()),
                Cell::plain(relative(Some(c.last_transition_time.as_str()), now)),
                Cell::plain(c.message.clone()),
            ]);
        }
        out.push_str(&columns(&rows, color, "  "));
    }

    out.push_str("\nEvents:\n");
    match &d.events {
        None => out.push_str("  ? (events could not be listed)\n"),
        Some(events) if events.is_empty() => out.push_str("  <none>\n"),
        Some(events) => {
            let mut rows = vec![
                ["TYPE", "REASON", "LAST SEEN", "COUNT", "MESSAGE"]
                    .iter()
                    .map(|h| Cell::styled(*h, Some(BOLD)))
                    .collect::<Vec<_>>(),
            ];
            for e in events {
                let style = (e.type_ == "Warning").then_some(YELLOW);
                rows.push(vec![
                    Cell::styled(e.type_.clone(), style),
                    Cell::plain(e.reason.clone()),
                    Cell::plain(relative(e.last_time.as_deref(), now)),
                    Cell::plain(e.count.to_string()),
                    Cell::plain(e.message.clone()),
                ]);
            }
            out.push_str(&columns(&rows, color, "  "));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// IO
// ---------------------------------------------------------------------------------------------

fn describe_list_error(what: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!("not allowed to list {what}"),
        kube::Error::Api(s) if s.code == 404 => format!("{what} are not served by this cluster"),
        other => format!("listing {what}: {other}"),
    }
}

/// Every Deployment, StatefulSet and DaemonSet in scope, with the Secrets they use.
async fn list_workloads(client: &Client, namespace: Option<&str>) -> Result<Vec<Workload>, String> {
    let params = ListParams::default();
    let deployments = api_for::<Deployment>(client, namespace)
        .list(&params)
        .await
        .map_err(|e| describe_list_error("deployments", &e))?;
    let stateful_sets = api_for::<StatefulSet>(client, namespace)
        .list(&params)
        .await
        .map_err(|e| describe_list_error("statefulsets", &e))?;
    let daemon_sets = api_for::<DaemonSet>(client, namespace)
        .list(&params)
        .await
        .map_err(|e| describe_list_error("daemonsets", &e))?;
    let mut all: Vec<Workload> = deployments.items.iter().map(from_deployment).collect();
    all.extend(stateful_sets.items.iter().map(from_stateful_set));
    all.extend(daemon_sets.items.iter().map(from_daemon_set));
    Ok(all)
}

async fn list_events(client: &Client, namespace: &str, name: &str) -> Result<Vec<Event>, String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!(
        "involvedObject.kind=TrackViaConnection,involvedObject.name={name}"
    ));
    api.list(&params)
        .await
        .map(|l| l.items)
        .map_err(|e| describe_list_error("events", &e))
}

fn connections_error(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 404 => {
            "TrackViaConnections are not served by this cluster: is the CRD installed? \
             (trackvia-operator crd | kubectl apply -f -)"
                .into()
        }
        kube::Error::Api(s) if s.code == 403 => {
            format!("not allowed to read TrackViaConnections: {}", s.message)
        }
        other => format!("reading TrackViaConnections: {other}"),
    }
}

/// Read what `options` asks for and render it.
/// Collect and render; every text that reaches the terminal is escaped.
pub async fn run(options: Options, color: bool) -> Result<Report, String> {
    match collect(options, color).await {
        Ok(mut report) => {
            for warning in &mut report.warnings {
                *warning = safe::for_terminal(warning).into_owned();
            }
            Ok(report)
        }
        Err(e) => Err(safe::for_terminal(&e).into_owned()),
    }
}

async fn collect(options: Options, color: bool) -> Result<Report, String> {
    let client =
        connect::connect(options.kubeconfig.as_deref(), options.context.as_deref()).await?;
    let namespace = options
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let all = options.all_namespaces && options.name.is_none();
    let scope = (!all).then_some(namespace.as_str());
    let mut report = Report::default();

    let connections: Api<TrackViaConnection> = api_for(&client, scope);
    let selected: Vec<TrackViaConnection> = match &options.name {
        Some(name) => match connections.get_opt(name).await.map_err(connections_error)? {
            Some(tvc) => vec![tvc],
            None => {
                return Err(format!(
                    "TrackViaConnection {name:?} not found in namespace {namespace:?}"
                ));
            }
        },
        None => {
            let mut items = connections
                .list(&ListParams::default())
                .await
                .map_err(connections_error)?
                .items;
            items.sort_by_key(|t| (t.namespace(), t.name_any()));
            items
        }
    };

    let workloads = if selected.is_empty() {
        Some(Vec::new())
    } else {
        match list_workloads(&client, scope).await {
            Ok(w) => Some(w),
            Err(e) => {
                report
                    .warnings
                    .push(format!("consumers are not shown: {e}"));
                None
            }
        }
    };
    let now = Timestamp::now();

    if let Some(name) = &options.name {
        let tvc = &selected[0];
        let events = match list_events(&client, &namespace, name).await {
            Ok(e) => Some(e),
            Err(e) => {
                report.warnings.push(format!("events are not shown: {e}"));
                None
            }
        };
        let d = detail(tvc, workloads.as_deref(), events.as_deref(), now);
        report.output = match options.output {
            OutputFormat::Json => to_json(&d)?,
            OutputFormat::Yaml => to_yaml(&d)?,
            OutputFormat::Table => render_detail(&d, now, color),
        };
        return Ok(report);
    }

    let rows: Vec<ConnectionSummary> = selected
        .iter()
        .map(|t| summarize(t, workloads.as_deref(), now))
        .collect();
    report.output = match options.output {
        OutputFormat::Json => to_json(&ConnectionList { connections: rows })?,
        OutputFormat::Yaml => to_yaml(&ConnectionList { connections: rows })?,
        OutputFormat::Table if rows.is_empty() => {
            report.warnings.push(if all {
                "No TrackViaConnections found.".into()
            } else {
                format!("No TrackViaConnections found in namespace {namespace}.")
            });
            String::new()
        }
        OutputFormat::Table => render_table(&rows, all, now, color),
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn connection(value: serde_json::Value) -> TrackViaConnection {
        serde_json::from_value(value).unwrap()
    }

    fn base(name: &str, status: serde_json::Value) -> TrackViaConnection {
        connection(json!({
            "apiVersion": "trackvia.io/v1alpha1",
            "kind": "TrackViaConnection",
            "metadata": {"name": name, "namespace": "apps", "generation": 2, "uid": "u-1"},
            "spec": {
                "host": "acme.trackvia.com",
                "credentialsSecretRef": {"name": "api-user"},
                "tokenExpiresOn": "2030-01-15",
                "target": {"name": format!("{name}-out")},
            },
            "status": status,
        }))
    }

    fn ready_status(status: &str, reason: &str) -> serde_json::Value {
        json!({
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": status, "reason": reason, "message": "m",
                 "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 2},
                {"type": "Expiring", "status": "True", "reason": "ExpiresSoon", "message": "soon",
                 "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 2},
            ],
            "tokenExpiresAt": "2030-01-15T00:00:00Z",
            "expiryWarningAt": "2030-01-01T00:00:00Z",
            "lastVerifiedTime": "2030-01-02T23:55:00Z",
            "secretName": "crm-out",
            "publishedHash": "h1",
            "consecutiveFailures": 0,
        })
    }

    #[test]
    fn spans_keep_two_units() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(59), "59s");
        assert_eq!(span(60), "1m");
        assert_eq!(span(3 * 3600), "3h");
        assert_eq!(span(3 * 3600 + 20 * 60 + 5), "3h 20m");
        assert_eq!(span(12 * 86400 + 4 * 3600 + 59 * 60), "12d 4h");
        assert_eq!(span(2 * 86400), "2d");
    }

    #[test]
    fn expiry_countdown() {
        let now = ts("2030-01-03T00:00:00Z");
        assert_eq!(expires_in(None, now), "-");
        assert_eq!(expires_in(Some(ts("2030-01-15T04:30:00Z")), now), "12d 4h");
        assert_eq!(expires_in(Some(ts("2030-01-03T03:00:00Z")), now), "3h");
        assert_eq!(
            expires_in(Some(ts("2030-01-01T00:00:00Z")), now),
            "expired 2d ago"
        );
        assert_eq!(expires_in(Some(now), now), "expired 0s ago");
        assert_eq!(relative(Some("2030-01-02T23:55:00Z"), now), "5m ago");
        assert_eq!(relative(Some("2030-01-03T01:00:00Z"), now), "in 1h");
        assert_eq!(relative(None, now), "-");
        assert_eq!(relative(Some("not a time"), now), "-");
    }

    #[test]
    fn secrets_are_found_in_every_place_a_pod_template_uses_them() {
        let spec: PodSpec = serde_json::from_value(json!({
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "from-init"}}]}],
            "containers": [{
                "name": "c",
                "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-ref", "key": "k"}}},
                    {"name": "B", "value": "plain"},
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                ],
                "envFrom": [{"secretRef": {"name": "env-from"}}, {"configMapRef": {"name": "cm2"}}],
            }],
            "volumes": [
                {"name": "v1", "secret": {"secretName": "volume"}},
                {"name": "v2", "projected": {"sources": [
                    {"secret": {"name": "projected"}},
                    {"configMap": {"name": "cm3"}},
                ]}},
                {"name": "v3", "configMap": {"name": "cm4"}},
            ],
        }))
        .unwrap();
        let found: Vec<String> = secrets_in_pod_spec(&spec).into_iter().collect();
        assert_eq!(
            found,
            ["env-from", "env-ref", "from-init", "projected", "volume"]
        );
    }

    #[test]
    fn consumers_are_matched_by_namespace_and_secret() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "crm-sync", "namespace": "apps"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c"}],
                "volumes": [{"name": "v", "secret": {"secretName": "crm-out"}}]}}},
        }))
        .unwrap();
        let elsewhere: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "other", "namespace": "else"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c"}],
                "volumes": [{"name": "v", "secret": {"secretName": "crm-out"}}]}}},
        }))
        .unwrap();
        let workloads = vec![from_deployment(&d), from_deployment(&elsewhere)];
        assert_eq!(
            consumers_of(&workloads, "apps", "crm-out"),
            vec![WorkloadRef {
                kind: "Deployment".into(),
                name: "crm-sync".into()
            }]
        );
        assert!(consumers_of(&workloads, "apps", "nope").is_empty());
    }

    #[test]
    fn summary_and_table() {
        let now = ts("2030-01-03T00:00:00Z");
        let crm = base("crm", ready_status("True", "Verified"));
        let pending = connection(json!({
            "apiVersion": "trackvia.io/v1alpha1",
            "kind": "TrackViaConnection",
            "metadata": {"name": "new", "namespace": "apps"},
            "spec": {"host": "go.trackvia.com", "credentialsSecretRef": {"name": "s"}},
        }));
        let workloads = vec![Workload {
            namespace: "apps".into(),
            workload: WorkloadRef {
                kind: "Deployment".into(),
                name: "crm-sync".into(),
            },
            secrets: ["crm-out".to_string()].into(),
        }];
        let mut unpublished = ready_status("False", "Unauthorized");
        unpublished["publishedHash"] = serde_json::Value::Null;
        unpublished["secretName"] = json!("revoked-out");
        let revoked = base("revoked", unpublished);
        let rows = vec![
            summarize(&crm, Some(&workloads), now),
            summarize(&pending, Some(&workloads), now),
            summarize(&revoked, Some(&workloads), now),
        ];
        assert!(rows[0].expiring && !rows[0].expired);
        assert_eq!(rows[0].expires_in_seconds, Some(12 * 86400));
        assert_eq!(rows[1].ready, None);
        assert_eq!(rows[1].secret_name, "new");
        assert!(rows[0].published && !rows[1].published && !rows[2].published);
        let table = render_table(&rows, false, now, false);
        let expected = "\
NAME     READY  REASON        HOST               EXPIRES IN  LAST VERIFIED  SECRET   CONSUMERS
crm      True   Verified      acme.trackvia.com  12d         5m ago         crm-out  deploy/crm-sync
new      -      -             go.trackvia.com    -           -              -        -
revoked  False  Unauthorized  acme.trackvia.com  12d         5m ago         -        -
";
        assert_eq!(table, expected);
        let coloured = render_table(&rows, true, now, true);
        assert!(coloured.contains("\x1b[32mTrue\x1b[0m"));
        assert!(coloured.starts_with("\x1b[1mNAMESPACE\x1b[0m  "));
        let stripped = coloured
            .replace(GREEN, "")
            .replace(RED, "")
            .replace(YELLOW, "")
            .replace(BOLD, "")
            .replace(RESET, "");
        assert_eq!(stripped, render_table(&rows, true, now, false));
        assert!(!table.contains('\x1b'));
    }

    #[test]
    fn json_field_names_are_stable() {
        let now = ts("2030-01-03T00:00:00Z");
        let row = summarize(
            &base("crm", ready_status("False", "Unauthorized")),
            None,
            now,
        );
        let value = serde_json::to_value(&row).unwrap();
        for key in [
            "namespace",
            "name",
            "ready",
            "reason",
            "host",
            "tokenExpiresAt",
            "expiresInSeconds",
            "expired",
            "expiring",
            "lastVerifiedTime",
            "secretName",
            "consumers",
        ] {
            assert!(value.get(key).is_some(), "{key} missing in {value}");
        }
        assert_eq!(value["consumers"], serde_json::Value::Null);
        assert_eq!(value["ready"], "False");
    }

    #[test]
    fn detail_shows_conditions_and_events_of_this_object_only() {
        let now = ts("2030-01-03T00:00:00Z");
        let tvc = base("crm", ready_status("False", "Forbidden"));
        let event = |name: &str, uid: &str, reason: &str, at: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": format!("{name}.{reason}"), "namespace": "apps"},
                "involvedObject": {"kind": "TrackViaConnection", "name": name, "uid": uid},
                "reason": reason, "message": format!("{reason} happened"), "type": "Warning",
                "eventTime": at,
            }))
            .unwrap()
        };
        let events = vec![
            event("crm", "u-1", "Forbidden", "2030-01-02T12:00:00.000000Z"),
            event("crm", "u-1", "Verified", "2030-01-01T12:00:00.000000Z"),
            event(
                "crm",
                "old-uid",
                "Unauthorized",
                "2029-01-01T12:00:00.000000Z",
            ),
            event("other", "u-2", "Expired", "2030-01-01T12:00:00.000000Z"),
        ];
        let d = detail(&tvc, Some(&[]), Some(&events), now);
        let reasons: Vec<&str> = d
            .events
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.reason.as_str())
            .collect();
        assert_eq!(reasons, ["Verified", "Forbidden"]);
        let text = render_detail(&d, now, false);
        for needle in [
            "Name:",
            "False (Forbidden)",
            "Conditions:",
            "Ready     False",
            "Expiring  True",
            "Events:",
            "Forbidden happened",
            "12h ago",
            "Secret api-user (keys apiKey, authToken)",
            "crm-out (deletion policy Delete)",
        ] {
            assert!(text.contains(needle), "{needle:?} missing:\n{text}");
        }
        let none = detail(&tvc, None, None, now);
        let text = render_detail(&none, now, false);
        assert!(text.contains("events could not be listed"), "{text}");
        assert!(text.contains("workloads could not be listed"), "{text}");
    }

    #[test]
    fn invoked_as_kubectl_plugin() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            plugin_args(args(&["/home/me/bin/kubectl-trackvia", "-A"])),
            args(&["/home/me/bin/kubectl-trackvia", "status", "-A"])
        );
        assert_eq!(
            plugin_args(args(&["kubectl-trackvia"])),
            args(&["kubectl-trackvia", "status"])
        );
        assert_eq!(
            plugin_args(args(&["/usr/bin/trackvia-operator", "run"])),
            args(&["/usr/bin/trackvia-operator", "run"])
        );
        assert!(plugin_args(Vec::new()).is_empty());
    }
}
