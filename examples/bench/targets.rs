//! The targets a run is judged against.

use super::*;

/// Convergence within this multiple of the floor.
const RATIO_TARGET: f64 = 1.2;

fn target(what: &str, value: String, goal: impl Into<String>, met: bool) -> Target {
    Target {
        what: what.into(),
        value,
        target: goal.into(),
        met,
    }
}

/// A ratio of convergence to a floor, at most [`RATIO_TARGET`].
fn ratio(what: &str, ratio: f64, note: &str) -> Target {
    target(
        what,
        format!("{ratio:.2}"),
        format!("≤ {RATIO_TARGET}{note}"),
        ratio <= RATIO_TARGET,
    )
}

impl Bench {
    pub(crate) fn judge(&mut self) {
        let r = &self.report;
        let rate = self.args.rate_limit;
        let t = &r.trackvia;
        let s = &r.steady;
        let mut targets = vec![
            ratio("convergence ÷ floor", r.floor.ratio, ""),
            ratio(
                "convergence ÷ floor with the applies",
                r.floor.ratio_with_applies,
                " (the same requests and concurrency without the operator)",
            ),
            target(
                "TrackVia calls until convergence",
                t.calls_at_convergence.to_string(),
                format!("= {}", t.expected),
                t.calls_at_convergence == t.expected && t.calls_per_credential_max == 1,
            ),
            target(
                "peak TrackVia calls in any 60 s",
                t.peak_calls_in_sixty_seconds.to_string(),
                format!("≤ {rate} (--rate-limit per minute)"),
                t.peak_calls_in_sixty_seconds <= rate as usize,
            ),
            requests_per_run(&r.convergence.runs, self.n()),
            peak_rss(r.memory.operator_peak_rss_mib, self.n()),
            no_writes(
                "steady API writes (operator's resources)",
                [
                    s.api_writes_operator_resources,
                    s.operator_status_writes,
                    s.operator_secret_writes,
                ],
            ),
            target(
                "steady operator CPU",
                format!("{:.2} % of a core", s.operator_cpu_percent_of_core),
                "< 1 %",
                s.operator_cpu_percent_of_core < 1.0,
            ),
            target(
                "Secret watch events from unrelated Secrets",
                r.scoping.operator_secret_watch_events.to_string(),
                "0",
                r.scoping.operator_secret_watch_events == 0,
            ),
            target(
                "rotation → output Secret updated",
                format!("{:.3} s", r.rotation.single_seconds),
                "≤ 1 s",
                r.rotation.single_seconds <= 1.0,
            ),
        ];
        targets.extend(self.restart_targets());
        targets.extend(cold_targets(&r.cold_start, self.n()));
        self.report.targets = targets;
    }

    /// A restart and a handover cost nothing: no TrackVia call, no write.
    fn restart_targets(&self) -> Vec<Target> {
        let r = &self.report;
        let mut targets = Vec::new();
        for (phase, re) in [("restart", &r.restart), ("handover", &r.handover)] {
            targets.push(target(
                &format!("{phase}: TrackVia calls"),
                re.trackvia_calls.to_string(),
                "0 (none due)",
                re.trackvia_calls == 0,
            ));
            targets.push(no_writes(
                &format!("{phase}: API writes (operator's resources)"),
                [
                    re.api_writes_operator_resources,
                    re.operator_status_writes,
                    re.operator_secret_writes,
                ],
            ));
        }
        targets
    }
}

/// No writes: the API server's count of writes on the operator's resources, then the
/// operator's own counts of status and Secret writes.
fn no_writes(what: &str, [api, status, secret]: [u64; 3]) -> Target {
    target(
        what,
        api.to_string(),
        "0",
        api == 0 && status == 0 && secret == 0,
    )
}

/// The cold starts (none when `--cold-runs 0`): the median within [`RATIO_TARGET`] of the
/// floor, and every run writing 2 × N (a Secret and a status per connection) within 2 %. The
/// new process's lists at start-up are reads, reported in the table, not judged.
fn cold_targets(cold: &ColdStart, n: usize) -> Vec<Target> {
    if cold.runs.is_empty() {
        return Vec::new();
    }
    let floor = 2.0 * n as f64;
    let worst = furthest_from_one(
        cold.runs
            .iter()
            .map(|r| r.api_writes_operator_resources as f64 / floor),
    );
    vec![
        ratio(
            "cold start ÷ floor",
            cold.ratio,
            " (operator started on N connections)",
        ),
        target(
            "cold start: writes on the operator's resources ÷ 2 N (furthest run)",
            format!("{worst:.3}"),
            "1 ± 0.02",
            (worst - 1.0).abs() <= 0.02,
        ),
    ]
}

/// Of `ratios`, the one furthest from 1 (1 when there are none).
fn furthest_from_one(ratios: impl Iterator<Item = f64>) -> f64 {
    ratios.fold(1.0, |w: f64, x| {
        if (x - 1.0).abs() > (w - 1.0).abs() {
            x
        } else {
            w
        }
    })
}

/// Every convergence run takes 3 × N API requests (connection apply, Secret write,
/// status write) within 2 %.
fn requests_per_run(runs: &[ConvergenceRun], n: usize) -> Target {
    let floor = 3.0 * n as f64;
    let worst = furthest_from_one(runs.iter().map(|r| r.api_requests as f64 / floor));
    target(
        "API requests per run ÷ 3 N (furthest run)",
        format!("{worst:.3}"),
        "1 ± 0.02",
        (worst - 1.0).abs() <= 0.02,
    )
}

/// The operator's peak memory: 50 MiB up to 1,000 connections, 64 MiB up to 10,000.
fn peak_rss(mib: f64, n: usize) -> Target {
    let limit = if n <= 1000 { 50.0 } else { 64.0 };
    target(
        "operator peak RSS",
        format!("{mib:.1} MiB"),
        format!("≤ {limit} MiB"),
        mib <= limit,
    )
}
