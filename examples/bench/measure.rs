//! Measuring: CPU and memory from /proc, the API server's and the operator's request
//! counters (parsed by testsupport's one `/metrics` parser).

use super::*;

// ---------------------------------------------------------------------------------------------
// Measuring helpers: /proc, metrics text
// ---------------------------------------------------------------------------------------------

pub(crate) type BenchResult<T> = Result<T, String>;

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> BenchResult<f64> {
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
pub(crate) fn vm_mib(pid: u32, field: &str) -> BenchResult<f64> {
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
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn machine() -> Machine {
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
pub(crate) struct ApiCounts(pub(crate) HashMap<(String, String), f64>);

pub(crate) const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];
pub(crate) const OPERATOR_RESOURCES: [&str; 3] = ["secrets", "trackviaconnections", "events"];

impl ApiCounts {
    pub(crate) fn parse(text: &str) -> ApiCounts {
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
            if get("code") == "404" {
                resource.push_str(" (not found)");
            }
            *map.entry((get("verb"), resource)).or_insert(0.0) += sample.value;
        }
        ApiCounts(map)
    }

    /// self − earlier, without zero rows.
    pub(crate) fn since(&self, earlier: &ApiCounts) -> BTreeMap<String, u64> {
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

pub(crate) fn is_write(key: &str) -> bool {
    key.split_whitespace()
        .next()
        .is_some_and(|v| WRITE_VERBS.contains(&v))
}

pub(crate) fn is_operator_resource(key: &str) -> bool {
    key.split_whitespace().nth(1).is_some_and(|r| {
        let base = r.split('/').next().unwrap_or(r);
        OPERATOR_RESOURCES.contains(&base)
    })
}

pub(crate) fn sum_where(map: &BTreeMap<String, u64>, pred: impl Fn(&str) -> bool) -> u64 {
    map.iter().filter(|(k, _)| pred(k)).map(|(_, v)| v).sum()
}

pub(crate) async fn scrape_apiserver(client: &Client) -> BenchResult<ApiCounts> {
    Ok(ApiCounts::parse(&apiserver_metrics(client).await?))
}

/// The API server's `/metrics` text.
pub(crate) async fn apiserver_metrics(client: &Client) -> BenchResult<String> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client
        .request_text(request)
        .await
        .map_err(|e| format!("reading the API server's /metrics: {e}"))
}

/// The operator's metrics, summed by metric name.
#[derive(Clone, Default)]
pub(crate) struct OperatorCounts(pub(crate) HashMap<String, f64>);

impl OperatorCounts {
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0.0).round() as u64
    }
    pub(crate) fn since(&self, earlier: &OperatorCounts, name: &str) -> u64 {
        self.get(name).saturating_sub(earlier.get(name))
    }
}

pub(crate) async fn scrape_operator(
    http: &reqwest::Client,
    port: u16,
) -> BenchResult<OperatorCounts> {
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
pub(crate) fn peak_in_window(times: &[SystemTime], width: Duration) -> usize {
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

/// CPU seconds used so far by the processes that share the machine with the operator: the
/// API server and etcd (when their pids were given) and this program.
#[derive(Clone, Copy)]
pub(crate) struct SharedCpu {
    apiserver: Option<f64>,
    etcd: Option<f64>,
    bench: f64,
}

/// CPU seconds used between two [`SharedCpu`] readings.
#[derive(Serialize, Default, Clone, Copy)]
pub(crate) struct CpuUsed {
    pub(crate) apiserver_seconds: Option<f64>,
    pub(crate) etcd_seconds: Option<f64>,
    /// This program: its watches, with the floor's plain client in a floor run and the
    /// applies in a convergence run.
    pub(crate) bench_seconds: f64,
}

impl SharedCpu {
    pub(crate) fn now(args: &Args) -> SharedCpu {
        let of = |pid: Option<u32>| pid.and_then(|p| cpu_seconds(p).ok());
        SharedCpu {
            apiserver: of(args.apiserver_pid),
            etcd: of(args.etcd_pid),
            bench: cpu_seconds(std::process::id()).unwrap_or_default(),
        }
    }

    pub(crate) fn since(&self, before: &SharedCpu) -> CpuUsed {
        let used = |now: f64, then: f64| secs(Duration::from_secs_f64((now - then).max(0.0)));
        let both = |now: Option<f64>, then: Option<f64>| Some(used(now?, then?));
        CpuUsed {
            apiserver_seconds: both(self.apiserver, before.apiserver),
            etcd_seconds: both(self.etcd, before.etcd),
            bench_seconds: used(self.bench, before.bench),
        }
    }
}
