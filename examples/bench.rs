//! Scale benchmark of trackvia-operator: N connections sharing K credentials, with U
//! unrelated Secrets in the watched namespace, on a real API server and the fake TrackVia.
//! Run it through `hack/bench`, which builds the release binaries and brings up a bed:
//!
//! ```text
//! hack/bench --connections 1000 --credentials 10 --unrelated-secrets 10000
//! ```
//!
//! It prints a table and writes the same figures as JSON (`--json`). It measures:
//! - convergence: from the first connection applied to every connection Ready with its output
//!   Secret, against a floor: the same API server writing the minimum (N Secret applies + N status
//!   patches) with a plain client at the same concurrency;
//! - TrackVia calls (must be K) and the most calls in any one-second (and sixty-second) window;
//! - the operator's peak RSS (`VmHWM`), and over a steady window after convergence its CPU and the
//!   API server's request counts (`apiserver_request_total` from the server's own `/metrics`);
//! - rotation: from updating a source Secret to the output Secret carrying the new token.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt, ResourceExt};
use serde::Serialize;
use serde_json::json;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_operator::trackvia::Credentials;
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};
use trackvia_testsupport::kube::{TestNamespace, crd_established};
use trackvia_testsupport::metrics::Scrape;
use trackvia_testsupport::{OperatorProcess, free_port};

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
    /// The operator binary (release build).
    #[arg(long)]
    operator: PathBuf,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench-results.json")]
    json: PathBuf,
    /// Pid of the kube-apiserver, to report its CPU too (optional).
    #[arg(long)]
    apiserver_pid: Option<u32>,
    /// Keep the benchmark's namespaces afterwards.
    #[arg(long)]
    keep: bool,
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Default)]
struct Report {
    parameters: Parameters,
    machine: Machine,
    setup: Setup,
    convergence: Convergence,
    floor: Floor,
    trackvia: TrackViaCalls,
    memory: Memory,
    steady: Steady,
    scoping: Scoping,
    rotation: Rotation,
    targets: Vec<Target>,
}

#[derive(Serialize, Default)]
struct Parameters {
    connections: usize,
    credentials: usize,
    unrelated_secrets: usize,
    concurrency: u16,
    rate_limit_per_minute: u32,
    verify_interval: String,
    steady_window_seconds: u64,
    settle_seconds: u64,
    apply_concurrency: usize,
}

#[derive(Serialize, Default)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    kernel: String,
    load_average_at_start: String,
    kubernetes: String,
}

#[derive(Serialize, Default)]
struct Setup {
    unrelated_secrets_seconds: f64,
    operator_ready_seconds: f64,
}

#[derive(Serialize, Default)]
struct Convergence {
    /// First connection applied → every connection Ready with its output Secret.
    seconds: f64,
    /// How long applying the N connections took (inside `seconds`).
    connections_applied_seconds: f64,
    operator_status_writes: u64,
    operator_secret_writes: u64,
    operator_reconciles: u64,
    /// Secrets the operator read (GET) while converging.
    operator_secret_reads: u64,
    /// Secret watch events the operator received while converging.
    operator_secret_watch_events: u64,
    api_requests: u64,
    api_writes: u64,
    api_requests_by_verb_and_resource: BTreeMap<String, u64>,
    apiserver_cpu_seconds: Option<f64>,
    operator_cpu_seconds: f64,
    /// /proc/loadavg right after convergence: other work on the machine skews the timings.
    load_average: String,
}

#[derive(Serialize, Default)]
struct Floor {
    /// N Secret applies + N status patches by a plain client.
    seconds: f64,
    /// Creating the floor's N connections (not part of `seconds`).
    connections_created_seconds: f64,
    concurrency: u16,
    /// convergence.seconds / floor.seconds
    ratio: f64,
    /// From the first connection applied to the last status patched, one pipeline per
    /// connection (apply connection → apply Secret → patch status) at the same concurrency.
    pipelined_seconds: f64,
    /// convergence.seconds / floor.pipelined_seconds
    pipelined_ratio: f64,
    /// Every measurement of `seconds` (the median is used).
    runs: Vec<f64>,
    /// Every measurement of `pipelined_seconds` (the median is used).
    pipelined_runs: Vec<f64>,
}

#[derive(Serialize, Default)]
struct TrackViaCalls {
    calls_at_convergence: usize,
    expected: usize,
    calls_per_credential_max: usize,
    operator_reported_calls: u64,
    peak_calls_in_one_second: usize,
    peak_calls_in_sixty_seconds: usize,
    calls_after_rotations: usize,
    next_verifications_spread_seconds: f64,
    next_verifications_max_in_one_second: usize,
}

