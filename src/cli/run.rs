//! The `run` command: its flags, and the wiring of logging, the TrackVia client,
//! the Kubernetes client, the metrics server, the controller and leader election.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jiff::SignedDuration;

use super::{Error, install_crypto_provider};
use crate::connection::{DurationError, Settings, parse_duration};
use crate::controller::source_plan::SourceWatchLimits;
use crate::controller::{self, Clock, Config};
use crate::metrics::Metrics;
use crate::trackvia::{AllowedHosts, TrackViaClient, Verifier};
use crate::{http, leader, supervisor};

/// Format of the log lines.
#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `run`.
#[derive(Args)]
pub struct RunArgs {
    /// Watch only these namespaces (comma-separated); default: all.
    #[arg(long, env = "TRACKVIA_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Hosts the operator may call: host[:port], host:* or *.domain[:port] patterns, comma-separated.
    /// A pattern without a port means 443.
    #[arg(long, env = "TRACKVIA_ALLOWED_HOSTS", default_value = "*.trackvia.com")]
    allowed_hosts: String,
    /// PEM bundle of CA certificates trusted in addition to the system roots.
    #[arg(long, env = "TRACKVIA_EXTRA_CA_FILE")]
    extra_ca_file: Option<std::path::PathBuf>,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "TRACKVIA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "TRACKVIA_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level of the operator (error, warn, info, debug, trace).
    #[arg(long, env = "TRACKVIA_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// TrackVia calls per minute, across all connections.
    #[arg(long, env = "TRACKVIA_RATE_LIMIT", default_value_t = 60)]
    rate_limit: u32,
    /// Connections reconciled at once.
    #[arg(long, env = "TRACKVIA_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Timeout of one TrackVia call.
    #[arg(long, env = "TRACKVIA_REQUEST_TIMEOUT", default_value = "10s")]
    request_timeout: String,
    /// Transient failures in a row before Ready turns Unreachable (with --failure-grace).
    #[arg(long, env = "TRACKVIA_FAILURE_THRESHOLD", default_value_t = 3)]
    failure_threshold: u32,
    /// How long transient failures must last before Ready turns Unreachable.
    #[arg(long, env = "TRACKVIA_FAILURE_GRACE", default_value = "15m")]
    failure_grace: String,
    /// First retry delay after a transient failure; doubles each time, capped at the verify interval.
    #[arg(long, env = "TRACKVIA_RETRY_BASE", default_value = "10s")]
    retry_base: String,
    /// Run Lease-based leader election; only the leader reconciles.
    #[arg(long, env = "TRACKVIA_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE).
    #[arg(long, env = "TRACKVIA_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "TRACKVIA_LEADER_ELECTION_LEASE_NAME",
        default_value = "trackvia-operator"
    )]
    leader_election_lease_name: String,
    /// How long a standby waits after the Lease last changed before it takes over.
    #[arg(
        long,
        env = "TRACKVIA_LEADER_ELECTION_LEASE_DURATION",
        default_value = "15s"
    )]
    leader_election_lease_duration: String,
    /// How long after its last successful renewal the leader stops writing (below the lease duration).
    #[arg(
        long,
        env = "TRACKVIA_LEADER_ELECTION_RENEW_DEADLINE",
        default_value = "10s"
    )]
    leader_election_renew_deadline: String,
    /// Time between two attempts to acquire or renew the Lease.
    #[arg(
        long,
        env = "TRACKVIA_LEADER_ELECTION_RETRY_PERIOD",
        default_value = "2s"
    )]
    leader_election_retry_period: String,
    /// How long the published content must stay unchanged before rollout restarts
    /// run, so several changes in a row cause one restart.
    #[arg(long, env = "TRACKVIA_RESTART_DEBOUNCE", default_value = "10s")]
    restart_debounce: String,
    /// Source Secrets of one namespace watched one by one (by name); a namespace
    /// whose connections read more Secrets gets one namespace-wide watch instead.
    #[arg(long, env = "TRACKVIA_SOURCE_WATCH_LIMIT", default_value_t = 50)]
    source_watch_limit: usize,
    /// Source-Secret watches open at most (each is an HTTP connection to the
    /// API server); above, one watch of every Secret in all namespaces. With
    /// --namespaces this holds per namespace: above, one namespace-wide watch.
    #[arg(long, env = "TRACKVIA_SOURCE_WATCH_TOTAL_LIMIT", default_value_t = 100)]
    source_watch_total_limit: usize,
    /// Testing only: shift the operator's clock by this signed duration (e.g. `-30s`, `36h`).
    #[arg(long, env = "TRACKVIA_CLOCK_OFFSET", allow_hyphen_values = true)]
    clock_offset: Option<String>,
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), Error> {
    use tracing_subscriber::EnvFilter;
    let level = level.to_ascii_lowercase();
    if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
        return Err(Error::Flag {
            flag: format!("--log-level {level:?}"),
            reason: "expected error, warn, info, debug or trace".into(),
        });
    }
    // Dependencies stay at warn (kube at most debug): their traces are not ours to vouch for.
    let kube_level = if level == "trace" {
        "debug"
    } else {
        level.as_str()
    };
    let filter = EnvFilter::try_new(format!(
        "warn,trackvia_operator={level},kube_runtime={kube_level},kube_client={kube_level}"
    ))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
}

