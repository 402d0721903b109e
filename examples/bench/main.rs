//! Scale benchmark of trackvia-operator: N connections sharing K credentials, with U
//! unrelated Secrets in the watched namespace, on a real API server and the fake TrackVia.
//! Run it through `hack/bench`, which builds it and the image's static operator binary and
//! brings up a bed:
//!
//! ```text
//! hack/bench --connections 1000 --credentials 10 --unrelated-secrets 10000
//! ```
//!
//! It prints a table and writes the same figures as JSON (`--json`). It measures:
//! - convergence: from the first connection applied to every connection Ready with its output
//!   Secret, against a floor: the same API server writing the minimum (N Secret creates + N status
//!   applies) with a plain client at the same concurrency;
//! - TrackVia calls (must be K) and the most calls in any one-second (and sixty-second) window;
//! - the operator's peak RSS (`VmHWM`), and over a steady window after convergence its CPU and the
//!   API server's request counts (`apiserver_request_total` from the server's own `/metrics`);
//! - rotation: from updating a source Secret to the output Secret carrying the new token;
//! - restart: killing the operator and starting it again, until its initial sync is done (time,
//!   TrackVia calls, API writes, peak RSS of the new process);
//! - handover: two processes with leader election, the leader stopped; the same figures for
//!   the standby taking over;
//! - convergence again (`--runs`, 3 by default): every connection deleted and applied again
//!   with fresh tokens; the median is reported and judged against the floor.
//! - cold start (`--cold-runs`, 3 by default): the N connections applied while no operator
//!   runs, then the operator started; until every connection is Ready with its output Secret.
//!   Only the operator writes meanwhile, so the median is judged against the floor one to one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt, ResourceExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_operator::trackvia::Credentials;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::kube::{TestNamespace, crd_established};
use trackvia_testsupport::metrics::Scrape;
use trackvia_testsupport::{OperatorProcess, free_port};

mod bench;
mod cold;
mod converge;
mod curve;
mod floor;
mod handover;
mod measure;
mod objects;
mod observe;
mod phases;
mod repeat;
mod report;
mod restart;
mod spread;
mod table;
mod targets;

use bench::*;
use curve::{Curve, CurvePoint, print_curve};
use measure::*;
use objects::*;
use observe::*;
use report::*;
use restart::Gone;
use table::print_table;

/// Kernel clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Field manager of the benchmark's own writes.
const MANAGER: &str = "trackvia-bench";

