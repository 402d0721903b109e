//! `--spread K`: the cost of the source-Secret watches when the connections are spread over K
//! namespaces (a tenant per namespace, one source Secret in each, all holding one credential)
//! and the operator watches all namespaces. Two variants back to back on the same bed and
//! namespaces (the connections deleted between them): every source Secret watched by name (a
//! total limit above K, as before `--source-watch-total-limit` existed), then the operator's
//! defaults. Per variant:
//! convergence of the N connections, the open watches, the operator's sockets, RSS and CPU, the
//! events it receives while every unrelated Secret is updated once, and a restart.

use super::*;

mod table;

use table::{SpreadRun, print_spread};

/// Both variants, their figures printed side by side and written to --json.
pub(crate) async fn spread(args: Args) -> BenchResult<()> {
    let (n, k) = (args.connections, args.spread);
    if k == 0 || n < k {
        return Err("need --spread K ≥ 1 and --connections ≥ K".into());
    }
    let client = trackvia_testsupport::kube::client().await;
    install_crd(&client, Duration::from_secs(60)).await?;
    // Output Secrets are owned by connections: let the garbage collector watch the type first.
    tokio::time::sleep(Duration::from_secs(args.gc_discovery_wait)).await;
    let fake = FakeTrackVia::start().await;
    let (key, token) = (random_word("bench-key-", 24), random_word("bench-tok-", 24));
    fake.set(&key, &token, Behavior::Valid);
    let above = (k + 1).to_string();
    let variants = [
        (
            "every Secret by name",
            vec!["--source-watch-total-limit".to_string(), above],
        ),
        ("defaults", Vec::new()),
    ];
    let namespaces = create_tenants(&client, &args, &key, &token).await?;
    let mut runs = Vec::new();
    let outcome = run_variants(&client, &args, &fake, &namespaces, variants, &mut runs).await;
    // Deleting thousands of namespaces takes the namespace controller minutes: not waited for.
    futures::future::join_all(namespaces.into_iter().map(|ns| ns.cleanup())).await;
    outcome?;
    print_spread(&args, &runs);
    println!("results written to {}", args.json.display());
    Ok(())
}

/// Each variant on the same namespaces; the figures are written after each.
async fn run_variants(
    client: &Client,
    args: &Args,
    fake: &FakeTrackVia,
    namespaces: &[TestNamespace],
    variants: [(&str, Vec<String>); 2],
    runs: &mut Vec<SpreadRun>,
) -> BenchResult<()> {
    for (variant, extra) in variants {
        eprintln!(
            "bench: spread: {variant}: {} connections over {} namespaces",
            args.connections, args.spread
        );
        runs.push(measure_variant(client, args, fake, namespaces, variant, extra).await?);
        write_json(&args.json, runs)?;
        eprintln!("bench: spread: {variant} measured, removing its connections");
        remove_connections(client, args).await?;
    }
    Ok(())
}

