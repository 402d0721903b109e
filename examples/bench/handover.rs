//! The handover phase: two processes with leader election, every connection Ready; the
//! leader is stopped with SIGTERM, as a rollout does (it releases the Lease), and the
//! standby takes over. Reported like a restart: until the standby's initial sync is done,
//! its TrackVia calls, API writes and peak RSS.

use super::*;

impl Bench {
    /// The operator in `operator` (on `port`) is stopped and replaced by the standby that
    /// took over, on its own port.
    pub(crate) async fn handover(
        &mut self,
        operator: &mut OperatorProcess,
        port: &mut u16,
    ) -> BenchResult<()> {
        eprintln!("bench: leader handover between two processes with leader election");
        operator.stop().await;
        let elected = [
            "--leader-election".to_string(),
            "--leader-election-namespace".to_string(),
            self.ns.name().to_string(),
        ];
        let leader_port = free_port();
        let (mut leader, _) = self.spawn_ready(leader_port, &elected).await?;
        self.wait_metric(
            &mut leader,
            leader_port,
            "trackvia_initial_sync_done",
            Instant::now(),
        )
        .await?;
        let standby_port = free_port();
        let (mut standby, _) = self.spawn_ready(standby_port, &elected).await?;
        let gone = Gone {
            at: Instant::now(),
            calls: self.fake.total_calls(),
            apiserver: scrape_apiserver(&self.client).await?,
        };
        leader.stop().await;
        let leads = self
            .wait_metric(
                &mut standby,
                standby_port,
                "trackvia_operator_leader",
                gone.at,
            )
            .await?;
        self.report.handover = self
            .takeover(&mut standby, standby_port, &gone, leads)
            .await?;
        *operator = standby;
        *port = standby_port;
        Ok(())
    }
}
