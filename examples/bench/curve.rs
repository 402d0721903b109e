//! The cost curve (`--curve 1000,3000,10000`): the whole benchmark once per N, each in its
//! own namespace with its own operator and its own unrelated Secrets. Prints how the costs
//! grow with N and writes them as JSON (every run's full report too) and as a TSV file
//! that `hack/bench` draws the plot from.

use super::*;

/// The figures of one N that show how cost grows.
#[derive(Serialize, Clone)]
pub(crate) struct CurvePoint {
    pub(crate) connections: usize,
    pub(crate) unrelated_secrets: usize,
    /// Median of the convergence runs.
    pub(crate) convergence_seconds: f64,
    pub(crate) floor_seconds: f64,
    pub(crate) ratio: f64,
    /// The floor that also makes the connection applies, and convergence's ratio to it.
    pub(crate) floor_with_applies_seconds: f64,
    pub(crate) ratio_with_applies: f64,
    pub(crate) peak_rss_mib: f64,
    pub(crate) steady_rss_mib: f64,
    /// The operator's CPU while converging, per 1,000 connections (median of the runs).
    pub(crate) cpu_seconds_per_1000: f64,
    /// API requests while converging, per connection (median of the runs).
    pub(crate) requests_per_connection: f64,
    pub(crate) restart_initial_sync_seconds: f64,
    pub(crate) restart_peak_rss_mib: f64,
    pub(crate) handover_initial_sync_seconds: f64,
    /// Median of the cold starts, its ratio to the floor, and the highest peak RSS of them.
    pub(crate) cold_start_seconds: f64,
    pub(crate) cold_ratio: f64,
    pub(crate) cold_peak_rss_mib: f64,
    /// Every target of the run met.
    pub(crate) all_targets_met: bool,
}

#[derive(Serialize)]
pub(crate) struct Curve {
    pub(crate) points: Vec<CurvePoint>,
    pub(crate) reports: Vec<Report>,
}

/// Rounded to `places` decimals.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

pub(crate) fn point(r: &Report) -> CurvePoint {
    let n = r.parameters.connections.max(1) as f64;
    let per_run = |f: fn(&ConvergenceRun) -> f64| median(r.convergence.runs.iter().map(f));
    CurvePoint {
        connections: r.parameters.connections,
        unrelated_secrets: r.parameters.unrelated_secrets,
        convergence_seconds: r.convergence.seconds,
        floor_seconds: r.floor.seconds,
        ratio: r.floor.ratio,
        floor_with_applies_seconds: r.floor.with_applies_seconds,
        ratio_with_applies: r.floor.ratio_with_applies,
        peak_rss_mib: r.memory.operator_peak_rss_mib,
        steady_rss_mib: r.memory.operator_rss_steady_mib,
        cpu_seconds_per_1000: round(per_run(|c| c.operator_cpu_seconds) / n * 1000.0, 2),
        requests_per_connection: round(per_run(|c| c.api_requests as f64) / n, 3),
        restart_initial_sync_seconds: r.restart.initial_sync_seconds,
        restart_peak_rss_mib: r.restart.peak_rss_mib,
        handover_initial_sync_seconds: r.handover.initial_sync_seconds,
        cold_start_seconds: r.cold_start.seconds,
        cold_ratio: r.cold_start.ratio,
        cold_peak_rss_mib: r
            .cold_start
            .runs
            .iter()
            .map(|c| c.peak_rss_mib)
            .fold(0.0, f64::max),
        all_targets_met: r.targets.iter().all(|t| t.met),
    }
}

/// The columns of the printed table and of the TSV file: header, and value of a point.
type Column = (&'static str, fn(&CurvePoint) -> String);

const COLUMNS: [Column; 16] = [
    ("N", |p| p.connections.to_string()),
    ("convergence_s", |p| format!("{:.2}", p.convergence_seconds)),
    ("floor_s", |p| format!("{:.2}", p.floor_seconds)),
    ("ratio", |p| format!("{:.2}", p.ratio)),
    ("floor_with_applies_s", |p| {
        format!("{:.2}", p.floor_with_applies_seconds)
    }),
    ("ratio_with_applies", |p| {
        format!("{:.2}", p.ratio_with_applies)
    }),
    ("peak_rss_mib", |p| format!("{:.1}", p.peak_rss_mib)),
    ("steady_rss_mib", |p| format!("{:.1}", p.steady_rss_mib)),
    ("cpu_s_per_1000", |p| {
        format!("{:.2}", p.cpu_seconds_per_1000)
    }),
    ("requests_per_conn", |p| {
        format!("{:.3}", p.requests_per_connection)
    }),
    ("restart_sync_s", |p| {
        format!("{:.2}", p.restart_initial_sync_seconds)
    }),
    ("handover_sync_s", |p| {
        format!("{:.2}", p.handover_initial_sync_seconds)
    }),
    ("cold_start_s", |p| format!("{:.2}", p.cold_start_seconds)),
    ("cold_ratio", |p| format!("{:.2}", p.cold_ratio)),
    ("cold_peak_rss_mib", |p| {
        format!("{:.1}", p.cold_peak_rss_mib)
    }),
    ("targets", |p| {
        if p.all_targets_met { "met" } else { "MISSED" }.to_string()
    }),
];

/// The column headers.
fn header() -> Vec<&'static str> {
    COLUMNS.iter().map(|(h, _)| *h).collect()
}

/// A point's cells, in the order of the columns.
fn cells(p: &CurvePoint) -> Vec<String> {
    COLUMNS.iter().map(|(_, v)| v(p)).collect()
}

pub(crate) fn print_curve(points: &[CurvePoint]) {
    println!(
        "cost curve ({} unrelated Secrets in every run)",
        points.first().map_or(0, |p| p.unrelated_secrets)
    );
    println!("| {} |", header().join(" | "));
    println!("|{}|", vec!["---"; COLUMNS.len()].join("|"));
    for p in points {
        println!("| {} |", cells(p).join(" | "));
    }
    println!();
}

/// The points as tab-separated values, a header line first.
pub(crate) fn tsv(points: &[CurvePoint]) -> String {
    let mut text = COLUMNS
        .iter()
        .map(|(h, _)| *h)
        .collect::<Vec<_>>()
        .join("\t");
    text.push('\n');
    for p in points {
        text.push_str(&cells(p).join("\t"));
        text.push('\n');
    }
    text
}
