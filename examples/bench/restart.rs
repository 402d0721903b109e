//! The restart phase: with every connection Ready, kill the operator (SIGKILL) and start it
//! again; until its initial sync is done (`trackvia_initial_sync_done`), count its TrackVia
//! calls and API writes and sample its memory. The handover phase (`handover.rs`) reports
//! the same figures.

use super::*;

/// What was counted when the old process went away.
pub(crate) struct Gone {
    pub(crate) at: Instant,
    pub(crate) calls: usize,
    pub(crate) apiserver: ApiCounts,
}

impl Bench {
    pub(crate) async fn restart(
        &mut self,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        // The writes of the rotations before (the statuses follow their Secrets) are done.
        tokio::time::sleep(Duration::from_secs(self.args.settle)).await;
        eprintln!("bench: killing the operator and starting it again");
        let calls = self.fake.total_calls();
        let apiserver = scrape_apiserver(&self.client).await?;
        let first_log = self.args.json.with_extension("operator-before-restart.log");
        operator.kill();
        if let Err(e) = std::fs::copy(operator.log_file(), &first_log) {
            eprintln!("bench: could not keep the operator log: {e}");
        }
        let gone = Gone {
            at: Instant::now(),
            calls,
            apiserver,
        };
        let (restarted, ready) = self.spawn_ready(port, &[]).await?;
        *operator = restarted;
        self.report.restart = self.takeover(operator, port, &gone, ready).await?;
        Ok(())
    }

    /// The figures of a process that took over at `ready` after `gone`: until its initial
    /// sync is done and `--settle` more.
    pub(crate) async fn takeover(
        &self,
        operator: &mut OperatorProcess,
        port: u16,
        gone: &Gone,
        ready: Duration,
    ) -> BenchResult<Restart> {
        let synced = self
            .wait_metric(operator, port, "trackvia_initial_sync_done", gone.at)
            .await?;
        tokio::time::sleep(Duration::from_secs(self.args.settle)).await;
        let o = scrape_operator(&self.http, port).await?;
        let by = scrape_apiserver(&self.client).await?.since(&gone.apiserver);
        Ok(Restart {
            ready_seconds: secs(ready),
            initial_sync_seconds: secs(synced),
            connections_synced: o.get("trackvia_initial_sync_connections"),
            trackvia_calls: self.fake.total_calls() - gone.calls,
            api_writes_all: sum_where(&by, is_write),
            api_writes_operator_resources: sum_where(&by, |k| {
                is_write(k) && is_operator_resource(k)
            }),
            api_requests_operator_resources: sum_where(&by, is_operator_resource),
            operator_status_writes: o.get("trackvia_status_writes_total"),
            operator_secret_writes: o.get("trackvia_secret_writes_total"),
            operator_secret_reads: o.get("trackvia_secret_reads_total"),
            peak_rss_mib: (vm_mib(operator.pid(), "VmHWM")? * 10.0).round() / 10.0,
            api_requests_by_verb_and_resource: by,
        })
    }

    /// Time from `since` until the operator's gauge `metric` reads 1.
    pub(crate) async fn wait_metric(
        &self,
        operator: &mut OperatorProcess,
        port: u16,
        metric: &str,
        since: Instant,
    ) -> BenchResult<Duration> {
        loop {
            let o = scrape_operator(&self.http, port).await?;
            if !o.0.contains_key(metric) {
                return Err(format!("the operator does not report {metric}"));
            }
            if o.get(metric) == 1 {
                return Ok(since.elapsed());
            }
            if !operator.is_running() {
                return Err(format!(
                    "the operator exited before {metric} was 1:\n{}",
                    log_tail(operator, 40)
                ));
            }
            if since.elapsed() > self.timeout() {
                return Err(format!("{metric} was not 1 in time"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
