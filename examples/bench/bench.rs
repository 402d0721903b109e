//! The run's state and its first phases: set-up, starting the operator, convergence.

use super::*;

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

pub(crate) struct Bench {
    pub(crate) args: Args,
    pub(crate) client: Client,
    pub(crate) http: reqwest::Client,
    pub(crate) fake: FakeTrackVia,
    pub(crate) ns: TestNamespace,
    pub(crate) creds: Vec<(String, String)>,
    pub(crate) report: Report,
}

impl Bench {
    pub(crate) fn n(&self) -> usize {
        self.args.connections
    }
    pub(crate) fn k(&self) -> usize {
        self.args.credentials
    }
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout)
    }
    pub(crate) fn name(i: usize) -> String {
        format!("conn-{i}")
    }
    /// The source Secret of connection `i`: the last connection has one of its own (holding
    /// a credential others share), so a rotation can be timed for a single output.
    pub(crate) fn source_of(&self, i: usize) -> String {
        if i == self.n() - 1 {
            "src-single".into()
        } else {
            format!("src-{}", i % self.k())
        }
    }

    pub(crate) async fn setup(&mut self) -> BenchResult<()> {
        let secrets: Api<Secret> = self.ns.api();
        for _ in 0..self.k() {
            let (key, token) = (random_word("bench-key-", 24), random_word("bench-tok-", 24));
            self.fake.set(&key, &token, Behavior::Valid);
            self.creds.push((key, token));
        }
        let mut sources: Vec<(String, usize)> =
            (0..self.k()).map(|i| (format!("src-{i}"), i)).collect();
        sources.push(("src-single".into(), (self.n() - 1) % self.k()));
        for (name, c) in sources {
            let (key, token) = &self.creds[c];
            secrets
                .create(&PostParams::default(), &source_secret(&name, key, token))
                .await
                .map_err(|e| format!("creating source Secret {name}: {e}"))?;
        }

        eprintln!(
            "bench: creating {} unrelated Secrets in {} (not measured)",
            self.args.unrelated_secrets,
            self.ns.name()
        );
        let started = Instant::now();
        let api = &secrets;
        for_each_bounded(
            self.args.unrelated_secrets,
            self.args.setup_concurrency,
            |i| async move {
                api.create(&PostParams::default(), &unrelated_secret(i))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("creating unrelated Secret {i}: {e}"))
            },
        )
        .await?;
        self.report.setup.unrelated_secrets_seconds = secs(started.elapsed());
        Ok(())
    }

    pub(crate) async fn start_operator(
        &mut self,
        metrics_port: u16,
    ) -> BenchResult<OperatorProcess> {
        let args: Vec<String> = [
            "run",
            "--namespaces",
            self.ns.name(),
            "--allowed-hosts",
            &self.fake.host(),
            "--extra-ca-file",
            &self.fake.ca_file().display().to_string(),
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--rate-limit",
            &self.args.rate_limit.to_string(),
            "--concurrency",
            &self.args.concurrency.to_string(),
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !self.args.operator.is_file() {
            return Err(format!(
                "operator binary {} not found",
                self.args.operator.display()
            ));
        }
        let started = Instant::now();
        let mut operator = OperatorProcess::spawn(&self.args.operator, &args, &[]);
        let url = format!("http://127.0.0.1:{metrics_port}/readyz");
        loop {
            let ok = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if !operator.is_running() {
                return Err(format!(
                    "the operator exited at start-up:\n{}",
                    log_tail(&operator, 40)
                ));
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "the operator was not ready after 120 s:\n{}",
                    log_tail(&operator, 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.report.setup.operator_ready_seconds = secs(started.elapsed());
        Ok(operator)
    }

    /// Apply the N connections and wait until every one is Ready with its output Secret.
    /// Returns the instant of the first apply.
    pub(crate) async fn converge(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        let api: Api<TrackViaConnection> = self.ns.api();
        let host = self.fake.host();
        let cpu0 = cpu_seconds(operator.pid())?;
        let apiserver_cpu0 = self.args.apiserver_pid.and_then(|p| cpu_seconds(p).ok());
        let m0 = scrape_apiserver(&self.client).await?;
        let o0 = scrape_operator(&self.http, port).await?;

        eprintln!(
            "bench: applying {} connections (concurrency {})",
            self.n(),
            self.args.apply_concurrency
        );
        let t0 = Instant::now();
        let (api_ref, host_ref, this) = (&api, &host, &*self);
        for_each_bounded(self.n(), self.args.apply_concurrency, |i| async move {
            let name = Bench::name(i);
            let body = connection_body(
                &name,
                &this.source_of(i),
                host_ref,
                &this.args.verify_interval,
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
        .await?;
        let applied = t0.elapsed();
        eprintln!(
            "bench: applied in {:.1} s; waiting for Ready",
            applied.as_secs_f64()
        );

        let n = self.n();
        let expected: Vec<String> = (0..n).map(|i| self.creds[i % self.k()].1.clone()).collect();
        let done = wait_until(
            shared,
            self.timeout(),
            "every connection Ready with its output Secret",
            operator,
            |o| {
                let mut last = t0;
                let (mut ready, mut published) = (0, 0);
                let mut missing = Vec::new();
                for (i, token) in expected.iter().enumerate() {
                    let name = Bench::name(i);
                    let r = o.ready_since.get(&name);
                    let s = o.token.get(&name).filter(|(t, _)| t == token);
                    ready += usize::from(r.is_some());
                    published += usize::from(s.is_some());
                    match (r, s) {
                        (Some(r), Some((_, s))) => last = last.max(*r).max(*s),
                        _ if missing.len() < 5 => missing.push(name),
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
            },
        )
        .await?;
        let elapsed = done.duration_since(t0);
        eprintln!("bench: converged in {:.2} s", elapsed.as_secs_f64());

        let load_average = load_average();
        let m1 = scrape_apiserver(&self.client).await?;
        let o1 = scrape_operator(&self.http, port).await?;
        let by = m1.since(&m0);
        let c = &mut self.report.convergence;
        c.load_average = load_average;
        c.seconds = secs(elapsed);
        c.connections_applied_seconds = secs(applied);
        c.api_requests = sum_where(&by, |_| true);
        c.api_writes = sum_where(&by, is_write);
        c.api_requests_by_verb_and_resource = by;
        c.operator_status_writes = o1.since(&o0, "trackvia_status_writes_total");
        c.operator_secret_writes = o1.since(&o0, "trackvia_secret_writes_total");
        c.operator_reconciles = o1.since(&o0, "trackvia_reconcile_duration_seconds_count");
        c.operator_secret_reads = o1.since(&o0, "trackvia_secret_reads_total");
        c.operator_secret_watch_events = o1.since(&o0, "trackvia_secret_watch_events_total");
        c.operator_cpu_seconds = secs(Duration::from_secs_f64(
            (cpu_seconds(operator.pid())? - cpu0).max(0.0),
        ));
        c.apiserver_cpu_seconds = match (self.args.apiserver_pid, apiserver_cpu0) {
            (Some(p), Some(c0)) => cpu_seconds(p).ok().map(|c1| (c1 - c0).max(0.0)),
            _ => None,
        };

        // TrackVia calls so far.
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

        // How the next checks are spread.
        let mut next: Vec<i64> = lock(shared)
            .next_verification
            .values()
            .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
            .collect();
        next.sort();
        if let (Some(first), Some(last)) = (next.first(), next.last()) {
            t.next_verifications_spread_seconds = (last - first) as f64;
            let mut per_second: HashMap<i64, usize> = HashMap::new();
            for s in &next {
                *per_second.entry(*s).or_default() += 1;
            }
            t.next_verifications_max_in_one_second =
                per_second.values().copied().max().unwrap_or(0);
        }
        Ok(())
    }
}