/// Delete every connection and wait until they and their output Secrets are gone, so the
/// next variant starts from the same objects.
async fn remove_connections(client: &Client, args: &Args) -> BenchResult<()> {
    let all: Api<TrackViaConnection> = Api::all(client.clone());
    let names: Vec<(String, String)> = all
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| format!("listing connections: {e}"))?
        .items
        .iter()
        .map(|c| (c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    let names = &names;
    for_each_bounded(names.len(), args.setup_concurrency, |i| async move {
        let (ns, name) = &names[i];
        Api::<TrackViaConnection>::namespaced(client.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| format!("deleting connection {ns}/{name}: {e}"))
    })
    .await?;
    let outputs: Api<Secret> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let one = ListParams::default().limit(1);
        let left = all
            .list_metadata(&one)
            .await
            .map_err(|e| e.to_string())?
            .items
            .len()
            + outputs
                .list_metadata(&one.labels(MANAGED_SELECTOR))
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(args.timeout) {
            return Err("connections or output Secrets left after deleting them".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// K namespaces, each with source Secret `src` and its share of the unrelated Secrets.
async fn create_tenants(
    client: &Client,
    args: &Args,
    key: &str,
    token: &str,
) -> BenchResult<Vec<TestNamespace>> {
    let namespaces: Vec<TestNamespace> = stream::iter(0..args.spread)
        .map(|_| TestNamespace::create(client, "tvspread"))
        .buffer_unordered(args.setup_concurrency)
        .collect()
        .await;
    let tenants = &namespaces;
    for_each_bounded(args.spread, args.setup_concurrency, |i| async move {
        let secrets: Api<Secret> = tenants[i].api();
        secrets
            .create(&PostParams::default(), &source_secret("src", key, token))
            .await
            .map(|_| ())
            .map_err(|e| format!("creating a source Secret: {e}"))
    })
    .await?;
    for_each_bounded(
        args.unrelated_secrets,
        args.setup_concurrency,
        |i| async move {
            let secrets: Api<Secret> = tenants[i % tenants.len()].api();
            secrets
                .create(&PostParams::default(), &unrelated_secret(i))
                .await
                .map(|_| ())
                .map_err(|e| format!("creating unrelated Secret {i}: {e}"))
        },
    )
    .await?;
    Ok(namespaces)
}

/// One variant's run: the operator on all namespaces with `extra`.
struct Variant<'a> {
    client: &'a Client,
    args: &'a Args,
    fake: &'a FakeTrackVia,
    tenants: &'a [TestNamespace],
    http: reqwest::Client,
    port: u16,
    extra: Vec<String>,
}

/// Converge, update the unrelated Secrets, restart the operator; the figures.
async fn measure_variant(
    client: &Client,
    args: &Args,
    fake: &FakeTrackVia,
    tenants: &[TestNamespace],
    variant: &str,
    extra: Vec<String>,
) -> BenchResult<SpreadRun> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let v = Variant {
        client,
        args,
        fake,
        tenants,
        http,
        port: free_port(),
        extra,
    };
    let mut run = SpreadRun {
        variant: variant.into(),
        extra_args: v.extra.clone(),
        ..SpreadRun::default()
    };
    let mut operator = v.start().await?;
    v.converge(&operator, &mut run).await?;
    v.update_unrelated(&operator, &mut run).await?;
    operator.stop().await;
    let mut operator = v.restart(&mut run).await?;
    operator.stop().await;
    Ok(run)
}

impl Variant<'_> {
    /// Apply the N connections, wait for all Ready; then the watches and the operator's
    /// sockets and memory.
    async fn converge(&self, operator: &OperatorProcess, run: &mut SpreadRun) -> BenchResult<()> {
        let (args, fake, tenants) = (self.args, self.fake, self.tenants);
        let cpu_before = cpu_seconds(operator.pid())?;
        let started = Instant::now();
        for_each_bounded(args.connections, args.apply_concurrency, |i| async move {
            let name = format!("conn-{i}");
            let body = connection_body(&name, "src", &fake.host(), &args.verify_interval);
            tenants[i % tenants.len()]
                .api::<TrackViaConnection>()
                .patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(body))
                .await
                .map(|_| ())
                .map_err(|e| format!("applying {name}: {e}"))
        })
        .await?;
        wait_all_ready(self.client, args).await?;
        run.convergence_seconds = secs(started.elapsed());
        run.operator_cpu_seconds_convergence = cpu_seconds(operator.pid())? - cpu_before;
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        let o = scrape_operator(&self.http, self.port).await?;
        let watches = |selector: &str| {
            o.get(&format!(
                r#"trackvia_source_secret_watches{{selector="{selector}"}}"#
            ))
        };
        run.source_watches_by_name = watches("name");
        run.source_watches_namespace_wide = watches("namespace");
        run.source_watches_of_all = watches("all");
        run.operator_sockets = sockets(operator.pid())?;
        run.operator_peak_rss_mib = vm_mib(operator.pid(), "VmHWM")?;
        run.operator_rss_mib = vm_mib(operator.pid(), "VmRSS")?;
        run.apiserver_secret_watches = secret_watches_served(self.client).await?;
        Ok(())
    }

    /// Every unrelated Secret updated once: what reaches the operator.
    async fn update_unrelated(
        &self,
        operator: &OperatorProcess,
        run: &mut SpreadRun,
    ) -> BenchResult<()> {
        let (args, tenants) = (self.args, self.tenants);
        let events = "trackvia_secret_watch_events_total";
        let events_before = scrape_operator(&self.http, self.port).await?.get(events);
        let cpu_before = cpu_seconds(operator.pid())?;
        // A new value each time, so each variant's updates change every Secret.
        let touched = &jiff::Timestamp::now().as_millisecond().to_string();
        for_each_bounded(
            args.unrelated_secrets,
            args.setup_concurrency,
            |i| async move {
                let patch = json!({"metadata": {"labels": {"bench-touched": touched}}});
                tenants[i % tenants.len()]
                    .api::<Secret>()
                    .patch(
                        &format!("unrelated-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("updating unrelated Secret {i}: {e}"))
            },
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        let o = scrape_operator(&self.http, self.port).await?;
        run.unrelated_updates = args.unrelated_secrets;
        run.secret_watch_events_during_updates = o.get(events) - events_before;
        run.operator_cpu_seconds_updates = cpu_seconds(operator.pid())? - cpu_before;
        Ok(())
    }

    /// A new process, until it has looked at every connection; it is returned running.
    async fn restart(&self, run: &mut SpreadRun) -> BenchResult<OperatorProcess> {
        let started = Instant::now();
        let operator = self.start().await?;
        loop {
            let o = scrape_operator(&self.http, self.port).await?;
            if o.get("trackvia_initial_sync_done") == 1 {
                break;
            }
            if started.elapsed() > Duration::from_secs(self.args.timeout) {
                return Err("the restarted operator's initial sync was not done in time".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        run.restart_initial_sync_seconds = secs(started.elapsed());
        tokio::time::sleep(Duration::from_secs(self.args.settle)).await;
        run.restart_peak_rss_mib = vm_mib(operator.pid(), "VmHWM")?;
        run.restart_sockets = sockets(operator.pid())?;
        Ok(operator)
    }

    /// The operator watching all namespaces, ready.
    async fn start(&self) -> BenchResult<OperatorProcess> {
        let (args, fake) = (self.args, self.fake);
        let mut argv: Vec<String> = [
            "run",
            "--allowed-hosts",
            &fake.host(),
            "--extra-ca-file",
            &fake.ca_file().display().to_string(),
            "--metrics-addr",
            &format!("127.0.0.1:{}", self.port),
            "--rate-limit",
            &args.rate_limit.to_string(),
            "--concurrency",
            &args.concurrency.to_string(),
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(self.extra.iter().cloned());
        let mut operator = OperatorProcess::spawn(&args.operator, &argv, &[]);
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        while !self
            .http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if !operator.is_running() || started.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "the operator did not get ready:\n{}",
                    log_tail(&operator, 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(operator)
    }
}

/// Every connection of every namespace Ready.
async fn wait_all_ready(client: &Client, args: &Args) -> BenchResult<()> {
    let all: Api<TrackViaConnection> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let listed = all
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = listed
            .items
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.condition("Ready"))
                    .is_some_and(|r| r.status == trackvia_operator::crd::ConditionStatus::True)
            })
            .count();
        if ready == args.connections {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(args.timeout) {
            return Err(format!(
                "{ready} of {} connections Ready in time",
                args.connections
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Watches of Secrets the API server serves (all clients: the operator's, the controller
/// manager's), from its `apiserver_longrunning_gauge`.
async fn secret_watches_served(client: &Client) -> BenchResult<f64> {
    let text = apiserver_metrics(client).await?;
    let scrape = Scrape::parse(&text);
    let watches = scrape.find(
        "apiserver_longrunning_gauge",
        &[("resource", "secrets"), ("verb", "WATCH")],
    );
    Ok(watches.iter().map(|s| s.value).sum())
}

/// Open sockets of a process (its TCP connections to the API server, mostly).
fn sockets(pid: u32) -> BenchResult<usize> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {dir}: {e}"))?;
    Ok(entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count())
}