/// Why a signed duration is refused.
#[derive(Debug, thiserror::Error)]
enum SignedDurationError {
    /// Not a duration.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// Too long for a signed duration.
    #[error(transparent)]
    Range(#[from] jiff::Error),
}

fn parse_signed(text: &str) -> Result<SignedDuration, SignedDurationError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let unsigned = parse_duration(rest)?;
    let d = SignedDuration::try_from(unsigned)?;
    Ok(if negative { -d } else { d })
}

/// A flag's value read with `parse`; an error names the flag.
fn flag<T, E: std::fmt::Display>(
    name: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, Error> {
    parse(text).map_err(|e| Error::Flag {
        flag: name.to_string(),
        reason: e.to_string(),
    })
}

/// `run`: runs the controller until a signal (or lost leadership) stops it.
pub async fn run(args: RunArgs) -> ExitCode {
    if let Err(e) = init_logging(args.log_format, &args.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    match run_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// What `run` needs besides the Kubernetes client, read from its flags.
struct Wiring {
    allowed_hosts: AllowedHosts,
    settings: Settings,
    clock: Clock,
    verifier: Arc<Verifier>,
}

async fn run_inner(args: RunArgs) -> Result<(), Error> {
    install_crypto_provider();
    // From here on SIGTERM and SIGINT stop the process within a few seconds, in any phase.
    let mut signals = supervisor::Signals::install()?;
    let wiring = wiring(&args)?;
    let kube_config = kube::Config::infer().await.map_err(Error::Kube)?;
    let instance = std::env::var("POD_NAME").unwrap_or_else(|_| hostname());
    // Names this process in the API server's audit log and in the Lease.
    let identity = format!("{instance}-{}", std::process::id());
    let user_agent = format!(
        "trackvia-operator/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    let kube_client = leader::client(kube_config.clone(), &user_agent, None)?;
    let (metrics, ready) = serve_http(&kube_client, args.metrics_addr);
    let config = config(
        &args,
        wiring.allowed_hosts,
        wiring.settings,
        wiring.clock,
        instance,
    )?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        namespaces = ?config.namespaces,
        allowed_hosts = %config.allowed_hosts_text,
        rate_limit = args.rate_limit,
        "starting"
    );
    let verifier = wiring.verifier;
    if !args.leader_election {
        metrics.leader.set(1);
        let work = controller::run(kube_client, config, verifier, metrics, ready);
        supervisor::run_single(work, &mut signals).await;
        tracing::info!("stopped");
        return Ok(());
    }

    // Leader election: only the holder of the Lease reconciles, and only its writes pass
    // the fence. A standby is healthy and ready.
    let settings = lease_settings(&args, identity)?;
    let fence = leader::Fence::closed();
    let fenced_client = leader::client(kube_config, &user_agent, Some(fence.clone()))?;
    tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "waiting for leadership");
    let elector = leader::Elector::new(kube_client, settings, fence);
    ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let work = || controller::run(fenced_client, config, verifier, metrics.clone(), ready);
    supervisor::run_elected(elector, work, &mut signals, &metrics)
        .await
        .map_err(|lost| Error::LostLeadership(lost.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the allowed hosts, the CA bundle, the durations and the clock offset, and
/// builds the TrackVia verifier.
fn wiring(args: &RunArgs) -> Result<Wiring, Error> {
    let allowed_hosts = flag("--allowed-hosts", &args.allowed_hosts, str::parse)?;
    let extra_ca = match &args.extra_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| Error::Flag {
            flag: format!("--extra-ca-file {}", path.display()),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let timeout = flag("--request-timeout", &args.request_timeout, parse_duration)?;
    let settings = Settings {
        failure_threshold: args.failure_threshold,
        failure_grace: flag("--failure-grace", &args.failure_grace, parse_duration)?,
        retry_base: flag("--retry-base", &args.retry_base, parse_duration)?
            .max(Duration::from_millis(100)),
    };
    let clock = Clock {
        offset: match &args.clock_offset {
            Some(t) => flag("--clock-offset", t, parse_signed)?,
            None => SignedDuration::ZERO,
        },
    };
    if !clock.offset.is_zero() {
        tracing::warn!(offset = %args.clock_offset.as_deref().unwrap_or(""), "the operator's clock is shifted (testing only)");
    }
    let client = TrackViaClient::new(extra_ca.as_deref(), timeout.max(Duration::from_millis(100)))?;
    let verifier = Arc::new(Verifier::new(client, args.rate_limit));
    Ok(Wiring {
        allowed_hosts,
        settings,
        clock,
        verifier,
    })
}

/// Starts the /metrics, /healthz and /readyz server and the API server watch; returns
/// the metrics and the readiness flag the controller sets.
fn serve_http(kube_client: &kube::Client, addr: SocketAddr) -> (Arc<Metrics>, Arc<AtomicBool>) {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let api_reachable = Arc::new(AtomicBool::new(false));
    tokio::spawn(http::watch_api_server(
        kube_client.clone(),
        api_reachable.clone(),
    ));
    let state = http::HttpState {
        registry: Arc::new(registry),
        ready: ready.clone(),
        api_reachable,
    };
    tokio::spawn(async move {
        if let Err(e) = http::serve(addr, state).await {
            tracing::error!("metrics server on {addr}: {e}");
            std::process::exit(1);
        }
    });
    (metrics, ready)
}

/// The controller's configuration.
fn config(
    args: &RunArgs,
    allowed_hosts: AllowedHosts,
    settings: Settings,
    clock: Clock,
    instance: String,
) -> Result<Config, Error> {
    Ok(Config {
        namespaces: args
            .namespaces
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        allowed_hosts,
        allowed_hosts_text: args.allowed_hosts.clone(),
        settings,
        concurrency: args.concurrency.max(1),
        clock,
        instance,
        restart_debounce: flag("--restart-debounce", &args.restart_debounce, parse_duration)?,
        source_watch_limits: SourceWatchLimits {
            per_namespace: args.source_watch_limit.max(1),
            total: args.source_watch_total_limit.max(1),
        },
    })
}

/// The Lease settings of leader election, checked.
fn lease_settings(args: &RunArgs, identity: String) -> Result<leader::LeaseSettings, Error> {
    let settings = leader::LeaseSettings {
        name: args.leader_election_lease_name.clone(),
        namespace: args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|s| !s.is_empty())
            .ok_or(Error::NoLeaseNamespace)?,
        identity,
        lease_duration: flag(
            "--leader-election-lease-duration",
            &args.leader_election_lease_duration,
            parse_duration,
        )?,
        renew_deadline: flag(
            "--leader-election-renew-deadline",
            &args.leader_election_renew_deadline,
            parse_duration,
        )?,
        retry_period: flag(
            "--leader-election-retry-period",
            &args.leader_election_retry_period,
            parse_duration,
        )?,
    };
    settings.validate().map_err(|e| Error::Flag {
        flag: "leader election".into(),
        reason: e.to_string(),
    })?;
    Ok(settings)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "trackvia-operator".into())
}
