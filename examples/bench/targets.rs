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
                "convergence ÷ pipelined floor",
                r.floor.pipelined_ratio,
                " (same start, informational)",
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
            target(
                "operator peak RSS",
                format!("{:.1} MiB", r.memory.operator_peak_rss_mib),
                "≤ 50 MiB",
                r.memory.operator_peak_rss_mib <= 50.0,
            ),
            target(
                "steady API writes (operator's resources)",
                s.api_writes_operator_resources.to_string(),
                "0",
                s.api_writes_operator_resources == 0
                    && s.operator_status_writes == 0
                    && s.operator_secret_writes == 0,
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
        self.report.targets = targets;
    }

    /// The restart costs nothing: no TrackVia call, no write.
    fn restart_targets(&self) -> Vec<Target> {
        let re = &self.report.restart;
        vec![
            target(
                "restart: TrackVia calls",
                re.trackvia_calls.to_string(),
                "0 (none due)",
                re.trackvia_calls == 0,
            ),
            target(
                "restart: API writes (operator's resources)",
                re.api_writes_operator_resources.to_string(),
                "0",
                re.api_writes_operator_resources == 0
                    && re.operator_status_writes == 0
                    && re.operator_secret_writes == 0,
            ),
        ]
    }
}
