//! Cold starts (`--cold-runs`): the N connections applied while no operator runs, then the
//! operator started, until every connection is Ready with its output Secret. The API server
//! serves only the operator's own writes meanwhile (one Secret and one status per
//! connection), which is exactly what the floor writes: this run is compared with the
//! floor one to one. It is also what installing the operator next to existing connections
//! costs.

use super::*;

impl Bench {
    /// Every cold-start run; the operator in `operator` (on `port`) is replaced by the one
    /// started last.
    pub(crate) async fn cold_starts(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        port: &mut u16,
    ) -> BenchResult<()> {
        for run in 1..=self.args.cold_runs {
            eprintln!("bench: cold start {run} of {}", self.args.cold_runs);
            self.delete_connections(shared, operator).await?;
            self.fresh_tokens().await?;
            operator.stop().await;
            let log = self
                .args
                .json
                .with_extension(format!("operator-before-cold-{run}.log"));
            if let Err(e) = std::fs::copy(operator.log_file(), &log) {
                eprintln!("bench: could not keep the operator log: {e}");
            }
            self.apply_connections().await?;
            self.wait_api_quiet().await?;
            let calls = self.fake.total_calls();
            let apiserver = scrape_apiserver(&self.client).await?;
            let cpu = SharedCpu::now(&self.args);
            let t0 = Instant::now();
            let started_port = free_port();
            let (started, _) = self.spawn_ready(started_port, &[]).await?;
            *operator = started;
            *port = started_port;
            let done = self.wait_converged(shared, operator, t0).await?;
            let seconds = done.duration_since(t0);
            let shared_cpu = SharedCpu::now(&self.args).since(&cpu);
            eprintln!(
                "bench: cold start converged in {:.2} s",
                seconds.as_secs_f64()
            );
            let by = scrape_apiserver(&self.client).await?.since(&apiserver);
            let pid = operator.pid();
            self.report.cold_start.runs.push(ColdRun {
                seconds: secs(seconds),
                api_requests_operator_resources: sum_where(&by, is_operator_resource),
                api_writes_operator_resources: sum_where(&by, |k| {
                    is_write(k) && is_operator_resource(k)
                }),
                trackvia_calls: self.fake.total_calls() - calls,
                operator_cpu_seconds: secs(Duration::from_secs_f64(cpu_seconds(pid)?)),
                peak_rss_mib: (vm_mib(pid, "VmHWM")? * 10.0).round() / 10.0,
                shared_cpu,
                api_requests_by_verb_and_resource: by,
            });
        }
        self.report.cold_start.seconds =
            median(self.report.cold_start.runs.iter().map(|r| r.seconds));
        Ok(())
    }
}
