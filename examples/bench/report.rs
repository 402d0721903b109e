//! The figures a run reports: the JSON document and the printed table.

use super::*;

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Serialize, Default)]
pub(crate) struct Report {
    pub(crate) parameters: Parameters,
    pub(crate) machine: Machine,
    pub(crate) setup: Setup,
    pub(crate) convergence: Convergence,
    pub(crate) floor: Floor,
    pub(crate) trackvia: TrackViaCalls,
    pub(crate) memory: Memory,
    pub(crate) steady: Steady,
    pub(crate) scoping: Scoping,
    pub(crate) rotation: Rotation,
    pub(crate) restart: Restart,
    pub(crate) handover: Restart,
    pub(crate) cold_start: ColdStart,
    pub(crate) targets: Vec<Target>,
}

#[derive(Serialize, Default)]
pub(crate) struct Parameters {
    /// The operator binary measured.
    pub(crate) operator: String,
    pub(crate) connections: usize,
    pub(crate) credentials: usize,
    pub(crate) unrelated_secrets: usize,
    pub(crate) concurrency: u16,
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) verify_interval: String,
    pub(crate) steady_window_seconds: u64,
    pub(crate) settle_seconds: u64,
    pub(crate) apply_concurrency: usize,
}

#[derive(Serialize, Default)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) load_average_at_start: String,
    pub(crate) kubernetes: String,
}

#[derive(Serialize, Default)]
pub(crate) struct Setup {
    pub(crate) unrelated_secrets_seconds: f64,
    pub(crate) operator_ready_seconds: f64,
}

#[derive(Serialize, Default)]
pub(crate) struct Convergence {
    /// First connection applied → every connection Ready with its output Secret.
    pub(crate) seconds: f64,
    /// How long applying the N connections took (inside `seconds`).
    pub(crate) connections_applied_seconds: f64,
    pub(crate) operator_status_writes: u64,
    pub(crate) operator_secret_writes: u64,
    pub(crate) operator_reconciles: u64,
    /// Secrets the operator read (GET) while converging.
    pub(crate) operator_secret_reads: u64,
    /// Secret watch events the operator received while converging.
    pub(crate) operator_secret_watch_events: u64,
    pub(crate) api_requests: u64,
    pub(crate) api_writes: u64,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
    pub(crate) apiserver_cpu_seconds: Option<f64>,
    pub(crate) operator_cpu_seconds: f64,
    /// /proc/loadavg right after convergence: other work on the machine skews the timings.
    pub(crate) load_average: String,
    /// Every run (the first is the one described above; `seconds` is their median).
    pub(crate) runs: Vec<ConvergenceRun>,
}

/// One convergence run: every connection deleted, fresh tokens, the N applied again.
#[derive(Serialize, Default, Clone)]
pub(crate) struct ConvergenceRun {
    pub(crate) seconds: f64,
    /// Waiting, before the run, until the API server served no request on the operator's
    /// resources for a while (the garbage collector and the namespace controller done).
    pub(crate) quiet_wait_seconds: f64,
    pub(crate) api_requests: u64,
    pub(crate) api_writes: u64,
    pub(crate) trackvia_calls: usize,
    /// Secret reads by the operator (source and output Secrets).
    pub(crate) operator_secret_reads: u64,
    pub(crate) operator_cpu_seconds: f64,
    /// What the API server, etcd and this program used meanwhile.
    pub(crate) shared_cpu: CpuUsed,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
}

#[derive(Serialize, Default)]
pub(crate) struct Floor {
    /// N Secret creates + N status applies by a plain client.
    pub(crate) seconds: f64,
    /// Creating the floor's N connections (not part of `seconds`).
    pub(crate) connections_created_seconds: f64,
    pub(crate) concurrency: u16,
    /// convergence.seconds / floor.seconds
    pub(crate) ratio: f64,
    /// The convergence run's requests without the operator: the N connection applies at the
    /// run's apply concurrency and, as each returns, its Secret create and status apply by a
    /// second pool at the operator's concurrency; from the first apply to the last status.
    pub(crate) with_applies_seconds: f64,
    /// convergence.seconds / floor.with_applies_seconds
    pub(crate) ratio_with_applies: f64,
    /// Every measurement of `seconds` (the median is used).
    pub(crate) runs: Vec<f64>,
    /// Every measurement of `with_applies_seconds` (the median is used).
    pub(crate) with_applies_runs: Vec<f64>,
    /// What the API server, etcd and this program used in each of `runs`.
    pub(crate) runs_cpu: Vec<CpuUsed>,
    /// The same for each of `with_applies_runs`.
    pub(crate) with_applies_runs_cpu: Vec<CpuUsed>,
}

