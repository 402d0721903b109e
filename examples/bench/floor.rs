//! The floor: the minimum writes a plain client makes for the same connections.

use super::*;

impl Bench {
    /// The minimum writes for one connection, as a plain client would make them: its output
    /// Secret (the operator's own rendering, created) and its status (`template`, applied).
    pub(crate) async fn minimum_writes(
        &self,
        ns: &TestNamespace,
        tvc: &TrackViaConnection,
        i: usize,
        template: &serde_json::Value,
    ) -> BenchResult<()> {
        let name = tvc.name_any();
        let (api_key, auth_token) = self.creds[i % self.k()].clone();
        let creds = Credentials {
            api_key,
            auth_token,
        };
        let desired =
            trackvia_operator::controller::secret::desired_secret(tvc, &self.fake.host(), &creds);
        // A create, as the operator writes a new output Secret (cheaper for the API server
        // than an apply).
        let params = PostParams {
            field_manager: Some(MANAGER.to_string()),
            ..PostParams::default()
        };
        ns.api::<Secret>()
            .create(&params, &desired)
            .await
            .map_err(|e| format!("floor: creating Secret {name}: {e}"))?;
        let mut status = template.clone();
        status["secretName"] = json!(name);
        let body = json!({
            "apiVersion": "trackvia.io/v1alpha1",
            "kind": "TrackViaConnection",
            "status": status,
        });
        ns.api::<TrackViaConnection>()
            .patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| format!("floor: applying status of {name}: {e}"))?;
        Ok(())
    }

    pub(crate) async fn apply_connection(
        &self,
        ns: &TestNamespace,
        i: usize,
    ) -> BenchResult<TrackViaConnection> {
        let name = Bench::name(i);
        let body = connection_body(
            &name,
            &self.source_of(i),
            &self.fake.host(),
            &self.args.verify_interval,
        );
        ns.api::<TrackViaConnection>()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| format!("applying {name} in {}: {e}", ns.name()))
    }

    /// The floor: a plain client making the minimum writes (N Secret creates + N status
    /// applies) at the operator's concurrency, in namespaces the operator does not watch,
    /// watched by the benchmark as the operator's runs are.
    /// First as specified (connections created beforehand, untimed), then with the
    /// connection applies, as the operator's run has them.
    pub(crate) async fn floor(&mut self, template: serde_json::Value) -> BenchResult<()> {
        let runs = self.args.floor_runs.max(1);
        let (mut created, mut writes, mut with_applies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut writes_cpu, mut with_applies_cpu) = (Vec::new(), Vec::new());
        let mut namespaces = Vec::new();
        for run in 1..=runs {
            eprintln!("bench: floor run {run} of {runs}");
            let (c, (w, w_cpu), ns) = self.floor_as_specified(&template).await?;
            namespaces.push(ns);
            let ((a, a_cpu), ns) = self.floor_with_applies(&template).await?;
            namespaces.push(ns);
            writes_cpu.push(w_cpu);
            with_applies_cpu.push(a_cpu);
            created.push(secs(c));
            writes.push(secs(w));
            with_applies.push(secs(a));
        }
        let ratio_of = |of: f64, d: f64| {
            if d <= 0.0 {
                0.0
            } else {
                (of / d * 100.0).round() / 100.0
            }
        };
        let convergence = self.report.convergence.seconds;
        let ratio = |d: f64| ratio_of(convergence, d);
        let (w, a) = (
            median(writes.iter().copied()),
            median(with_applies.iter().copied()),
        );
        self.report.cold_start.ratio = ratio_of(self.report.cold_start.seconds, w);
        self.report.floor = Floor {
            seconds: w,
            connections_created_seconds: median(created),
            concurrency: self.args.concurrency,
            ratio: ratio(w),
            with_applies_seconds: a,
            ratio_with_applies: ratio(a),
            runs: writes,
            with_applies_runs: with_applies,
            runs_cpu: writes_cpu,
            with_applies_runs_cpu: with_applies_cpu,
        };
        for ns in namespaces {
            if self.args.keep {
                eprintln!("bench: keeping namespace {}", ns.name());
                std::mem::forget(ns);
            } else {
                // Gone before anything else is measured: the namespace controller's
                // deletes would count among the API server's requests.
                ns.cleanup_and_wait(self.timeout()).await;
            }
        }
        Ok(())
    }

    /// Create N connections (untimed), then time N Secret creates + N status applies.
    pub(crate) async fn floor_as_specified(
        &self,
        template: &serde_json::Value,
    ) -> BenchResult<(Duration, (Duration, CpuUsed), TestNamespace)> {
        let n = self.n();
        let concurrency = usize::from(self.args.concurrency);
        let ns = TestNamespace::create(&self.client, "tvbench-floor").await;
        let started = Instant::now();
        let created: Mutex<Vec<Option<TrackViaConnection>>> = Mutex::new(vec![None; n]);
        {
            let (ns, created) = (&ns, &created);
            for_each_bounded(n, self.args.apply_concurrency, |i| async move {
                let tvc = self.apply_connection(ns, i).await?;
                created.lock()[i] = Some(tvc);
                Ok(())
            })
            .await?;
        }
        let connections_created = started.elapsed();
        let created: Vec<TrackViaConnection> = created
            .into_inner()
            .into_iter()
            .map(|t| t.ok_or("floor: a connection was not created"))
            .collect::<Result<_, _>>()?;
        eprintln!(
            "bench: floor: {n} Secret creates + {n} status applies (concurrency {concurrency})"
        );
        let observers = Observers::listed(&self.client, ns.name(), self.timeout()).await?;
        let cpu = SharedCpu::now(&self.args);
        let started = Instant::now();
        {
            let (ns, created) = (&ns, &created);
            for_each_bounded(n, concurrency, |i| async move {
                self.minimum_writes(ns, &created[i], i, template).await
            })
            .await?;
        }
        let timed = (started.elapsed(), SharedCpu::now(&self.args).since(&cpu));
        drop(observers);
        Ok((connections_created, timed, ns))
    }

    /// The floor with the applies: the requests of a convergence run and its concurrency,
    /// without the operator. The connections are applied `--apply-concurrency` at once, as
    /// the convergence run applies them, and a second pool of `--concurrency` writers (the
    /// operator's) writes each connection's Secret and status as soon as its apply returned.
    pub(crate) async fn floor_with_applies(
        &self,
        template: &serde_json::Value,
    ) -> BenchResult<((Duration, CpuUsed), TestNamespace)> {
        let n = self.n();
        let (applying, writing) = (
            self.args.apply_concurrency,
            usize::from(self.args.concurrency),
        );
        let ns = TestNamespace::create(&self.client, "tvbench-floor2").await;
        eprintln!(
            "bench: floor with the applies: {n} connection applies ({applying} at once) and, as each returns, its Secret and status ({writing} at once)"
        );
        let (applied, to_write) =
            futures::channel::mpsc::unbounded::<(usize, TrackViaConnection)>();
        let observers = Observers::listed(&self.client, ns.name(), self.timeout()).await?;
        let cpu = SharedCpu::now(&self.args);
        let started = Instant::now();
        {
            let ns = &ns;
            let applies = async move {
                let result = for_each_bounded(n, applying, |i| {
                    let applied = applied.clone();
                    async move {
                        let tvc = self.apply_connection(ns, i).await?;
                        applied
                            .unbounded_send((i, tvc))
                            .map_err(|_| "floor: the writers stopped".to_string())
                    }
                })
                .await;
                drop(applied);
                result
            };
            let writes = each_bounded(to_write, n, writing, |(i, tvc)| async move {
                self.minimum_writes(ns, &tvc, i, template).await
            });
            let (applies, writes) = futures::join!(applies, writes);
            // The writes' error first: a failed write ends the writers, and the applies then
            // only report that the writers stopped.
            writes?;
            applies?;
        }
        let timed = (started.elapsed(), SharedCpu::now(&self.args).since(&cpu));
        drop(observers);
        Ok((timed, ns))
    }
}
