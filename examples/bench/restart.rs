//! The restart phase: with every connection Ready, kill the operator (SIGKILL) and start it
//! again; until its initial sync is done (`trackvia_initial_sync_done`), count its TrackVia
//! calls and API writes and sample its memory.

use super::*;

impl Bench {
    pub(crate) async fn restart(
        &mut self,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        eprintln!("bench: killing the operator and starting it again");
        let calls0 = self.fake.total_calls();
        let m0 = scrape_apiserver(&self.client).await?;
        let first_log = self.args.json.with_extension("operator-before-restart.log");
        operator.kill();
        if let Err(e) = std::fs::copy(operator.log_file(), &first_log) {
            eprintln!("bench: could not keep the operator log: {e}");
        }
        let killed = Instant::now();
        let (restarted, ready) = self.spawn_ready(port).await?;
        *operator = restarted;
        let synced = self.wait_initial_sync(operator, port, killed).await?;
        tokio::time::sleep(Duration::from_secs(self.args.settle)).await;
        let o = scrape_operator(&self.http, port).await?;
        let by = scrape_apiserver(&self.client).await?.since(&m0);
        let re = &mut self.report.restart;
        re.ready_seconds = secs(ready);
        re.initial_sync_seconds = secs(synced);
        re.connections_synced = o.get("trackvia_initial_sync_connections");
        re.trackvia_calls = self.fake.total_calls() - calls0;
        re.api_writes_all = sum_where(&by, is_write);
        re.api_writes_operator_resources =
            sum_where(&by, |k| is_write(k) && is_operator_resource(k));
        re.api_requests_operator_resources = sum_where(&by, is_operator_resource);
        re.operator_status_writes = o.get("trackvia_status_writes_total");
        re.operator_secret_writes = o.get("trackvia_secret_writes_total");
        re.operator_secret_reads = o.get("trackvia_secret_reads_total");
        re.peak_rss_mib = (vm_mib(operator.pid(), "VmHWM")? * 10.0).round() / 10.0;
        Ok(())
    }

    /// Time from `killed` until the restarted operator reports its initial sync done.
    async fn wait_initial_sync(
        &self,
        operator: &mut OperatorProcess,
        port: u16,
        killed: Instant,
    ) -> BenchResult<Duration> {
        loop {
            let o = scrape_operator(&self.http, port).await?;
            if o.get("trackvia_initial_sync_done") == 1 {
                return Ok(killed.elapsed());
            }
            if !operator.is_running() {
                return Err(format!(
                    "the restarted operator exited:\n{}",
                    log_tail(operator, 40)
                ));
            }
            if killed.elapsed() > self.timeout() {
                return Err("no initial sync done after the restart".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