#[derive(Serialize, Default)]
pub(crate) struct TrackViaCalls {
    pub(crate) calls_at_convergence: usize,
    pub(crate) expected: usize,
    pub(crate) calls_per_credential_max: usize,
    pub(crate) operator_reported_calls: u64,
    pub(crate) peak_calls_in_one_second: usize,
    pub(crate) peak_calls_in_sixty_seconds: usize,
    pub(crate) calls_after_rotations: usize,
    pub(crate) next_verifications_spread_seconds: f64,
    pub(crate) next_verifications_max_in_one_second: usize,
}

#[derive(Serialize, Default)]
pub(crate) struct Memory {
    pub(crate) operator_peak_rss_mib: f64,
    pub(crate) operator_rss_steady_mib: f64,
}

#[derive(Serialize, Default)]
pub(crate) struct Steady {
    pub(crate) window_seconds: f64,
    pub(crate) operator_cpu_seconds: f64,
    pub(crate) operator_cpu_percent_of_core: f64,
    pub(crate) apiserver_cpu_percent_of_core: Option<f64>,
    pub(crate) api_requests_all: u64,
    pub(crate) api_writes_all: u64,
    pub(crate) api_requests_operator_resources: u64,
    pub(crate) api_writes_operator_resources: u64,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
    pub(crate) operator_status_writes: u64,
    pub(crate) operator_secret_writes: u64,
    pub(crate) operator_reconciles: u64,
    pub(crate) trackvia_calls: usize,
    pub(crate) watched_connection_changes: u64,
    pub(crate) watched_output_secret_changes: u64,
}

/// Unrelated Secrets changing after convergence: what reaches the operator.
#[derive(Serialize, Default)]
pub(crate) struct Scoping {
    pub(crate) unrelated_secrets_updated: usize,
    /// Secret watch events the operator received meanwhile (its watches are
    /// selected by label and by name, so none).
    pub(crate) operator_secret_watch_events: u64,
    pub(crate) operator_reconciles: u64,
    pub(crate) operator_cpu_seconds: f64,
    pub(crate) source_watches_by_name: u64,
    pub(crate) source_watches_by_namespace: u64,
}

#[derive(Serialize, Default)]
pub(crate) struct Rotation {
    /// A source Secret read by one connection: update → its output Secret updated.
    pub(crate) single_seconds: f64,
    /// A source Secret shared by `shared_outputs` connections.
    pub(crate) shared_outputs: usize,
    pub(crate) shared_first_seconds: f64,
    pub(crate) shared_median_seconds: f64,
    pub(crate) shared_last_seconds: f64,
}

/// Killing the operator with every connection Ready and starting it again (`restart`), or
/// stopping the leader of two (`handover`).
#[derive(Serialize, Default)]
pub(crate) struct Restart {
    /// Kill → the new process's `/readyz` answers (restart); SIGTERM to the leader → the
    /// standby leads (handover).
    pub(crate) ready_seconds: f64,
    /// Kill or SIGTERM → the new process reports its initial sync done.
    pub(crate) initial_sync_seconds: f64,
    /// Connections the new process listed and reconciled in its initial sync.
    pub(crate) connections_synced: u64,
    /// Until the initial sync was done and `settle_seconds` more.
    pub(crate) trackvia_calls: usize,
    pub(crate) api_writes_all: u64,
    pub(crate) api_requests_operator_resources: u64,
    pub(crate) api_writes_operator_resources: u64,
    pub(crate) operator_status_writes: u64,
    pub(crate) operator_secret_writes: u64,
    pub(crate) operator_secret_reads: u64,
    /// VmHWM of the new process: the relist and the initial sync.
    pub(crate) peak_rss_mib: f64,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
}

/// The operator started on N connections applied while none ran (`cold.rs`).
#[derive(Serialize, Default)]
pub(crate) struct ColdStart {
    /// Operator started → every connection Ready with its output Secret (median of the runs).
    pub(crate) seconds: f64,
    /// cold_start.seconds / floor.seconds
    pub(crate) ratio: f64,
    pub(crate) runs: Vec<ColdRun>,
}

/// One cold start.
#[derive(Serialize, Default)]
pub(crate) struct ColdRun {
    pub(crate) seconds: f64,
    pub(crate) api_requests_operator_resources: u64,
    pub(crate) api_writes_operator_resources: u64,
    pub(crate) trackvia_calls: usize,
    /// Everything the new process used, start-up included.
    pub(crate) operator_cpu_seconds: f64,
    /// VmHWM of the new process.
    pub(crate) peak_rss_mib: f64,
    /// What the API server, etcd and this program used meanwhile.
    pub(crate) shared_cpu: CpuUsed,
    pub(crate) api_requests_by_verb_and_resource: BTreeMap<String, u64>,
}

#[derive(Serialize)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) target: String,
    pub(crate) met: bool,
}