#[derive(Serialize, Default)]
struct Memory {
    operator_peak_rss_mib: f64,
    operator_rss_steady_mib: f64,
}

#[derive(Serialize, Default)]
struct Steady {
    window_seconds: f64,
    operator_cpu_seconds: f64,
    operator_cpu_percent_of_core: f64,
    apiserver_cpu_percent_of_core: Option<f64>,
    api_requests_all: u64,
    api_writes_all: u64,
    api_requests_operator_resources: u64,
    api_writes_operator_resources: u64,
    api_requests_by_verb_and_resource: BTreeMap<String, u64>,
    operator_status_writes: u64,
    operator_secret_writes: u64,
    operator_reconciles: u64,
    trackvia_calls: usize,
    watched_connection_changes: u64,
    watched_output_secret_changes: u64,
}

/// Unrelated Secrets changing after convergence: what reaches the operator.
#[derive(Serialize, Default)]
struct Scoping {
    unrelated_secrets_updated: usize,
    /// Secret watch events the operator received meanwhile (its watches are
    /// selected by label and by name, so none).
    operator_secret_watch_events: u64,
    operator_reconciles: u64,
    operator_cpu_seconds: f64,
    source_watches_by_name: u64,
    source_watches_by_namespace: u64,
}

#[derive(Serialize, Default)]
struct Rotation {
    /// A source Secret read by one connection: update → its output Secret updated.
    single_seconds: f64,
    /// A source Secret shared by `shared_outputs` connections.
    shared_outputs: usize,
    shared_first_seconds: f64,
    shared_median_seconds: f64,
    shared_last_seconds: f64,
}

#[derive(Serialize)]
struct Target {
    what: String,
    value: String,
    target: String,
    met: bool,
}

// ---------------------------------------------------------------------------------------------
// Measuring helpers: /proc, metrics text
// ---------------------------------------------------------------------------------------------

type BenchResult<T> = Result<T, String>;

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> BenchResult<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // The command name may hold spaces; the fields after it are fixed.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unexpected /proc/<pid>/stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(3) ... utime(14) stime(15) → indexes 11 and 12.
    let ticks = |i: usize| -> BenchResult<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("no field {} in /proc/{pid}/stat", i + 3))
    };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// A `Vm*` line of /proc/<pid>/status, in MiB.
fn vm_mib(pid: u32, field: &str) -> BenchResult<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        load_average_at_start: load_average(),
        kubernetes: String::new(),
    }
}

/// `apiserver_request_total` summed by (verb, resource).
#[derive(Clone, Default)]
struct ApiCounts(HashMap<(String, String), f64>);

const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];
const OPERATOR_RESOURCES: [&str; 3] = ["secrets", "trackviaconnections", "events"];

impl ApiCounts {
    fn parse(text: &str) -> ApiCounts {
        let mut map = HashMap::new();
        for sample in Scrape::parse(text).samples {
            if sample.name != "apiserver_request_total" {
                continue;
            }
            let get = |k: &str| sample.label(k).to_string();
            let mut resource = get("resource");
            let sub = get("subresource");
            if !sub.is_empty() {
                resource = format!("{resource}/{sub}");
            }
            if resource.is_empty() {
                resource = "(non-resource)".into();
            }
            *map.entry((get("verb"), resource)).or_insert(0.0) += sample.value;
        }
        ApiCounts(map)
    }

    /// self − earlier, without zero rows.
    fn since(&self, earlier: &ApiCounts) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((verb, resource), v) in &self.0 {
            let before = earlier
                .0
                .get(&(verb.clone(), resource.clone()))
                .copied()
                .unwrap_or(0.0);
            let d = (v - before).max(0.0).round() as u64;
            if d > 0 {
                out.insert(format!("{verb} {resource}"), d);
            }
        }
        out
    }
}

fn is_write(key: &str) -> bool {
    key.split_whitespace()
        .next()
        .is_some_and(|v| WRITE_VERBS.contains(&v))
}

fn is_operator_resource(key: &str) -> bool {
    key.split_whitespace().nth(1).is_some_and(|r| {
        let base = r.split('/').next().unwrap_or(r);
        OPERATOR_RESOURCES.contains(&base)
    })
}

