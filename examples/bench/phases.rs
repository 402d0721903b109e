//! The phases after convergence: the steady window, scoping and rotation.

use super::*;

impl Bench {
    pub(crate) async fn steady(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        let window = Duration::from_secs(self.args.steady_window);
        eprintln!(
            "bench: settling {} s, then measuring a {} s steady window",
            self.args.settle, self.args.steady_window
        );
        tokio::time::sleep(Duration::from_secs(self.args.settle)).await;
        let pid = operator.pid();
        let (conn0, sec0) = {
            let o = shared.lock();
            (o.connection_changes, o.secret_changes)
        };
        let calls0 = self.fake.total_calls();
        let m0 = scrape_apiserver(&self.client).await?;
        let o0 = scrape_operator(&self.http, port).await?;
        let cpu0 = cpu_seconds(pid)?;
        let api0 = self.args.apiserver_pid.and_then(|p| cpu_seconds(p).ok());
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let cpu1 = cpu_seconds(pid)?;
        let api1 = self.args.apiserver_pid.and_then(|p| cpu_seconds(p).ok());
        let elapsed = started.elapsed();
        let m1 = scrape_apiserver(&self.client).await?;
        let o1 = scrape_operator(&self.http, port).await?;
        if !operator.is_running() {
            return Err("the operator exited during the steady window".into());
        }
        let by = m1.since(&m0);
        let s = &mut self.report.steady;
        s.window_seconds = secs(elapsed);
        s.operator_cpu_seconds = secs(Duration::from_secs_f64((cpu1 - cpu0).max(0.0)));
        s.operator_cpu_percent_of_core =
            ((cpu1 - cpu0).max(0.0) / elapsed.as_secs_f64() * 100.0 * 100.0).round() / 100.0;
        s.apiserver_cpu_percent_of_core = match (api0, api1) {
            (Some(a), Some(b)) => {
                Some(((b - a).max(0.0) / elapsed.as_secs_f64() * 100.0 * 10.0).round() / 10.0)
            }
            _ => None,
        };
        s.api_requests_all = sum_where(&by, |_| true);
        s.api_writes_all = sum_where(&by, is_write);
        s.api_requests_operator_resources = sum_where(&by, is_operator_resource);
        s.api_writes_operator_resources =
            sum_where(&by, |k| is_write(k) && is_operator_resource(k));
        s.api_requests_by_verb_and_resource = by;
        s.operator_status_writes = o1.since(&o0, "trackvia_status_writes_total");
        s.operator_secret_writes = o1.since(&o0, "trackvia_secret_writes_total");
        s.operator_reconciles = o1.since(&o0, "trackvia_reconcile_duration_seconds_count");
        s.trackvia_calls = self.fake.total_calls() - calls0;
        let o = shared.lock();
        s.watched_connection_changes = o.connection_changes - conn0;
        s.watched_output_secret_changes = o.secret_changes - sec0;
        drop(o);
        self.report.memory.operator_rss_steady_mib = (vm_mib(pid, "VmRSS")? * 10.0).round() / 10.0;
        Ok(())
    }

    /// Give source `source` a new token; wait until `outputs` carry it. Returns the delays.
    /// Update unrelated Secrets (up to 1,000) and count what reaches the operator.
    pub(crate) async fn scoping(
        &mut self,
        operator: &OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        let n = self.args.unrelated_secrets.min(1000);
        eprintln!("bench: updating {n} unrelated Secrets");
        let o0 = scrape_operator(&self.http, port).await?;
        let cpu0 = cpu_seconds(operator.pid())?;
        let secrets: Api<Secret> = self.ns.api();
        let api = &secrets;
        for_each_bounded(n, self.args.setup_concurrency, |i| async move {
            let patch = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
            api.patch(
                &format!("unrelated-{i}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("updating unrelated Secret {i}: {e}"))
        })
        .await?;
        // Time for any event to arrive.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let o1 = scrape_operator(&self.http, port).await?;
        let sc = &mut self.report.scoping;
        sc.unrelated_secrets_updated = n;
        sc.operator_secret_watch_events = o1.since(&o0, "trackvia_secret_watch_events_total");
        sc.operator_reconciles = o1.since(&o0, "trackvia_reconcile_duration_seconds_count");
        sc.operator_cpu_seconds = secs(Duration::from_secs_f64(
            (cpu_seconds(operator.pid())? - cpu0).max(0.0),
        ));
        sc.source_watches_by_name = o1.get("trackvia_source_secret_watches{selector=\"name\"}");
        sc.source_watches_by_namespace =
            o1.get("trackvia_source_secret_watches{selector=\"namespace\"}");
        Ok(())
    }

    pub(crate) async fn rotate(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        source: &str,
        credential: usize,
        outputs: &[String],
    ) -> BenchResult<Vec<Duration>> {
        let key = self.creds[credential].0.clone();
        let token = random_word("bench-rot-", 24);
        self.fake.set(&key, &token, Behavior::Valid);
        let secrets: Api<Secret> = self.ns.api();
        let body = json!({"data": {"authToken": base64_of(&token)}});
        let t0 = Instant::now();
        secrets
            .patch(source, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| format!("rotating {source}: {e}"))?;
        let what = format!(
            "the new token of {source} in {} output Secret(s)",
            outputs.len()
        );
        let times = wait_until(shared, self.timeout(), &what, operator, |o| {
            let mut times = Vec::new();
            for name in outputs {
                match o.token.get(name) {
                    Some((t, at)) if *t == token => times.push(at.duration_since(t0)),
                    _ => {}
                }
            }
            if times.len() == outputs.len() {
                Ok(times)
            } else {
                Err(format!("{}/{} updated", times.len(), outputs.len()))
            }
        })
        .await?;
        Ok(times)
    }

    pub(crate) async fn rotations(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
    ) -> BenchResult<()> {
        let n = self.n();
        let single = vec![Bench::name(n - 1)];
        let credential = (n - 1) % self.k();
        eprintln!("bench: rotating src-single (1 output)");
        let t = self
            .rotate(shared, operator, "src-single", credential, &single)
            .await?;
        self.report.rotation.single_seconds = secs(t[0]);

        let shared_outputs: Vec<String> = (0..n - 1)
            .filter(|i| i % self.k() == 0)
            .map(Bench::name)
            .collect();
        eprintln!("bench: rotating src-0 ({} outputs)", shared_outputs.len());
        let mut t = self
            .rotate(shared, operator, "src-0", 0, &shared_outputs)
            .await?;
        t.sort();
        let r = &mut self.report.rotation;
        r.shared_outputs = t.len();
        r.shared_first_seconds = secs(t[0]);
        r.shared_median_seconds = secs(t[t.len() / 2]);
        r.shared_last_seconds = secs(t[t.len() - 1]);
        self.report.trackvia.calls_after_rotations = self.fake.total_calls();
        Ok(())
    }
}
