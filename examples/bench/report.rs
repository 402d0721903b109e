//! The figures a run reports: the JSON document and the printed table.

use super::*;

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Default)]
pub(crate) struct Report {
    pub(crate) parameters: Parameters,
    pub(crate) machine: Machine,
    pub(crate) setup: Setup,
    pub(crate) convergence: Convergence,
    pub(crate) floor: Floor,
    pub(crate) trackvia: TrackViaCalls,
    pub(crate) memory: Memory,
    pub(crate) steady: Steady,
    pub(crate) scoping: Scoping,
    pub(crate) rotation: Rotation,
    pub(crate) targets: Vec<Target>,
}

#[derive(Serialize, Default)]
pub(crate) struct Parameters {
    pub(crate) connections: usize,
    pub(crate) credentials: usize,
    pub(crate) unrelated_secrets: usize,
    pub(crate) concurrency: u16,
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) verify_interval: String,
    pub(crate) steady_window_seconds: u64,
    pub(crate) settle_seconds: u64,
    pub(crate) apply_concurrency: usize,
}

#[derive(Serialize, Default)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) load_average_at_start: String,
    pub(crate) kubernetes: String,
}

#[derive(Serialize, Default)]
pub(crate) struct Setup {
    pub(crate) unrelated_secrets_seconds: f64,
    pub(crate) operator_ready_seconds: f64,
}

#[derive(Serialize, Default)]
pub(crate) struct Convergence {
    /// First connection applied → every connection Ready with its output Secret.
    pub(crate) seconds: f64,
    /// How long applying the N connections took (inside `seconds`).
    pub(crate) connections_applied_seconds: f64,
    pub(crate) operator_status_writes: u64,
    pub(crate) operator_secret_writes: u64,
    pub(crate) operator_reconciles: u64,
    /// Secrets the operator read (GET) while converging.
    pub(crate) operator_secret_reads: u64,
    /// Secret watch events the operator received while converging.
    pub(crate) operator_secret_watch_events: u64,
    pub(crate) api_requests: u64,
    pub(crate) api_writes: u64,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
    pub(crate) apiserver_cpu_seconds: Option<f64>,
    pub(crate) operator_cpu_seconds: f64,
    /// /proc/loadavg right after convergence: other work on the machine skews the timings.
    pub(crate) load_average: String,
}

#[derive(Serialize, Default)]
pub(crate) struct Floor {
    /// N Secret applies + N status patches by a plain client.
    pub(crate) seconds: f64,
    /// Creating the floor's N connections (not part of `seconds`).
    pub(crate) connections_created_seconds: f64,
    pub(crate) concurrency: u16,
    /// convergence.seconds / floor.seconds
    pub(crate) ratio: f64,
    /// From the first connection applied to the last status patched, one pipeline per
    /// connection (apply connection → apply Secret → patch status) at the same concurrency.
    pub(crate) pipelined_seconds: f64,
    /// convergence.seconds / floor.pipelined_seconds
    pub(crate) pipelined_ratio: f64,
    /// Every measurement of `seconds` (the median is used).
    pub(crate) runs: Vec<f64>,
    /// Every measurement of `pipelined_seconds` (the median is used).
    pub(crate) pipelined_runs: Vec<f64>,
}

#[derive(Serialize, Default)]
pub(crate) struct TrackViaCalls {
    pub(crate) calls_at_convergence: usize,
    pub(crate) expected: usize,
    pub(crate) calls_per_credential_max: usize,
    pub(crate) operator_reported_calls: u64,
    pub(crate) peak_calls_in_one_second: usize,
    pub(crate) peak_calls_in_sixty_seconds: usize,
    pub(crate) calls_after_rotations: usize,
    pub(crate) next_verifications_spread_seconds: f64,
    pub(crate) next_verifications_max_in_one_second: usize,
}

#[derive(Serialize, Default)]
pub(crate) struct Memory {
    pub(crate) operator_peak_rss_mib: f64,
    pub(crate) operator_rss_steady_mib: f64,
}

