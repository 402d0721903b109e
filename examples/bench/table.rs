//! The printed table of a run: the measures, then the targets.

use super::*;

/// One printed row: what, and its value.
type Row = (String, String);

fn row(what: impl Into<String>, value: String) -> Row {
    (what.into(), value)
}

/// `a / b`.
fn pair(a: impl std::fmt::Display, b: impl std::fmt::Display) -> String {
    format!("{a} / {b}")
}

/// `n (writes)`.
fn with_writes(requests: u64, writes: u64) -> String {
    format!("{requests} ({writes})")
}

/// Every run, `a / b / c`.
fn runs(runs: &[f64]) -> String {
    runs.iter()
        .map(|s| format!("{s:.2}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

pub(crate) fn print_table(r: &Report) {
    print_header(r);
    let mut rows = convergence_rows(r);
    rows.extend(calls_and_memory_rows(r));
    rows.extend(steady_rows(r));
    rows.extend(scoping_and_rotation_rows(r));
    rows.extend(takeover_rows("restart", "kill → ready", &r.restart));
    rows.extend(takeover_rows(
        "handover",
        "SIGTERM to the leader → standby leads",
        &r.handover,
    ));
    rows.extend(cold_rows(&r.cold_start));
    if let Some(cpu) = r.steady.apiserver_cpu_percent_of_core {
        rows.push(row(
            "steady: kube-apiserver CPU",
            format!("{cpu:.1} % of a core"),
        ));
    }
    print_rows(&rows);
    print_targets(&r.targets);
}

fn print_header(r: &Report) {
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
        "operator: {} --concurrency {} --rate-limit {}/min, verifyInterval {}",
        p.operator, p.concurrency, p.rate_limit_per_minute, p.verify_interval
    );
    println!();
}

fn convergence_rows(r: &Report) -> Vec<Row> {
    let c = &r.convergence;
    let f = &r.floor;
    vec![
        row(
            "convergence: apply N → all Ready + Secret",
            format!("{:.2} s", c.seconds),
        ),
        row(
            "  of which applying the N connections",
            format!("{:.2} s", c.connections_applied_seconds),
        ),
        row(
            format!(
                "floor: N Secret creates + N status applies (conc. {})",
                f.concurrency
            ),
            format!("{:.2} s", f.seconds),
        ),
        row("  floor runs (median above)", runs(&f.runs)),
        row(
            "  convergence runs (median above)",
            runs(&c.runs.iter().map(|r| r.seconds).collect::<Vec<_>>()),
        ),
        row(
            "  API requests per run (operator's Secret reads)",
            c.runs
                .iter()
                .map(|r| format!("{} ({})", r.api_requests, r.operator_secret_reads))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        row(
            "  waiting for a quiet API server before each run",
            runs(
                &c.runs
                    .iter()
                    .map(|r| r.quiet_wait_seconds)
                    .collect::<Vec<_>>(),
            ),
        ),
        row("ratio convergence ÷ floor", format!("{:.2}", f.ratio)),
        row(
            "floor with the applies (the run's requests, no operator)",
            format!("{:.2} s", f.with_applies_seconds),
        ),
        row(
            "  floor with the applies runs (median above)",
            runs(&f.with_applies_runs),
        ),
        row(
            "ratio convergence ÷ floor with the applies",
            format!("{:.2}", f.ratio_with_applies),
        ),
        row(
            "API requests during convergence (writes)",
            with_writes(c.api_requests, c.api_writes),
        ),
        row(
            "operator writes during convergence: status / Secret",
            pair(c.operator_status_writes, c.operator_secret_writes),
        ),
        row(
            "load average after convergence (1/5/15 min)",
            c.load_average.clone(),
        ),
        row(
            "operator Secret reads / Secret watch events",
            pair(c.operator_secret_reads, c.operator_secret_watch_events),
        ),
        row(
            "operator reconciles / CPU during convergence",
            format!(
                "{} / {:.2} s",
                c.operator_reconciles, c.operator_cpu_seconds
            ),
        ),
    ]
}

fn calls_and_memory_rows(r: &Report) -> Vec<Row> {
    let t = &r.trackvia;
    vec![
        row(
            "TrackVia calls until convergence (expected)",
            format!("{} ({})", t.calls_at_convergence, t.expected),
        ),
        row(
            "peak TrackVia calls in any 1 s / any 60 s",
            pair(t.peak_calls_in_one_second, t.peak_calls_in_sixty_seconds),
        ),
        row(
            "next checks: spread / most in one second",
            format!(
                "{:.0} s / {}",
                t.next_verifications_spread_seconds, t.next_verifications_max_in_one_second
            ),
        ),
        row(
            "operator peak RSS (VmHWM)",
            format!("{:.1} MiB", r.memory.operator_peak_rss_mib),
        ),
        row(
            "operator RSS in steady state",
            format!("{:.1} MiB", r.memory.operator_rss_steady_mib),
        ),
    ]
}

fn steady_rows(r: &Report) -> Vec<Row> {
    let s = &r.steady;
    vec![
        row(
            format!("steady {:.0} s: operator CPU", s.window_seconds),
            format!(
                "{:.2} s = {:.2} % of a core",
                s.operator_cpu_seconds, s.operator_cpu_percent_of_core
            ),
        ),
        row(
            "steady: API requests, all clients (writes)",
            with_writes(s.api_requests_all, s.api_writes_all),
        ),
        row(
            "steady: API requests on secrets/tvc/events (writes)",
            with_writes(
                s.api_requests_operator_resources,
                s.api_writes_operator_resources,
            ),
        ),
        row(
            "steady: operator status / Secret writes",
            pair(s.operator_status_writes, s.operator_secret_writes),
        ),
        row(
            "steady: reconciles / TrackVia calls",
            pair(s.operator_reconciles, s.trackvia_calls),
        ),
        row(
            "steady: watched changes, connections / Secrets",
            pair(
                s.watched_connection_changes,
                s.watched_output_secret_changes,
            ),
        ),
    ]
}

fn scoping_and_rotation_rows(r: &Report) -> Vec<Row> {
    let (sc, ro) = (&r.scoping, &r.rotation);
    vec![
        row(
            format!(
                "{} unrelated Secrets updated: operator events / reconciles",
                sc.unrelated_secrets_updated
            ),
            format!(
                "{} / {} ({:.2} s CPU)",
                sc.operator_secret_watch_events, sc.operator_reconciles, sc.operator_cpu_seconds
            ),
        ),
        row(
            "source Secret watches: by name / namespace-wide",
            pair(sc.source_watches_by_name, sc.source_watches_by_namespace),
        ),
        row(
            "rotation → output Secret updated (1 output)",
            format!("{:.3} s", ro.single_seconds),
        ),
        row(
            format!(
                "rotation of a shared source ({} outputs): first / median / last",
                ro.shared_outputs
            ),
            format!(
                "{:.3} / {:.3} / {:.3} s",
                ro.shared_first_seconds, ro.shared_median_seconds, ro.shared_last_seconds
            ),
        ),
    ]
}

/// Every cold start, `a / b / c`.
fn cold_runs(c: &ColdStart, cell: impl Fn(&ColdRun) -> String) -> String {
    c.runs.iter().map(cell).collect::<Vec<_>>().join(" / ")
}

fn cold_rows(c: &ColdStart) -> Vec<Row> {
    vec![
        row(
            "cold start: operator started → all Ready + Secret",
            format!("{:.2} s", c.seconds),
        ),
        row(
            "  cold start runs (median above)",
            cold_runs(c, |r| format!("{:.2}", r.seconds)),
        ),
        row("ratio cold start ÷ floor", format!("{:.2}", c.ratio)),
        row(
            "  requests on secrets/tvc/events per run (writes)",
            cold_runs(c, |r| {
                with_writes(
                    r.api_requests_operator_resources,
                    r.api_writes_operator_resources,
                )
            }),
        ),
        row(
            "  TrackVia calls / peak RSS / CPU per run",
            cold_runs(c, |r| {
                format!(
                    "{}, {:.1} MiB, {:.2} s",
                    r.trackvia_calls, r.peak_rss_mib, r.operator_cpu_seconds
                )
            }),
        ),
    ]
}

/// The rows of a process taking over: after a restart or a leader handover.
fn takeover_rows(phase: &str, ready: &str, re: &Restart) -> Vec<Row> {
    vec![
        row(
            format!("{phase}: {ready} / initial sync done"),
            format!("{:.2} / {:.2} s", re.ready_seconds, re.initial_sync_seconds),
        ),
        row(
            format!("{phase}: connections synced / TrackVia calls"),
            pair(re.connections_synced, re.trackvia_calls),
        ),
        row(
            format!("{phase}: API requests on secrets/tvc/events (writes)"),
            with_writes(
                re.api_requests_operator_resources,
                re.api_writes_operator_resources,
            ),
        ),
        row(
            format!("{phase}: operator status / Secret writes / Secret reads"),
            format!(
                "{} / {} / {}",
                re.operator_status_writes, re.operator_secret_writes, re.operator_secret_reads
            ),
        ),
        row(
            format!("{phase}: API writes, all clients"),
            re.api_writes_all.to_string(),
        ),
        row(
            format!("{phase}: peak RSS of the new process"),
            format!("{:.1} MiB", re.peak_rss_mib),
        ),
    ]
}

fn print_rows(rows: &[Row]) {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!("| {:<width$} | {:>24} |", "measure", "value");
    println!("|{}|{}|", "-".repeat(width + 2), "-".repeat(26));
    for (k, v) in rows {
        println!("| {k:<width$} | {v:>24} |");
    }
    println!();
}

fn print_targets(targets: &[Target]) {
    let width = targets
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
    for t in targets {
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