fn sum_where(map: &BTreeMap<String, u64>, pred: impl Fn(&str) -> bool) -> u64 {
    map.iter().filter(|(k, _)| pred(k)).map(|(_, v)| v).sum()
}

async fn scrape_apiserver(client: &Client) -> BenchResult<ApiCounts> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| format!("reading the API server's /metrics: {e}"))?;
    Ok(ApiCounts::parse(&text))
}

/// The operator's metrics, summed by metric name.
#[derive(Clone, Default)]
struct OperatorCounts(HashMap<String, f64>);

impl OperatorCounts {
    fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0.0).round() as u64
    }
    fn since(&self, earlier: &OperatorCounts, name: &str) -> u64 {
        self.get(name).saturating_sub(earlier.get(name))
    }
}

async fn scrape_operator(http: &reqwest::Client, port: u16) -> BenchResult<OperatorCounts> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("scraping the operator: {e}"))?
        .text()
        .await
        .map_err(|e| format!("scraping the operator: {e}"))?;
    let mut map = HashMap::new();
    for sample in Scrape::parse(&text).samples {
        *map.entry(sample.name.clone()).or_insert(0.0) += sample.value;
        // Also by series, e.g. `name{selector="name"}`.
        if !sample.labels.is_empty() {
            let labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            *map.entry(format!("{}{{{}}}", sample.name, labels.join(",")))
                .or_insert(0.0) += sample.value;
        }
    }
    Ok(OperatorCounts(map))
}

/// Most events in any window of `width` (times sorted).
fn peak_in_window(times: &[SystemTime], width: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]).unwrap_or_default() >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Watching the outcome
// ---------------------------------------------------------------------------------------------

/// What the benchmark's watches have seen, with the instant each state was first seen.
#[derive(Default)]
struct Observed {
    connections_synced: bool,
    secrets_synced: bool,
    ready_since: HashMap<String, Instant>,
    next_verification: HashMap<String, String>,
    connection_rv: HashMap<String, String>,
    connection_changes: u64,
    token: HashMap<String, (String, Instant)>,
    secret_rv: HashMap<String, String>,
    secret_changes: u64,
}

impl Observed {
    fn connection(&mut self, tvc: &TrackViaConnection, at: Instant) {
        let name = tvc.name_any();
        let rv = tvc.resource_version().unwrap_or_default();
        if self.connection_rv.insert(name.clone(), rv.clone()) != Some(rv) {
            self.connection_changes += 1;
        }
        let status = tvc.status.as_ref();
        let ready = status
            .and_then(|s| s.condition("Ready"))
            .is_some_and(|c| c.status == "True" && c.reason == "Verified");
        if ready {
            self.ready_since.entry(name.clone()).or_insert(at);
        } else {
            self.ready_since.remove(&name);
        }
        if let Some(next) = status.and_then(|s| s.next_verification_time.clone()) {
            self.next_verification.insert(name, next);
        }
    }

    fn secret(&mut self, secret: &Secret, at: Instant) {
        let name = secret.name_any();
        let rv = secret.resource_version().unwrap_or_default();
        if self.secret_rv.insert(name.clone(), rv.clone()) != Some(rv) {
            self.secret_changes += 1;
        }
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get("authToken"))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default();
        let changed = self.token.get(&name).is_none_or(|(t, _)| *t != token);
        if changed {
            self.token.insert(name, (token, at));
        }
    }
}

type Shared = Arc<Mutex<Observed>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Observed> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn_watches(client: &Client, ns: &str, shared: Shared) -> Vec<tokio::task::JoinHandle<()>> {
    let connections: Api<TrackViaConnection> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s1 = shared.clone();
    let a = tokio::spawn(async move {
        let mut events = watcher(connections, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    lock(&s1).connection(&o, at)
                }
                Ok(watcher::Event::InitDone) => lock(&s1).connections_synced = true,
                Ok(_) => {}
                Err(e) => eprintln!("bench: watching connections: {e}"),
            }
        }
    });
    let s2 = shared;
    let b = tokio::spawn(async move {
        let config = watcher::Config::default().labels(MANAGED_SELECTOR);
        let mut events = watcher(secrets, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let at = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    lock(&s2).secret(&o, at)
                }
                Ok(watcher::Event::InitDone) => lock(&s2).secrets_synced = true,
                Ok(_) => {}
                Err(e) => eprintln!("bench: watching output Secrets: {e}"),
            }
        }
    });
    vec![a, b]
}