/// Label of the operator's output Secrets.
const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=trackvia-operator";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bench",
    about = "Scale benchmark of trackvia-operator against the API server in KUBECONFIG",
    args_override_self = true
)]
struct Args {
    /// TrackViaConnections to create.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Distinct credentials (API key + token) shared by the connections.
    #[arg(long, default_value_t = 10)]
    credentials: usize,
    /// Unrelated Secrets created in the watched namespace before the operator starts.
    #[arg(long, default_value_t = 10000)]
    unrelated_secrets: usize,
    /// Reconcile concurrency of the operator, and concurrency of the floor's plain client.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// The operator's TrackVia rate limit (calls a minute).
    #[arg(long, default_value_t = 60)]
    rate_limit: u32,
    /// spec.verifyInterval of every connection.
    #[arg(long, default_value = "1h")]
    verify_interval: String,
    /// Seconds of the steady-state window after convergence.
    #[arg(long, default_value_t = 60)]
    steady_window: u64,
    /// Seconds to wait after convergence before the steady window starts.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Concurrency of the benchmark's own writes (applying connections, setup).
    #[arg(long, default_value_t = 16)]
    apply_concurrency: usize,
    /// Concurrency of the uncounted setup (unrelated Secrets).
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// How often convergence is measured (the median is reported): every connection is
    /// deleted and applied again, with fresh tokens.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// How often the operator is started on N connections applied while none ran (the
    /// median is reported and judged against the floor).
    #[arg(long, default_value_t = 3)]
    cold_runs: usize,
    /// How often the floor is measured (the median is reported; the machine may be shared).
    #[arg(long, default_value_t = 3)]
    floor_runs: usize,
    /// Seconds a newly created CRD must exist before connections are applied (the garbage
    /// collector of kube-controller-manager discovers new resource types every 30 s).
    #[arg(long, default_value_t = 35)]
    gc_discovery_wait: u64,
    /// Seconds any single wait may take before the run fails.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The operator binary: `hack/bench` passes the image's static one.
    #[arg(long)]
    operator: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench-results.json")]
    json: PathBuf,
    /// Pid of the kube-apiserver, to report its CPU too (optional).
    #[arg(long)]
    apiserver_pid: Option<u32>,
    /// Pid of etcd, to report its CPU too (optional).
    #[arg(long)]
    etcd_pid: Option<u32>,
    /// Run the whole benchmark once per N (comma-separated, e.g. 1000,3000,10000), each in
    /// its own namespace with its own operator; print the cost curve and write it, with every
    /// run's report, to --json, and as tab-separated values to the same path ending in .tsv.
    #[arg(long, value_delimiter = ',')]
    curve: Vec<usize>,
    /// Instead of the above: spread the connections over this many namespaces, one source
    /// Secret in each (and the unrelated Secrets too), and measure the source watches of an
    /// operator on all namespaces, every Secret by name against the defaults (see spread/).
    #[arg(long, default_value_t = 0)]
    spread: usize,
    /// Keep the benchmark's namespaces afterwards.
    #[arg(long)]
    keep: bool,
}

async fn run(args: Args) -> BenchResult<Report> {
    if args.credentials == 0 || args.connections <= args.credentials {
        return Err("need --credentials ≥ 1 and --connections > --credentials".into());
    }
    let client = trackvia_testsupport::kube::client().await;
    let mut machine = machine();
    machine.kubernetes = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .map_err(|e| format!("reaching the API server: {e}"))?;
    let crd_created = install_crd(&client, Duration::from_secs(60)).await?;
    let fake = FakeTrackVia::start().await;
    let ns = TestNamespace::create(&client, "tvbench").await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let report = Report {
        parameters: parameters(&args),
        machine,
        ..Report::default()
    };
    let mut bench = Bench {
        args,
        client: client.clone(),
        http,
        fake,
        ns,
        creds: Vec::new(),
        report,
    };
    eprintln!(
        "bench: namespace {}, fake TrackVia at {}",
        bench.ns.name(),
        bench.fake.host()
    );
    bench.setup().await?;
    bench.wait_gc_discovery(crd_created).await;
    let template = bench.with_operator().await?;
    bench.floor(template).await?;
    bench.judge();
    let Bench {
        ns, report, args, ..
    } = bench;
    // Written before the namespace is deleted: a timeout there loses no figure.
    write_json(&args.json, &report)?;
    if args.keep {
        eprintln!("bench: keeping namespace {}", ns.name());
        std::mem::forget(ns);
    } else {
        // Gone before the next run of a curve starts (see `floor`).
        ns.cleanup_and_wait(Duration::from_secs(args.timeout)).await;
    }
    Ok(report)
}

fn parameters(args: &Args) -> Parameters {
    Parameters {
        operator: args.operator.display().to_string(),
        connections: args.connections,
        credentials: args.credentials,
        unrelated_secrets: args.unrelated_secrets,
        concurrency: args.concurrency,
        rate_limit_per_minute: args.rate_limit,
        verify_interval: args.verify_interval.clone(),
        steady_window_seconds: args.steady_window,
        settle_seconds: args.settle,
        apply_concurrency: args.apply_concurrency,
    }
}

