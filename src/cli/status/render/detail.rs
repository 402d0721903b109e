//! Pure: the detailed view of one connection (`status NAME`).

use std::borrow::Cow;
use std::fmt::Write as _;

use jiff::Timestamp;

use crate::crd::condition;

use super::*;

/// Fields whose values are escaped before painting (the others are escaped when written).
const PAINTED: [&str; 2] = ["Ready", "Token expires"];

/// The detailed view of one connection.
pub fn render_detail(d: &ConnectionDetail, now: Timestamp, color: bool) -> String {
    let mut out = fields_section(d, now, color);
    out.push_str(&status_section(d, now));
    out.push_str(&conditions_section(d, now, color));
    out.push_str(&events_section(d, now, color));
    out
}

/// The "Ready" and "Token expires" values, escaped and painted.
fn ready_and_expiry(s: &ConnectionSummary, now: Timestamp, color: bool) -> (String, String) {
    let paint = |text: String, style: Option<&'static str>| {
        let text = safe::for_terminal(&text).into_owned();
        match style.filter(|_| color) {
            Some(style) => format!("{style}{text}{RESET}"),
            None => text,
        }
    };
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
    (ready, expires)
}

/// The restart targets and the consumers, as text.
fn workload_lists(d: &ConnectionDetail) -> (String, String) {
    let s = &d.summary;
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
    (restart_targets, consumers)
}

/// The connection's fields, from its spec and summary.
fn fields(d: &ConnectionDetail, now: Timestamp, color: bool) -> Vec<(&'static str, String)> {
    let s = &d.summary;
    let (ready, expires) = ready_and_expiry(s, now, color);
    let (restart_targets, consumers) = workload_lists(d);
    vec![
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
    ]
}

/// The first section: one field a line, every value escaped.
fn fields_section(d: &ConnectionDetail, now: Timestamp, color: bool) -> String {
    let fields = fields(d, now, color);
    let mut out = String::new();
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    for (key, value) in &fields {
        let value = if PAINTED.contains(key) {
            Cow::Borrowed(value.as_str())
        } else {
            safe::for_terminal(value)
        };
        let _ = writeln!(out, "{:<width$}{value}", format!("{key}:"));
    }

    out
}

/// The "Status:" section.
fn status_section(d: &ConnectionDetail, now: Timestamp) -> String {
    let s = &d.summary;
    let mut out = String::new();
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

    out
}

/// The "Conditions:" section.
fn conditions_section(d: &ConnectionDetail, now: Timestamp, color: bool) -> String {
    let mut out = String::new();
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

    out
}

/// The "Events:" section.
fn events_section(d: &ConnectionDetail, now: Timestamp, color: bool) -> String {
    let mut out = String::new();
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