/// Poll `check` until it returns `Ok`; its `Err` describes the progress for the timeout message.
async fn wait_until<T>(
    shared: &Shared,
    timeout: Duration,
    what: &str,
    operator: &mut OperatorProcess,
    check: impl Fn(&Observed) -> Result<T, String>,
) -> BenchResult<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let progress = match check(&lock(shared)) {
            Ok(v) => return Ok(v),
            Err(p) => p,
        };
        if !operator.is_running() {
            return Err(format!(
                "the operator exited while waiting for {what} ({progress}); last log lines:\n{}",
                log_tail(operator, 40)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {} s waiting for {what}: {progress}; last operator log lines:\n{}",
                timeout.as_secs(),
                log_tail(operator, 40)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_tail(operator: &OperatorProcess, n: usize) -> String {
    let logs = operator.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

fn random_word(prefix: &str, len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let tail: String = (0..len)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
        })
        .collect();
    format!("{prefix}{tail}")
}

fn source_secret(name: &str, key: &str, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("apiKey".to_string(), ByteString(key.as_bytes().to_vec())),
            (
                "authToken".to_string(),
                ByteString(token.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// An unrelated Secret of about 1.5 KiB, like a small TLS or application Secret.
fn unrelated_secret(i: usize) -> Secret {
    let blob = |n: usize| ByteString(random_word("", n).into_bytes());
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("unrelated-{i}")),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                format!("other-app-{}", i % 50),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), blob(1024)),
            ("tls.key".to_string(), blob(256)),
            ("password".to_string(), blob(32)),
        ])),
        ..Secret::default()
    }
}

fn connection_body(name: &str, source: &str, host: &str, interval: &str) -> serde_json::Value {
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": name},
        "spec": {
            "host": host,
            "credentialsSecretRef": {"name": source},
            "tokenExpiresOn": "2099-12-31",
            "verifyInterval": interval,
        },
    })
}

