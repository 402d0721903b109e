//! Convergence: the N connections applied, until every one is Ready with its output Secret;
//! the API requests, operator counters and TrackVia calls it took.

use super::*;

/// How long the API server must serve no request on the operator's resources before a run.
const QUIET: Duration = Duration::from_secs(3);

/// Counters read before the connections are applied.
pub(crate) struct Before {
    cpu: f64,
    shared_cpu: SharedCpu,
    pub(crate) apiserver: ApiCounts,
    operator: OperatorCounts,
    calls: usize,
}

/// How long one convergence run took.
pub(crate) struct Timed {
    /// What the API server, etcd and this program used until converged.
    shared_cpu: CpuUsed,
    /// Waiting for the API server to be quiet before the run (not inside `converged`).
    quiet_wait: Duration,
    /// Applying the N connections (inside `converged`).
    applied: Duration,
    /// First connection applied → every connection Ready with its output Secret.
    pub(crate) converged: Duration,
}

impl Bench {
    /// Apply the N connections and wait until every one is Ready with its output Secret;
    /// the first run, with every figure recorded.
    pub(crate) async fn converge(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        let (before, timed) = self.converge_once(shared, operator, port).await?;
        let load_average = load_average();
        let o1 = scrape_operator(&self.http, port).await?;
        self.record_convergence(&before, &o1, operator.pid(), &timed)
            .await?;
        self.report.convergence.load_average = load_average;
        self.record_calls(&o1);
        self.record_next_checks(shared);
        let c = &self.report.convergence;
        let first = ConvergenceRun {
            seconds: c.seconds,
            quiet_wait_seconds: secs(timed.quiet_wait),
            api_requests: c.api_requests,
            api_writes: c.api_writes,
            trackvia_calls: self.report.trackvia.calls_at_convergence,
            operator_secret_reads: c.operator_secret_reads,
            operator_cpu_seconds: c.operator_cpu_seconds,
            shared_cpu: timed.shared_cpu,
            api_requests_by_verb_and_resource: c.api_requests_by_verb_and_resource.clone(),
        };
        self.report.convergence.runs.push(first);
        Ok(())
    }