#[derive(Serialize, Default)]
pub(crate) struct Steady {
    pub(crate) window_seconds: f64,
    pub(crate) operator_cpu_seconds: f64,
    pub(crate) operator_cpu_percent_of_core: f64,
    pub(crate) apiserver_cpu_percent_of_core: Option<f64>,
    pub(crate) api_requests_all: u64,
    pub(crate) api_writes_all: u64,
    pub(crate) api_requests_operator_resources: u64,
    pub(crate) api_writes_operator_resources: u64,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
    pub(crate) operator_status_writes: u64,
    pub(crate) operator_secret_writes: u64,
    pub(crate) operator_reconciles: u64,
    pub(crate) trackvia_calls: usize,
    pub(crate) watched_connection_changes: u64,
    pub(crate) watched_output_secret_changes: u64,
}

/// Unrelated Secrets changing after convergence: what reaches the operator.
#[derive(Serialize, Default)]
pub(crate) struct Scoping {
    pub(crate) unrelated_secrets_updated: usize,
    /// Secret watch events the operator received meanwhile (its watches are
    /// selected by label and by name, so none).
    pub(crate) operator_secret_watch_events: u64,
    pub(crate) operator_reconciles: u64,
    pub(crate) operator_cpu_seconds: f64,
    pub(crate) source_watches_by_name: u64,
    pub(crate) source_watches_by_namespace: u64,
}

#[derive(Serialize, Default)]
pub(crate) struct Rotation {
    /// A source Secret read by one connection: update → its output Secret updated.
    pub(crate) single_seconds: f64,
    /// A source Secret shared by `shared_outputs` connections.
    pub(crate) shared_outputs: usize,
    pub(crate) shared_first_seconds: f64,
    pub(crate) shared_median_seconds: f64,
    pub(crate) shared_last_seconds: f64,
}

#[derive(Serialize)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) target: String,
    pub(crate) met: bool,
}

