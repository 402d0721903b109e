//! Leader election on the real bed, for the leadership tests: election flags over a Lease of
//! the test's own, a bounded test, a standby process, the leader metric, the Lease holder,
//! waiting for a process to exit, a leak check of the logs, and the API server's audit log
//! of writes.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use trackvia_testsupport::OperatorProcess;
use trackvia_testsupport::free_port;
use trackvia_testsupport::metrics::series;

use super::{Harness, OPERATOR, plain_get};

/// The Lease lives in `default` under a name of the test's own.
pub const LEASE_NAMESPACE: &str = "default";
/// Short election timing, so a takeover after an expiry fits in a test.
pub const SHORT_LEASE: Duration = Duration::from_secs(6);
pub const SHORT_TIMING: &[&str] = &[
    "--leader-election-lease-duration",
    "6s",
    "--leader-election-renew-deadline",
    "4s",
    "--leader-election-retry-period",
    "1s",
];
/// Upper bound of one test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(180);

pub fn lease_name(label: &str) -> String {
    let n: u32 = rand::random();
    format!("tvo-{label}-{n:08x}")
}

/// Flags electing a leader over Lease `lease`, plus `timing`.
pub fn election(lease: &str, timing: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--leader-election",
        "--leader-election-namespace",
        LEASE_NAMESPACE,
        "--leader-election-lease-name",
        lease,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(timing.iter().map(|s| s.to_string()));
    args
}

pub async fn bounded(test: impl Future<Output = ()>) {
    super::within(TEST_TIMEOUT, "the test", test).await;
}

/// A second operator process with the harness's arguments and a metrics port of its own.
pub struct Standby {
    pub process: OperatorProcess,
    pub metrics_port: u16,
}

impl Standby {
    pub async fn start(h: &Harness) -> Standby {
        let metrics_port = free_port();
        let args: Vec<String> = h
            .args
            .iter()
            .map(|a| {
                if a.starts_with("127.0.0.1:") {
                    format!("127.0.0.1:{metrics_port}")
                } else {
                    a.clone()
                }
            })
            .collect();
        let process = OperatorProcess::spawn(std::path::Path::new(OPERATOR), &args, &[]);
        let standby = Standby {
            process,
            metrics_port,
        };
        let url = format!("http://127.0.0.1:{metrics_port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !plain_get(&url).await.is_ok_and(|r| r.0 == 200) {
            assert!(
                Instant::now() < deadline,
                "the second process is not ready after 30 s:\n{}",
                standby.process.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        standby
    }
}

/// A metric's unlabelled sample from the process on `port`; `None` when it does not answer.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let text = plain_get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .1;
    Some(series(&text, name).unwrap_or(0.0))
}

pub async fn wait_leading(port: u16, process: &mut OperatorProcess, within: Duration) -> Duration {
    let started = Instant::now();
    while metric(port, "trackvia_operator_leader").await != Some(1.0) {
        assert!(
            process.is_running(),
            "the process exited:\n{}",
            process.logs()
        );
        assert!(
            started.elapsed() < within,
            "not leading after {within:?}:\n{}",
            process.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

pub async fn lease_holder(client: &kube::Client, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Whether a Lease holder identity (`<instance>-<pid>`) is that of process `pid`.
pub fn is_process(identity: &str, pid: u32) -> bool {
    identity.ends_with(&format!("-{pid}"))
}

/// Waits until `process` exits, at most until `within` after `since`; its exit code and the
/// time since `since`.
pub async fn wait_exit(
    process: &mut OperatorProcess,
    since: Instant,
    within: Duration,
) -> Option<(i32, Duration)> {
    let started = since;
    while started.elapsed() < within {
        if let Some(status) = process.try_exit_status() {
            return Some((status.code().unwrap_or(-1), started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// No key or token handed out appears in the logs of the harness's process or of `others`
/// (the processes have exited: their metrics cannot be audited).
pub fn assert_logs_clean(h: &Harness, others: &[&OperatorProcess]) {
    let logs: Vec<String> = std::iter::once(h.operator.logs())
        .chain(others.iter().map(|p| p.logs()))
        .collect();
    for secret in &h.secrets {
        assert!(
            logs.iter().all(|l| !l.contains(secret.as_str())),
            "a credential appears in an operator's log"
        );
    }
}

pub use trackvia_testsupport::audit::AuditedWrite;

/// The writes in this bed's audit log.
pub fn audited_writes() -> Vec<AuditedWrite> {
    trackvia_testsupport::audit::audited_writes(&super::testbed_dir())
}

/// The operator's user agent names its process: `trackvia-operator/<version> (<instance>-<pid>)`.
pub fn by_process(w: &AuditedWrite, pid: u32) -> bool {
    w.by_operator_pid(pid)
}