    /// One run: counters, apply, wait until converged.
    pub(crate) async fn converge_once(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<(Before, Timed)> {
        let quiet_wait = self.wait_api_quiet().await?;
        let before = Before {
            cpu: cpu_seconds(operator.pid())?,
            shared_cpu: SharedCpu::now(&self.args),
            apiserver: scrape_apiserver(&self.client).await?,
            operator: scrape_operator(&self.http, port).await?,
            calls: self.fake.total_calls(),
        };
        let t0 = Instant::now();
        self.apply_connections().await?;
        let applied = t0.elapsed();
        eprintln!(
            "bench: applied in {:.1} s; waiting for Ready",
            applied.as_secs_f64()
        );
        let done = self.wait_converged(shared, operator, t0).await?;
        let converged = done.duration_since(t0);
        let shared_cpu = SharedCpu::now(&self.args).since(&before.shared_cpu);
        eprintln!("bench: converged in {:.2} s", converged.as_secs_f64());
        Ok((
            before,
            Timed {
                shared_cpu,
                quiet_wait,
                applied,
                converged,
            },
        ))
    }

    /// A later run's figures.
    pub(crate) async fn run_figures(
        &self,
        before: &Before,
        timed: &Timed,
        operator: (u32, u16),
    ) -> BenchResult<ConvergenceRun> {
        let (pid, port) = operator;
        let by = scrape_apiserver(&self.client)
            .await?
            .since(&before.apiserver);
        let o1 = scrape_operator(&self.http, port).await?;
        Ok(ConvergenceRun {
            seconds: secs(timed.converged),
            quiet_wait_seconds: secs(timed.quiet_wait),
            api_requests: sum_where(&by, |_| true),
            api_writes: sum_where(&by, is_write),
            trackvia_calls: self.fake.total_calls() - before.calls,
            operator_secret_reads: o1.since(&before.operator, "trackvia_secret_reads_total"),
            operator_cpu_seconds: secs(Duration::from_secs_f64(
                (cpu_seconds(pid)? - before.cpu).max(0.0),
            )),
            shared_cpu: timed.shared_cpu,
            api_requests_by_verb_and_resource: by,
        })
    }

    /// Wait until the API server has served no request on the operator's resources for
    /// [`QUIET`]: the garbage collector may still be looking up the dependents of connections
    /// deleted just before, and a run should count only its own requests. How long that took.
    pub(crate) async fn wait_api_quiet(&self) -> BenchResult<Duration> {
        let t0 = Instant::now();
        let count =
            |c: &ApiCounts| sum_where(&c.since(&ApiCounts::default()), is_operator_resource);
        let mut last = count(&scrape_apiserver(&self.client).await?);
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < QUIET {
            if t0.elapsed() > self.timeout() {
                return Err(format!(
                    "the API server still served requests on the operator's resources after {} s of waiting",
                    self.args.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = count(&scrape_apiserver(&self.client).await?);
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
        Ok(t0.elapsed())
    }

    /// Apply the N connections, `--apply-concurrency` at once.
    pub(crate) async fn apply_connections(&self) -> BenchResult<()> {
        eprintln!(
            "bench: applying {} connections (concurrency {})",
            self.n(),
            self.args.apply_concurrency
        );
        let api: Api<TrackViaConnection> = self.ns.api();
        let host = self.fake.host();
        let (api_ref, host_ref) = (&api, &host);
        for_each_bounded(self.n(), self.args.apply_concurrency, |i| async move {
            let name = Bench::name(i);
            let body = connection_body(
                &name,
                &self.source_of(i),
                host_ref,
                &self.args.verify_interval,
            );
            api_ref
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("applying {name}: {e}"))
        })
        .await
    }

    /// The instant the last connection was seen Ready with its output Secret.
    pub(crate) async fn wait_converged(
        &self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        t0: Instant,
    ) -> BenchResult<Instant> {
        let n = self.n();
        // (name, token): the names built once, not on every look.
        let expected: Vec<(String, String)> = (0..n)
            .map(|i| (Bench::name(i), self.creds[i % self.k()].1.clone()))
            .collect();
        wait_until(
            shared,
            self.timeout(),
            "every connection Ready with its output Secret",
            operator,
            |o| converged(o, &expected, t0),
        )
        .await
    }

    async fn record_convergence(
        &mut self,
        before: &Before,
        o1: &OperatorCounts,
        pid: u32,
        timed: &Timed,
    ) -> BenchResult<()> {
        let by = scrape_apiserver(&self.client)
            .await?
            .since(&before.apiserver);
        let o0 = &before.operator;
        let c = &mut self.report.convergence;
        c.seconds = secs(timed.converged);
        c.connections_applied_seconds = secs(timed.applied);
        c.api_requests = sum_where(&by, |_| true);
        c.api_writes = sum_where(&by, is_write);
        c.api_requests_by_verb_and_resource = by;
        c.operator_status_writes = o1.since(o0, "trackvia_status_writes_total");
        c.operator_secret_writes = o1.since(o0, "trackvia_secret_writes_total");
        c.operator_reconciles = o1.since(o0, "trackvia_reconcile_duration_seconds_count");
        c.operator_secret_reads = o1.since(o0, "trackvia_secret_reads_total");
        c.operator_secret_watch_events = o1.since(o0, "trackvia_secret_watch_events_total");
        c.operator_cpu_seconds = secs(Duration::from_secs_f64(
            (cpu_seconds(pid)? - before.cpu).max(0.0),
        ));
        c.apiserver_cpu_seconds = timed.shared_cpu.apiserver_seconds;
        Ok(())
    }

    /// TrackVia calls so far.
    fn record_calls(&mut self, o1: &OperatorCounts) {
        let mut times: Vec<SystemTime> = self
            .fake
            .requests()
            .iter()
            .filter(|r| r.path == "/openapi/views")
            .map(|r| r.received_at)
            .collect();
        times.sort();
        let per_credential_max = self
            .creds
            .iter()
            .map(|(k, tok)| self.fake.calls_for(k, tok))
            .max()
            .unwrap_or(0);
        let expected_calls = self.k();
        let t = &mut self.report.trackvia;
        t.calls_at_convergence = times.len();
        t.expected = expected_calls;
        t.calls_per_credential_max = per_credential_max;
        t.operator_reported_calls = o1.get("trackvia_api_requests_total");
        t.peak_calls_in_one_second = peak_in_window(&times, Duration::from_secs(1));
        t.peak_calls_in_sixty_seconds = peak_in_window(&times, Duration::from_secs(60));
    }

    /// How the next checks are spread.
    fn record_next_checks(&mut self, shared: &Shared) {
        let mut next: Vec<i64> = shared
            .lock()
            .next_verification
            .values()
            .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
            .collect();
        next.sort();
        let t = &mut self.report.trackvia;
        if let (Some(first), Some(last)) = (next.first(), next.last()) {
            t.next_verifications_spread_seconds = (last - first) as f64;
            let mut per_second: HashMap<i64, usize> = HashMap::new();
            for s in &next {
                *per_second.entry(*s).or_default() += 1;
            }
            t.next_verifications_max_in_one_second =
                per_second.values().copied().max().unwrap_or(0);
        }
    }
}

/// Every connection of `expected` Ready with its output Secret holding its token: the
/// instant the last of them was seen; else what is missing.
fn converged(o: &Observed, expected: &[(String, String)], t0: Instant) -> Result<Instant, String> {
    let n = expected.len();
    let mut last = t0;
    let (mut ready, mut published) = (0, 0);
    let mut missing = Vec::new();
    for (name, token) in expected {
        let r = o.ready_since.get(name);
        let s = o.token.get(name).filter(|(t, _)| t == token);
        ready += usize::from(r.is_some());
        published += usize::from(s.is_some());
        match (r, s) {
            (Some(r), Some((_, s))) => last = last.max(*r).max(*s),
            _ if missing.len() < 5 => missing.push(name.as_str()),
            _ => {}
        }
    }
    if ready == n && published == n {
        Ok(last)
    } else {
        Err(format!(
            "{ready}/{n} Ready, {published}/{n} output Secrets; e.g. not yet: {}",
            missing.join(", ")
        ))
    }
}
