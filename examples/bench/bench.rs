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

    /// The operator's command line, `extra` at its end.
    fn operator_args(&self, metrics_port: u16, extra: &[String]) -> Vec<String> {
        [
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
        .chain(extra.iter().cloned())
        .collect()
    }

    pub(crate) async fn start_operator(
        &mut self,
        metrics_port: u16,
    ) -> BenchResult<OperatorProcess> {
        let (operator, ready) = self.spawn_ready(metrics_port, &[]).await?;
        self.report.setup.operator_ready_seconds = secs(ready);
        Ok(operator)
    }

    /// Start the operator as [`Bench::start_operator`] does, with `extra` arguments; the
    /// process and how long it took to be ready.
    pub(crate) async fn spawn_ready(
        &self,
        metrics_port: u16,
        extra: &[String],
    ) -> BenchResult<(OperatorProcess, Duration)> {
        let args = self.operator_args(metrics_port, extra);
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
        Ok((operator, started.elapsed()))
    }
}