pub(crate) fn print_table(r: &Report) {
    let p = &r.parameters;
    let m = &r.machine;
    println!();
    println!(
        "trackvia-operator scale benchmark: N={} connections, K={} credentials, U={} unrelated Secrets",
        p.connections, p.credentials, p.unrelated_secrets
    );
    println!(
        "machine: {} CPUs ({}), {} GiB RAM, Linux {}, load average at start {}; API server {}",
        m.cpus, m.cpu_model, m.memory_gib, m.kernel, m.load_average_at_start, m.kubernetes
    );
    println!(
        "operator: --concurrency {} --rate-limit {}/min, verifyInterval {}",
        p.concurrency, p.rate_limit_per_minute, p.verify_interval
    );
    println!();
    let c = &r.convergence;
    let f = &r.floor;
    let t = &r.trackvia;
    let s = &r.steady;
    let rows: Vec<(String, String)> = vec![
        (
            "convergence: apply N → all Ready + Secret".into(),
            format!("{:.2} s", c.seconds),
        ),
        (
            "  of which applying the N connections".into(),
            format!("{:.2} s", c.connections_applied_seconds),
        ),
        (
            format!(
                "floor: N Secret applies + N status patches (conc. {})",
                f.concurrency
            ),
            format!("{:.2} s", f.seconds),
        ),
        (
            "  floor runs (median above)".to_string(),
            f.runs
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        (
            "ratio convergence ÷ floor".into(),
            format!("{:.2}", f.ratio),
        ),
        (
            "floor, pipelined from the first connection apply".into(),
            format!("{:.2} s", f.pipelined_seconds),
        ),
        (
            "  pipelined floor runs (median above)".into(),
            f.pipelined_runs
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        (
            "ratio convergence ÷ pipelined floor".into(),
            format!("{:.2}", f.pipelined_ratio),
        ),
        (
            "API requests during convergence (writes)".into(),
            format!("{} ({})", c.api_requests, c.api_writes),
        ),
        (
            "operator writes during convergence: status / Secret".into(),
            format!(
                "{} / {}",
                c.operator_status_writes, c.operator_secret_writes
            ),
        ),
        (
            "load average after convergence (1/5/15 min)".into(),
            c.load_average.clone(),
        ),
        (
            "operator Secret reads / Secret watch events".into(),
            format!(
                "{} / {}",
                c.operator_secret_reads, c.operator_secret_watch_events
            ),
        ),
        (
            "operator reconciles / CPU during convergence".into(),
            format!(
                "{} / {:.2} s",
                c.operator_reconciles, c.operator_cpu_seconds
            ),
        ),
        (
            "TrackVia calls until convergence (expected)".into(),
            format!("{} ({})", t.calls_at_convergence, t.expected),
        ),
        (
            "peak TrackVia calls in any 1 s / any 60 s".into(),
            format!(
                "{} / {}",
                t.peak_calls_in_one_second, t.peak_calls_in_sixty_seconds
            ),
        ),
        (
            "next checks: spread / most in one second".into(),
            format!(
                "{:.0} s / {}",
                t.next_verifications_spread_seconds, t.next_verifications_max_in_one_second
            ),
        ),
        (
            "operator peak RSS (VmHWM)".into(),
            format!("{:.1} MiB", r.memory.operator_peak_rss_mib),
        ),
        (
            "operator RSS in steady state".into(),
            format!("{:.1} MiB", r.memory.operator_rss_steady_mib),
        ),
        (
            format!("steady {:.0} s: operator CPU", s.window_seconds),
            format!(
                "{:.2} s = {:.2} % of a core",
                s.operator_cpu_seconds, s.operator_cpu_percent_of_core
            ),
        ),
        (
            "steady: API requests, all clients (writes)".into(),
            format!("{} ({})", s.api_requests_all, s.api_writes_all),
        ),
        (
            "steady: API requests on secrets/tvc/events (writes)".into(),
            format!(
                "{} ({})",
                s.api_requests_operator_resources, s.api_writes_operator_resources
            ),
        ),
        (
            "steady: operator status / Secret writes".into(),
            format!(
                "{} / {}",
                s.operator_status_writes, s.operator_secret_writes
            ),
        ),
        (
            "steady: reconciles / TrackVia calls".into(),
            format!("{} / {}", s.operator_reconciles, s.trackvia_calls),
        ),
        (
            "steady: watched changes, connections / Secrets".into(),
            format!(
                "{} / {}",
                s.watched_connection_changes, s.watched_output_secret_changes
            ),
        ),
        (
            format!(
                "{} unrelated Secrets updated: operator events / reconciles",
                r.scoping.unrelated_secrets_updated
            ),
            format!(
                "{} / {} ({:.2} s CPU)",
                r.scoping.operator_secret_watch_events,
                r.scoping.operator_reconciles,
                r.scoping.operator_cpu_seconds
            ),
        ),
        (
            "source Secret watches: by name / namespace-wide".into(),
            format!(
                "{} / {}",
                r.scoping.source_watches_by_name, r.scoping.source_watches_by_namespace
            ),
        ),
        (
            "rotation → output Secret updated (1 output)".into(),
            format!("{:.3} s", r.rotation.single_seconds),
        ),
        (
            format!(
                "rotation of a shared source ({} outputs): first / median / last",
                r.rotation.shared_outputs
            ),
            format!(
                "{:.3} / {:.3} / {:.3} s",
                r.rotation.shared_first_seconds,
                r.rotation.shared_median_seconds,
                r.rotation.shared_last_seconds
            ),
        ),
    ];
    let mut rows = rows;
    if let Some(cpu) = s.apiserver_cpu_percent_of_core {
        rows.push((
            "steady: kube-apiserver CPU".into(),
            format!("{cpu:.1} % of a core"),
        ));
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!("| {:<width$} | {:>24} |", "measure", "value");
    println!("|{}|{}|", "-".repeat(width + 2), "-".repeat(26));
    for (k, v) in &rows {
        println!("| {k:<width$} | {v:>24} |");
    }
    println!();
    let width = r
        .targets
        .iter()
        .map(|t| t.what.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "| {:<width$} | {:>18} | {:<36} | {:<6} |",
        "target", "value", "goal", "result"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(width + 2),
        "-".repeat(20),
        "-".repeat(38),
        "-".repeat(8)
    );
    for t in &r.targets {
        println!(
            "| {:<width$} | {:>18} | {:<36} | {:<6} |",
            t.what,
            t.value,
            t.target,
            if t.met { "met" } else { "MISSED" }
        );
    }
    println!();
}
