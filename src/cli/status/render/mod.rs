//! Pure: text. Spans and relative times, the table of connections, and (in `detail`)
//! the detailed view of one. Every value is escaped for the terminal.

use std::fmt::Write as _;

use jiff::Timestamp;

use super::*;

mod detail;
pub use detail::*;

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

pub(crate) fn consumers_cell(consumers: Option<&[WorkloadRef]>) -> String {
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

pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const GREEN: &str = "\x1b[32m";
pub(crate) const YELLOW: &str = "\x1b[33m";
pub(crate) const BOLD: &str = "\x1b[1m";
pub(crate) const RESET: &str = "\x1b[0m";

/// A table cell: its text and, when colouring, its style.
pub(crate) struct Cell {
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
pub(crate) fn columns(rows: &[Vec<Cell>], color: bool, indent: &str) -> String {
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

pub(crate) fn ready_style(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("True") => Some(GREEN),
        Some("False") => Some(RED),
        _ => Some(YELLOW),
    }
}

pub(crate) fn expiry_style(row: &ConnectionSummary) -> Option<&'static str> {
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

pub(crate) fn or_dash(value: Option<&str>) -> String {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn instant_with_relative(at: Option<&str>, now: Timestamp) -> String {
    match at {
        None => "-".into(),
        Some(t) => format!("{t} ({})", relative(Some(t), now)),
    }
}