impl Bench {
    /// kube-controller-manager's garbage collector looks for new resource types every 30 s.
    /// Owners of a type it does not watch yet are looked up one by one once it does, which
    /// would land in the steady window; so a CRD just created gets that long first.
    async fn wait_gc_discovery(&self, crd_created: jiff::Timestamp) {
        let crd_age = jiff::Timestamp::now().duration_since(crd_created);
        let gc_wait = Duration::from_secs(self.args.gc_discovery_wait)
            .saturating_sub(crd_age.try_into().unwrap_or_default());
        if !gc_wait.is_zero() {
            eprintln!(
                "bench: the CRD is new; waiting {:.0} s for the garbage collector to watch it",
                gc_wait.as_secs_f64()
            );
            tokio::time::sleep(gc_wait).await;
        }
    }

    /// Every phase that runs the operator; the status of conn-1, the floor's template.
    async fn with_operator(&mut self) -> BenchResult<serde_json::Value> {
        let port = free_port();
        let mut operator = self.start_operator(port).await?;
        let shared: Shared = Arc::default();
        let watches = spawn_watches(&self.client, self.ns.name(), shared.clone());
        let result = self.phases(&shared, &mut operator, port).await;
        for w in watches {
            w.abort();
        }
        operator.stop().await;
        let log_copy = self.args.json.with_extension("operator.log");
        if let Err(e) = std::fs::copy(operator.log_file(), &log_copy) {
            eprintln!("bench: could not keep the operator log: {e}");
        }
        result
    }

    async fn phases(
        &mut self,
        shared: &Shared,
        operator: &mut OperatorProcess,
        mut port: u16,
    ) -> BenchResult<serde_json::Value> {
        wait_until(
            shared,
            Duration::from_secs(60),
            "the benchmark's watches",
            operator,
            |o| {
                if o.listed() {
                    Ok(())
                } else {
                    Err("not synced".into())
                }
            },
        )
        .await?;
        self.converge(shared, operator, port).await?;
        self.steady(shared, operator, port).await?;
        self.scoping(operator, port).await?;
        self.rotations(shared, operator).await?;
        self.report.memory.operator_peak_rss_mib =
            (vm_mib(operator.pid(), "VmHWM")? * 10.0).round() / 10.0;
        self.restart(operator, port).await?;
        self.handover(operator, &mut port).await?;
        self.more_runs(shared, operator, port).await?;
        self.cold_starts(shared, operator, &mut port).await?;
        let connections: Api<TrackViaConnection> = self.ns.api();
        connections
            .get(&Bench::name(1))
            .await
            .map_err(|e| format!("reading conn-1: {e}"))?
            .status
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .ok_or_else(|| "conn-1 has no status".to_string())
    }
}

fn write_json(path: &Path, report: &impl Serialize) -> BenchResult<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// One run at --connections.
async fn single(args: Args) -> BenchResult<()> {
    let json_path = args.json.clone();
    let report = run(args).await?;
    print_table(&report);
    println!("results written to {}", json_path.display());
    Ok(())
}

/// One run per N of --curve, then the curve.
async fn curve(args: Args) -> BenchResult<()> {
    let mut reports = Vec::new();
    for &n in &args.curve {
        eprintln!("bench: curve: N = {n}");
        let mut point = args.clone();
        point.connections = n;
        point.json = args.json.with_extension(format!("{n}.json"));
        let report = run(point).await?;
        print_table(&report);
        reports.push(report);
    }
    let points: Vec<CurvePoint> = reports.iter().map(curve::point).collect();
    print_curve(&points);
    let tsv_path = args.json.with_extension("tsv");
    std::fs::write(&tsv_path, curve::tsv(&points))
        .map_err(|e| format!("writing {}: {e}", tsv_path.display()))?;
    write_json(&args.json, &Curve { points, reports })?;
    println!(
        "results written to {} and {}",
        args.json.display(),
        tsv_path.display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = if args.spread > 0 {
        spread::spread(args).await
    } else if args.curve.is_empty() {
        single(args).await
    } else {
        curve(args).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
