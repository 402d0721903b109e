//! The later convergence runs (`--runs`): every connection and output Secret deleted, every
//! credential given a fresh token so that the answers the operator
//! remembers do not apply, and the N connections applied again. The reported convergence
//! is the median of all runs.

use super::*;

impl Bench {
    pub(crate) async fn more_runs(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        port: u16,
    ) -> BenchResult<()> {
        for run in 2..=self.args.runs {
            eprintln!("bench: convergence run {run} of {}", self.args.runs);
            self.delete_connections(shared, operator).await?;
            self.fresh_tokens().await?;
            let (before, timed) = self.converge_once(shared, operator, port).await?;
            let figures = self
                .run_figures(&before, &timed, (operator.pid(), port))
                .await?;
            self.report.convergence.runs.push(figures);
        }
        self.report.convergence.seconds =
            median(self.report.convergence.runs.iter().map(|r| r.seconds));
        Ok(())
    }

    /// Delete every connection, then (once the benchmark's watches have seen them gone, so
    /// that no connection is left to publish them again) every output Secret: deleted by
    /// the benchmark rather than left to the garbage collector, whose client is limited to 20
    /// requests a second. One request per object, `--setup-concurrency` at once: a single
    /// request for 10,000 objects outlives the API server's request timeout. Waits until
    /// the watches have seen the Secrets gone too.
    pub(crate) async fn delete_connections(
        &self,
        shared: &Shared,
        operator: &mut OperatorProcess,
    ) -> BenchResult<()> {
        self.delete_each::<TrackViaConnection>().await?;
        wait_until(
            shared,
            self.timeout(),
            "every connection gone",
            operator,
            |o| match o.connection_rv.len() {
                0 => Ok(()),
                c => Err(format!("{c} connections left")),
            },
        )
        .await?;
        self.delete_each::<Secret>().await?;
        wait_until(
            shared,
            self.timeout(),
            "every output Secret gone",
            operator,
            |o| match o.secret_rv.len() {
                0 => Ok(()),
                s => Err(format!("{s} output Secrets left")),
            },
        )
        .await
    }

    /// Delete the connections (or the output Secrets: `conn-i` names both) one by one.
    async fn delete_each<K>(&self) -> BenchResult<()>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = self.ns.api();
        let api = &api;
        for_each_bounded(self.n(), self.args.setup_concurrency, |i| async move {
            match api.delete(&Bench::name(i), &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(format!("deleting {}: {e}", Bench::name(i))),
            }
        })
        .await
    }

    /// A new token for every credential, in TrackVia and in its source Secrets.
    pub(crate) async fn fresh_tokens(&mut self) -> BenchResult<()> {
        let secrets: Api<Secret> = self.ns.api();
        let single = (self.n() - 1) % self.k();
        for c in 0..self.k() {
            let token = random_word("bench-tok-", 24);
            self.fake.set(&self.creds[c].0, &token, Behavior::Valid);
            self.creds[c].1 = token;
            let mut sources = vec![format!("src-{c}")];
            if c == single {
                sources.push("src-single".into());
            }
            for source in sources {
                let body = json!({"data": {"authToken": base64_of(&self.creds[c].1)}});
                secrets
                    .patch(&source, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(|e| format!("a new token in {source}: {e}"))?;
            }
        }
        Ok(())
    }
}
