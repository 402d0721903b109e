//! The targets a run is judged against.

use super::*;

impl Bench {
    pub(crate) fn judge(&mut self) {
        let r = &self.report;
        let rate = self.args.rate_limit;
        let targets = vec![
            Target {
                what: "convergence ÷ floor".into(),
                value: format!("{:.2}", r.floor.ratio),
                target: "≤ 1.5".into(),
                met: r.floor.ratio <= 1.5,
            },
            Target {
                what: "convergence ÷ pipelined floor".into(),
                value: format!("{:.2}", r.floor.pipelined_ratio),
                target: "≤ 1.5 (same start, informational)".into(),
                met: r.floor.pipelined_ratio <= 1.5,
            },
            Target {
                what: "TrackVia calls until convergence".into(),
                value: r.trackvia.calls_at_convergence.to_string(),
                target: format!("= {}", r.trackvia.expected),
                met: r.trackvia.calls_at_convergence == r.trackvia.expected
                    && r.trackvia.calls_per_credential_max == 1,
            },
            Target {
                what: "peak TrackVia calls in any 60 s".into(),
                value: r.trackvia.peak_calls_in_sixty_seconds.to_string(),
                target: format!("≤ {rate} (--rate-limit per minute)"),
                met: r.trackvia.peak_calls_in_sixty_seconds <= rate as usize,
            },
            Target {
                what: "operator peak RSS".into(),
                value: format!("{:.1} MiB", r.memory.operator_peak_rss_mib),
                target: "≤ 50 MiB".into(),
                met: r.memory.operator_peak_rss_mib <= 50.0,
            },
            Target {
                what: "steady API writes (operator's resources)".into(),
                value: r.steady.api_writes_operator_resources.to_string(),
                target: "0".into(),
                met: r.steady.api_writes_operator_resources == 0
                    && r.steady.operator_status_writes == 0
                    && r.steady.operator_secret_writes == 0,
            },
            Target {
                what: "steady operator CPU".into(),
                value: format!("{:.2} % of a core", r.steady.operator_cpu_percent_of_core),
                target: "< 1 %".into(),
                met: r.steady.operator_cpu_percent_of_core < 1.0,
            },
            Target {
                what: "Secret watch events from unrelated Secrets".into(),
                value: r.scoping.operator_secret_watch_events.to_string(),
                target: "0".into(),
                met: r.scoping.operator_secret_watch_events == 0,
            },
            Target {
                what: "rotation → output Secret updated".into(),
                value: format!("{:.3} s", r.rotation.single_seconds),
                target: "≤ 1 s".into(),
                met: r.rotation.single_seconds <= 1.0,
            },
        ];
        self.report.targets = targets;
    }
}