/// Create or replace the CRD (server-side apply of it is refused by Kubernetes 1.20) and wait
/// until the resource is served. Returns when the CRD was created.
async fn install_crd(client: &Client, timeout: Duration) -> BenchResult<jiff::Timestamp> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = TrackViaConnection::crd();
    let name = crd.name_any();
    let deadline = Instant::now() + timeout;
    loop {
        let result = match api.get_opt(&name).await.map_err(|e| e.to_string())? {
            None => api.create(&PostParams::default(), &crd).await.map(|_| ()),
            Some(existing) => {
                let mut replacement = crd.clone();
                replacement.metadata.resource_version = existing.resource_version();
                api.replace(&name, &PostParams::default(), &replacement)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => break,
            Err(kube::Error::Api(e)) if e.code == 409 && Instant::now() < deadline => continue,
            Err(e) => return Err(format!("installing the CRD: {e}")),
        }
    }
    let connections: Api<TrackViaConnection> = Api::all(client.clone());
    loop {
        let current = api.get(&name).await.ok();
        let created = current
            .as_ref()
            .and_then(|c| c.metadata.creation_timestamp.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now);
        let established = current.as_ref().is_some_and(crd_established);
        if established
            && connections
                .list(&ListParams::default().limit(1))
                .await
                .is_ok()
        {
            return Ok(created);
        }
        if Instant::now() >= deadline {
            return Err("the CRD was not served in time".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Longest a batch of the benchmark's own writes may take.
const BATCH_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Run `f` over `0..n` with at most `concurrency` at once; the first error wins.
async fn for_each_bounded<F, Fut>(n: usize, concurrency: usize, f: F) -> BenchResult<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>>,
{
    let batch = stream::iter(0..n)
        .map(f)
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>();
    match tokio::time::timeout(BATCH_LIMIT, batch).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(format!(
            "{n} writes did not finish within {} s",
            BATCH_LIMIT.as_secs()
        )),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

struct Bench {
    args: Args,
    client: Client,
    http: reqwest::Client,
    fake: FakeTrackVia,
    ns: TestNamespace,
    creds: Vec<(String, String)>,
    report: Report,
}

impl Bench {
    fn n(&self) -> usize {
        self.args.connections
    }
    fn k(&self) -> usize {
        self.args.credentials
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.args.timeout)
    }
    fn name(i: usize) -> String {
        format!("conn-{i}")
    }
    /// The source Secret of connection `i`: the last connection has one of its own (holding
    /// a credential others share), so a rotation can be timed for a single output.
    fn source_of(&self, i: usize) -> String {
        if i == self.n() - 1 {
            "src-single".into()
        } else {
            format!("src-{}", i % self.k())
        }
    }

    async fn setup(&mut self) -> BenchResult<()> {
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

    async fn start_operator(&mut self, metrics_port: u16) -> BenchResult<OperatorProcess> {
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
    async fn converge(
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

    async fn steady(
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
            let o = lock(shared);
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
        let o = lock(shared);
        s.watched_connection_changes = o.connection_changes - conn0;
        s.watched_output_secret_changes = o.secret_changes - sec0;
        drop(o);
        self.report.memory.operator_rss_steady_mib = (vm_mib(pid, "VmRSS")? * 10.0).round() / 10.0;
        Ok(())
    }

    /// Give source `source` a new token; wait until `outputs` carry it. Returns the delays.
    /// Update unrelated Secrets (up to 1,000) and count what reaches the operator.
    async fn scoping(&mut self, operator: &OperatorProcess, port: u16) -> BenchResult<()> {
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

    async fn rotate(
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

    async fn rotations(
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

    /// The minimum writes for one connection, as a plain client would make them: its output
    /// Secret (the operator's own rendering) and its status (`template`).
    async fn minimum_writes(
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
        let desired = trackvia_operator::secret::desired_secret(tvc, &self.fake.host(), &creds);
        ns.api::<Secret>()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(|e| format!("floor: applying Secret {name}: {e}"))?;
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
            .map_err(|e| format!("floor: patching status of {name}: {e}"))?;
        Ok(())
    }

    async fn apply_connection(
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

    /// The floor: a plain client making the minimum writes (N Secret applies + N status
    /// patches) at the operator's concurrency, in namespaces the operator does not watch.
    /// First as specified (connections created beforehand, untimed), then pipelined from
    /// the same starting point as the operator's run (apply connection → Secret → status).
    async fn floor(&mut self, template: serde_json::Value) -> BenchResult<()> {
        let runs = self.args.floor_runs.max(1);
        let (mut created, mut writes, mut pipelined) = (Vec::new(), Vec::new(), Vec::new());
        let mut namespaces = Vec::new();
        for run in 1..=runs {
            eprintln!("bench: floor run {run} of {runs}");
            let (c, w, ns) = self.floor_as_specified(&template).await?;
            namespaces.push(ns);
            let (p, ns) = self.floor_pipelined(&template).await?;
            namespaces.push(ns);
            created.push(secs(c));
            writes.push(secs(w));
            pipelined.push(secs(p));
        }
        let convergence = self.report.convergence.seconds;
        let ratio = |d: f64| {
            if d <= 0.0 {
                0.0
            } else {
                (convergence / d * 100.0).round() / 100.0
            }
        };
        let (w, p) = (median(&writes), median(&pipelined));
        self.report.floor = Floor {
            seconds: w,
            connections_created_seconds: median(&created),
            concurrency: self.args.concurrency,
            ratio: ratio(w),
            pipelined_seconds: p,
            pipelined_ratio: ratio(p),
            runs: writes,
            pipelined_runs: pipelined,
        };
        for ns in namespaces {
            if self.args.keep {
                eprintln!("bench: keeping namespace {}", ns.name());
                std::mem::forget(ns);
            } else {
                ns.cleanup().await;
            }
        }
        Ok(())
    }

    /// Create N connections (untimed), then time N Secret applies + N status patches.
    async fn floor_as_specified(
        &self,
        template: &serde_json::Value,
    ) -> BenchResult<(Duration, Duration, TestNamespace)> {
        let n = self.n();
        let concurrency = usize::from(self.args.concurrency);
        let ns = TestNamespace::create(&self.client, "tvbench-floor").await;
        let started = Instant::now();
        let created: Mutex<Vec<Option<TrackViaConnection>>> = Mutex::new(vec![None; n]);
        {
            let (ns, created) = (&ns, &created);
            for_each_bounded(n, self.args.apply_concurrency, |i| async move {
                let tvc = self.apply_connection(ns, i).await?;
                created.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(tvc);
                Ok(())
            })
            .await?;
        }
        let connections_created = started.elapsed();
        let created: Vec<TrackViaConnection> = created
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|t| t.ok_or("floor: a connection was not created"))
            .collect::<Result<_, _>>()?;
        eprintln!(
            "bench: floor: {n} Secret applies + {n} status patches (concurrency {concurrency})"
        );
        let started = Instant::now();
        {
            let (ns, created) = (&ns, &created);
            for_each_bounded(n, concurrency, |i| async move {
                self.minimum_writes(ns, &created[i], i, template).await
            })
            .await?;
        }
        Ok((connections_created, started.elapsed(), ns))
    }

    /// One pipeline per connection from the same start as the operator's run: apply the
    /// connection, then its Secret, then its status.
    async fn floor_pipelined(
        &self,
        template: &serde_json::Value,
    ) -> BenchResult<(Duration, TestNamespace)> {
        let n = self.n();
        let concurrency = usize::from(self.args.concurrency);
        let ns = TestNamespace::create(&self.client, "tvbench-floor2").await;
        eprintln!(
            "bench: floor, pipelined: {n} × (apply connection → Secret → status), concurrency {concurrency}"
        );
        let started = Instant::now();
        {
            let ns = &ns;
            for_each_bounded(n, concurrency, |i| async move {
                let tvc = self.apply_connection(ns, i).await?;
                self.minimum_writes(ns, &tvc, i, template).await
            })
            .await?;
        }
        Ok((started.elapsed(), ns))
    }

    fn judge(&mut self) {
        let r = &self.report;
        let rate = self.args.rate_limit;
        let targets = vec![
            Target {
                what: "convergence ÷ floor".into(),
                value: format!("{:.2}", r.floor.ratio),
                target: "≤ 1.5".into(),
                met: r.floor.ratio <= 1.5,
            },
            Target {
                what: "convergence ÷ pipelined floor".into(),
                value: format!("{:.2}", r.floor.pipelined_ratio),
                target: "≤ 1.5 (same start, informational)".into(),
                met: r.floor.pipelined_ratio <= 1.5,
            },
            Target {
                what: "TrackVia calls until convergence".into(),
                value: r.trackvia.calls_at_convergence.to_string(),
                target: format!("= {}", r.trackvia.expected),
                met: r.trackvia.calls_at_convergence == r.trackvia.expected
                    && r.trackvia.calls_per_credential_max == 1,
            },
            Target {
                what: "peak TrackVia calls in any 60 s".into(),
                value: r.trackvia.peak_calls_in_sixty_seconds.to_string(),
                target: format!("≤ {rate} (--rate-limit per minute)"),
                met: r.trackvia.peak_calls_in_sixty_seconds <= rate as usize,
            },
            Target {
                what: "operator peak RSS".into(),
                value: format!("{:.1} MiB", r.memory.operator_peak_rss_mib),
                target: "≤ 50 MiB".into(),
                met: r.memory.operator_peak_rss_mib <= 50.0,
            },
            Target {
                what: "steady API writes (operator's resources)".into(),
                value: r.steady.api_writes_operator_resources.to_string(),
                target: "0".into(),
                met: r.steady.api_writes_operator_resources == 0
                    && r.steady.operator_status_writes == 0
                    && r.steady.operator_secret_writes == 0,
            },
            Target {
                what: "steady operator CPU".into(),
                value: format!("{:.2} % of a core", r.steady.operator_cpu_percent_of_core),
                target: "< 1 %".into(),
                met: r.steady.operator_cpu_percent_of_core < 1.0,
            },
            Target {
                what: "Secret watch events from unrelated Secrets".into(),
                value: r.scoping.operator_secret_watch_events.to_string(),
                target: "0".into(),
                met: r.scoping.operator_secret_watch_events == 0,
            },
            Target {
                what: "rotation → output Secret updated".into(),
                value: format!("{:.3} s", r.rotation.single_seconds),
                target: "≤ 1 s".into(),
                met: r.rotation.single_seconds <= 1.0,
            },
        ];
        self.report.targets = targets;
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn print_table(r: &Report) {
    let p = &r.parameters;
    let m = &r.machine;
    println!();
    println!(
        "trackvia-operator scale benchmark: N={} connections, K={} credentials, U={} unrelated Secrets",
        p.connections, p.credentials, p.unrelated_secrets
    );
    println!(
        "machine: {} CPUs ({}), {} GiB RAM, Linux {}, load average at start {}; API server {}",
        m.cpus, m.cpu_model, m.memory_gib, m.kernel, m.load_average_at_start, m.kubernetes
    );
    println!(
        "operator: --concurrency {} --rate-limit {}/min, verifyInterval {}",
        p.concurrency, p.rate_limit_per_minute, p.verify_interval
    );
    println!();
    let c = &r.convergence;
    let f = &r.floor;
    let t = &r.trackvia;
    let s = &r.steady;
    let rows: Vec<(String, String)> = vec![
        (
            "convergence: apply N → all Ready + Secret".into(),
            format!("{:.2} s", c.seconds),
        ),
        (
            "  of which applying the N connections".into(),
            format!("{:.2} s", c.connections_applied_seconds),
        ),
        (
            format!(
                "floor: N Secret applies + N status patches (conc. {})",
                f.concurrency
            ),
            format!("{:.2} s", f.seconds),
        ),
        (
            "  floor runs (median above)".to_string(),
            f.runs
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        (
            "ratio convergence ÷ floor".into(),
            format!("{:.2}", f.ratio),
        ),
        (
            "floor, pipelined from the first connection apply".into(),
            format!("{:.2} s", f.pipelined_seconds),
        ),
        (
            "  pipelined floor runs (median above)".into(),
            f.pipelined_runs
                .iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        (
            "ratio convergence ÷ pipelined floor".into(),
            format!("{:.2}", f.pipelined_ratio),
        ),
        (
            "API requests during convergence (writes)".into(),
            format!("{} ({})", c.api_requests, c.api_writes),
        ),
        (
            "operator writes during convergence: status / Secret".into(),
            format!(
                "{} / {}",
                c.operator_status_writes, c.operator_secret_writes
            ),
        ),
        (
            "load average after convergence (1/5/15 min)".into(),
            c.load_average.clone(),
        ),
        (
            "operator Secret reads / Secret watch events".into(),
            format!(
                "{} / {}",
                c.operator_secret_reads, c.operator_secret_watch_events
            ),
        ),
        (
            "operator reconciles / CPU during convergence".into(),
            format!(
                "{} / {:.2} s",
                c.operator_reconciles, c.operator_cpu_seconds
            ),
        ),
        (
            "TrackVia calls until convergence (expected)".into(),
            format!("{} ({})", t.calls_at_convergence, t.expected),
        ),
        (
            "peak TrackVia calls in any 1 s / any 60 s".into(),
            format!(
                "{} / {}",
                t.peak_calls_in_one_second, t.peak_calls_in_sixty_seconds
            ),
        ),
        (
            "next checks: spread / most in one second".into(),
            format!(
                "{:.0} s / {}",
                t.next_verifications_spread_seconds, t.next_verifications_max_in_one_second
            ),
        ),
        (
            "operator peak RSS (VmHWM)".into(),
            format!("{:.1} MiB", r.memory.operator_peak_rss_mib),
        ),
        (
            "operator RSS in steady state".into(),
            format!("{:.1} MiB", r.memory.operator_rss_steady_mib),
        ),
        (
            format!("steady {:.0} s: operator CPU", s.window_seconds),
            format!(
                "{:.2} s = {:.2} % of a core",
                s.operator_cpu_seconds, s.operator_cpu_percent_of_core
            ),
        ),
        (
            "steady: API requests, all clients (writes)".into(),
            format!("{} ({})", s.api_requests_all, s.api_writes_all),
        ),
        (
            "steady: API requests on secrets/tvc/events (writes)".into(),
            format!(
                "{} ({})",
                s.api_requests_operator_resources, s.api_writes_operator_resources
            ),
        ),
        (
            "steady: operator status / Secret writes".into(),
            format!(
                "{} / {}",
                s.operator_status_writes, s.operator_secret_writes
            ),
        ),
        (
            "steady: reconciles / TrackVia calls".into(),
            format!("{} / {}", s.operator_reconciles, s.trackvia_calls),
        ),
        (
            "steady: watched changes, connections / Secrets".into(),
            format!(
                "{} / {}",
                s.watched_connection_changes, s.watched_output_secret_changes
            ),
        ),
        (
            format!(
                "{} unrelated Secrets updated: operator events / reconciles",
                r.scoping.unrelated_secrets_updated
            ),
            format!(
                "{} / {} ({:.2} s CPU)",
                r.scoping.operator_secret_watch_events,
                r.scoping.operator_reconciles,
                r.scoping.operator_cpu_seconds
            ),
        ),
        (
            "source Secret watches: by name / namespace-wide".into(),
            format!(
                "{} / {}",
                r.scoping.source_watches_by_name, r.scoping.source_watches_by_namespace
            ),
        ),
        (
            "rotation → output Secret updated (1 output)".into(),
            format!("{:.3} s", r.rotation.single_seconds),
        ),
        (
            format!(
                "rotation of a shared source ({} outputs): first / median / last",
                r.rotation.shared_outputs
            ),
            format!(
                "{:.3} / {:.3} / {:.3} s",
                r.rotation.shared_first_seconds,
                r.rotation.shared_median_seconds,
                r.rotation.shared_last_seconds
            ),
        ),
    ];
    let mut rows = rows;
    if let Some(cpu) = s.apiserver_cpu_percent_of_core {
        rows.push((
            "steady: kube-apiserver CPU".into(),
            format!("{cpu:.1} % of a core"),
        ));
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!("| {:<width$} | {:>24} |", "measure", "value");
    println!("|{}|{}|", "-".repeat(width + 2), "-".repeat(26));
    for (k, v) in &rows {
        println!("| {k:<width$} | {v:>24} |");
    }
    println!();
    let width = r
        .targets
        .iter()
        .map(|t| t.what.chars().count())
        .max()
        .unwrap_or(0);
    println!(
        "| {:<width$} | {:>18} | {:<36} | {:<6} |",
        "target", "value", "goal", "result"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(width + 2),
        "-".repeat(20),
        "-".repeat(38),
        "-".repeat(8)
    );
    for t in &r.targets {
        println!(
            "| {:<width$} | {:>18} | {:<36} | {:<6} |",
            t.what,
            t.value,
            t.target,
            if t.met { "met" } else { "MISSED" }
        );
    }
    println!();
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
        parameters: Parameters {
            connections: args.connections,
            credentials: args.credentials,
            unrelated_secrets: args.unrelated_secrets,
            concurrency: args.concurrency,
            rate_limit_per_minute: args.rate_limit,
            verify_interval: args.verify_interval.clone(),
            steady_window_seconds: args.steady_window,
            settle_seconds: args.settle,
            apply_concurrency: args.apply_concurrency,
        },
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

    // kube-controller-manager's garbage collector looks for new resource types every 30 s.
    // Owners of a type it does not watch yet are looked up one by one once it does, which
    // would land in the steady window; so a CRD just created gets that long first.
    let crd_age = jiff::Timestamp::now().duration_since(crd_created);
    let gc_wait = Duration::from_secs(bench.args.gc_discovery_wait)
        .saturating_sub(crd_age.try_into().unwrap_or_default());
    if !gc_wait.is_zero() {
        eprintln!(
            "bench: the CRD is new; waiting {:.0} s for the garbage collector to watch it",
            gc_wait.as_secs_f64()
        );
        tokio::time::sleep(gc_wait).await;
    }

    let port = free_port();
    let mut operator = bench.start_operator(port).await?;
    let shared: Shared = Arc::default();
    let watches = spawn_watches(&client, bench.ns.name(), shared.clone());
    let result = async {
        wait_until(
            &shared,
            Duration::from_secs(60),
            "the benchmark's watches",
            &mut operator,
            |o| {
                if o.connections_synced && o.secrets_synced {
                    Ok(())
                } else {
                    Err("not synced".into())
                }
            },
        )
        .await?;
        bench.converge(&shared, &mut operator, port).await?;
        bench.steady(&shared, &mut operator, port).await?;
        bench.scoping(&operator, port).await?;
        bench.rotations(&shared, &mut operator).await?;
        bench.report.memory.operator_peak_rss_mib =
            (vm_mib(operator.pid(), "VmHWM")? * 10.0).round() / 10.0;
        let connections: Api<TrackViaConnection> = bench.ns.api();
        let template = connections
            .get(&Bench::name(1))
            .await
            .map_err(|e| format!("reading conn-1: {e}"))?
            .status
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .ok_or("conn-1 has no status")?;
        Ok::<_, String>(template)
    }
    .await;
    for w in watches {
        w.abort();
    }
    operator.stop().await;
    let log_copy = bench.args.json.with_extension("operator.log");
    if let Err(e) = std::fs::copy(operator.log_file(), &log_copy) {
        eprintln!("bench: could not keep the operator log: {e}");
    }
    let template = result?;
    bench.floor(template).await?;
    bench.judge();
    let Bench {
        ns, report, args, ..
    } = bench;
    if args.keep {
        eprintln!("bench: keeping namespace {}", ns.name());
        std::mem::forget(ns);
    } else {
        ns.cleanup().await;
    }
    Ok(report)
}

fn write_json(path: &Path, report: &Report) -> BenchResult<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let json_path = args.json.clone();
    match run(args).await {
        Ok(report) => {
            print_table(&report);
            match write_json(&json_path, &report) {
                Ok(()) => {
                    println!("results written to {}", json_path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
