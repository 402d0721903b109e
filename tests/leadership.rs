//! One writer at a time, and a prompt shutdown, on the real bed: a leader frozen past its
//! Lease writes nothing once it resumes (its metrics and the API server's audit log by user
//! agent say so); a leader that cannot renew stops before its Lease can expire; SIGTERM ends
//! the process within seconds with the API server gone; a clean stop hands the Lease over at
//! once; and a rollout restart decided on a stale read is refused by the API server.
//!
//! The tests that stop the API server take the bed for themselves (an exclusive lock); the
//! others share it.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{Harness, OPERATOR, plain_get};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use trackvia_operator::crd::{RolloutRestartTarget, WorkloadKind};
use trackvia_operator::restart::{self, RestartResult};
use trackvia_testsupport::fake::Behavior;
use trackvia_testsupport::kube::TestNamespace;
use trackvia_testsupport::metrics::series;
use trackvia_testsupport::{OperatorProcess, free_port};

/// Shared by the tests that only use the bed; held exclusively by those that stop its API server.
static BED: LazyLock<tokio::sync::RwLock<()>> = LazyLock::new(|| tokio::sync::RwLock::new(()));

/// The Lease lives in `default` under a name of the test's own.
const LEASE_NAMESPACE: &str = "default";
/// Short election timing, so a takeover after an expiry fits in a test.
const SHORT_LEASE: Duration = Duration::from_secs(6);
const SHORT_TIMING: &[&str] = &[
    "--leader-election-lease-duration",
    "6s",
    "--leader-election-renew-deadline",
    "4s",
    "--leader-election-retry-period",
    "1s",
];
/// Upper bound of one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

fn lease_name(label: &str) -> String {
    let n: u32 = rand::random();
    format!("tvo-{label}-{n:08x}")
}

/// Flags electing a leader over Lease `lease`, plus `timing`.
fn election(lease: &str, timing: &[&str]) -> Vec<String> {
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

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {TEST_TIMEOUT:?}"));
}

/// A second operator process with the harness's arguments and a metrics port of its own.
struct Standby {
    process: OperatorProcess,
    metrics_port: u16,
}

impl Standby {
    async fn start(h: &Harness) -> Standby {
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
async fn metric(port: u16, name: &str) -> Option<f64> {
    let text = plain_get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .1;
    Some(series(&text, name).unwrap_or(0.0))
}

async fn wait_leading(port: u16, process: &mut OperatorProcess, within: Duration) -> Duration {
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

async fn lease_holder(client: &kube::Client, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Whether a Lease holder identity (`<instance>-<pid>`) is that of process `pid`.
fn is_process(identity: &str, pid: u32) -> bool {
    identity.ends_with(&format!("-{pid}"))
}

/// Waits until `process` exits, at most until `within` after `since`; its exit code and the
/// time since `since`.
async fn wait_exit(
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
fn assert_logs_clean(h: &Harness, others: &[&OperatorProcess]) {
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

/// One write request in the API server's audit log.
#[derive(Debug)]
struct AuditedWrite {
    user_agent: String,
    resource: String,
    code: i64,
    received: jiff::Timestamp,
}

fn audited_writes() -> Vec<AuditedWrite> {
    let path = common::testbed_dir().join("logs/audit.log");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading the API server's audit log {}: {e} (start the bed with this hack/testbed)",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| AuditedWrite {
            user_agent: e["userAgent"].as_str().unwrap_or_default().to_string(),
            resource: e["objectRef"]["resource"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            code: e["responseStatus"]["code"].as_i64().unwrap_or(0),
            received: e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
        })
        .collect()
}

/// The operator's user agent names its process: `trackvia-operator/<version> (<instance>-<pid>)`.
fn by_process(w: &AuditedWrite, pid: u32) -> bool {
    w.user_agent.starts_with("trackvia-operator/") && w.user_agent.ends_with(&format!("-{pid})"))
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_it_resumes() {
    bounded(frozen_leader()).await;
}

async fn frozen_leader() {
    let _bed = BED.read().await;
    let lease = lease_name("freeze");
    let args = election(&lease, SHORT_TIMING);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = Harness::start("tvc-freeze", &args).await;
    wait_leading(h.metrics_port, &mut h.operator, Duration::from_secs(20)).await;
    let mut standby = Standby::start(&h).await;
    let (old_pid, new_pid) = (h.operator.pid(), standby.process.pid());

    // The leader is frozen while its verification is in flight: the answer is waiting for it
    // when it resumes, with the status and the Secret to write.
    let (key, token) = h
        .connect(
            "c",
            "src",
            Behavior::Slow(Duration::from_millis(1500)),
            json!({}),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.fake.calls_for(&key, &token) == 0 {
        assert!(
            Instant::now() < deadline,
            "the leader never called TrackVia"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status_writes = metric(h.metrics_port, "trackvia_status_writes_total").await;
    let secret_writes = metric(h.metrics_port, "trackvia_secret_writes_total").await;
    h.operator.freeze();
    let frozen = Instant::now();

    // The standby takes over once the Lease has expired.
    let client = h.client.clone();
    loop {
        if lease_holder(&client, &lease)
            .await
            .is_some_and(|id| is_process(&id, new_pid))
        {
            break;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(30),
            "the standby did not take over within 30 s:\n{}",
            standby.process.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = frozen.elapsed();
    eprintln!("the standby took the Lease {takeover:?} after the leader was frozen");
    // Counted from the last renewal the standby saw, at most a retry period before the freeze.
    assert!(
        takeover >= SHORT_LEASE - Duration::from_secs(1),
        "taken before the Lease expired"
    );

    let resumed = jiff::Timestamp::now();
    h.operator.resume();
    // While it still runs, its write counters stay where they were; it then exits, having
    // lost the Lease.
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = h.operator.try_exit_status() {
            break status;
        }
        if let Some(n) = metric(h.metrics_port, "trackvia_status_writes_total").await {
            assert_eq!(Some(n), status_writes, "the old leader wrote a status");
        }
        if let Some(n) = metric(h.metrics_port, "trackvia_secret_writes_total").await {
            assert_eq!(Some(n), secret_writes, "the old leader wrote a Secret");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the old leader still runs 5 s after it resumed:\n{}",
            h.operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "the old leader exited ({exit}) {:?} after it resumed",
        started.elapsed()
    );
    assert_eq!(exit.code(), Some(1), "{}", h.operator.logs());
    assert!(h.operator.logs().contains("lost leadership"));

    // The new leader publishes the connection.
    h.wait_ready("c", "True", "Verified").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The audit log: the old leader wrote before the freeze (its user agent is known to the
    // server), the new one after; after resuming the old one wrote nothing, and at most
    // tried to hand back the Lease it no longer held (refused).
    let writes = audited_writes();
    assert!(
        writes
            .iter()
            .any(|w| by_process(w, old_pid) && w.resource == "leases"),
        "no write of the old leader in the audit log: its user agent does not name it"
    );
    assert!(
        writes
            .iter()
            .any(|w| by_process(w, new_pid) && w.resource == "trackviaconnections"),
        "no status write of the new leader in the audit log"
    );
    let after: Vec<&AuditedWrite> = writes
        .iter()
        .filter(|w| by_process(w, old_pid) && w.received >= resumed)
        .collect();
    eprintln!("requests of the old leader after it resumed: {after:?}");
    for w in &after {
        assert!(
            w.resource == "leases" && !(200..300).contains(&w.code),
            "the old leader wrote after it resumed: {w:?}"
        );
    }
    standby.process.stop().await;
    assert_logs_clean(&h, &[&standby.process]);
    h.ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_its_lease_can_expire() {
    bounded(cannot_renew()).await;
}

async fn cannot_renew() {
    let _bed = BED.write().await;
    let lease = lease_name("renew");
    let args = election(&lease, SHORT_TIMING);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = Harness::start("tvc-renew", &args).await;
    wait_leading(h.metrics_port, &mut h.operator, Duration::from_secs(20)).await;
    // The API server takes a while to shut down (it answers less and less meanwhile): watch
    // the process while it does.
    let stopping = tokio::spawn(common::ApiServerAway::stop());
    let exit = wait_exit(&mut h.operator, Instant::now(), Duration::from_secs(30)).await;
    let exited_at = jiff::Timestamp::now();
    stopping
        .await
        .expect("stopping the API server")
        .restore()
        .await;
    let Some((code, _)) = exit else {
        panic!(
            "the leader still runs 30 s after its API server began to go away:\n{}",
            h.operator.logs()
        );
    };
    assert_eq!(code, 1, "{}", h.operator.logs());
    assert!(h.operator.logs().contains("lost leadership"));
    assert_logs_clean(&h, &[]);
    // The Lease as last renewed (etcd kept it) expires after the process stopped.
    let renewed = Api::<Lease>::namespaced(h.client.clone(), LEASE_NAMESPACE)
        .get(&lease)
        .await
        .expect("reading the Lease")
        .spec
        .and_then(|s| s.renew_time)
        .expect("a renew time")
        .0;
    let margin =
        renewed + jiff::SignedDuration::try_from(SHORT_LEASE).expect("a duration") - exited_at;
    eprintln!("the leader stopped {margin:#} before its Lease would have expired");
    assert!(
        margin.is_positive(),
        "the leader ran past the expiry of its Lease: renewed {renewed}, exited {exited_at}"
    );
    h.ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_process_within_seconds_with_the_api_server_gone() {
    bounded(sigterm_without_api_server()).await;
}

async fn sigterm_without_api_server() {
    let _bed = BED.write().await;
    let lease = lease_name("term");
    // One process leading (with a Lease long enough that it still leads when the signal
    // comes), one without leader election.
    let long = [
        "--leader-election-lease-duration",
        "60s",
        "--leader-election-renew-deadline",
        "45s",
    ];
    let args = election(&lease, &long);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut elected = Harness::start("tvc-term-le", &args).await;
    let mut single = Harness::start("tvc-term", &[]).await;
    wait_leading(
        elected.metrics_port,
        &mut elected.operator,
        Duration::from_secs(20),
    )
    .await;
    for h in [&mut elected, &mut single] {
        h.connect("c", "src", Behavior::Valid, json!({})).await;
        h.wait_ready("c", "True", "Verified").await;
    }
    let away = common::ApiServerAway::stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut took = Vec::new();
    let signalled = Instant::now();
    for h in [&mut elected, &mut single] {
        h.operator.terminate();
    }
    for (what, h) in [("leader", &mut elected), ("single", &mut single)] {
        let exit = wait_exit(&mut h.operator, signalled, Duration::from_secs(5)).await;
        let Some((code, elapsed)) = exit else {
            panic!(
                "the {what} process still runs 5 s after SIGTERM:\n{}",
                h.operator.logs()
            );
        };
        assert_eq!(code, 0, "{what}: {}", h.operator.logs());
        took.push((what, elapsed));
    }
    eprintln!("exits after SIGTERM with the API server gone: {took:?}");
    away.restore().await;
    for h in [elected, single] {
        assert_logs_clean(&h, &[]);
        h.ns.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_the_lease_to_the_standby_at_once() {
    bounded(clean_handover()).await;
}

async fn clean_handover() {
    let _bed = BED.read().await;
    let lease = lease_name("handover");
    // A long Lease: a takeover well within it comes from the release, not from the expiry.
    let args = election(&lease, &["--leader-election-retry-period", "1s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut h = Harness::start("tvc-handover", &args).await;
    wait_leading(h.metrics_port, &mut h.operator, Duration::from_secs(20)).await;
    let mut standby = Standby::start(&h).await;
    let stopped = Instant::now();
    let status = h.operator.stop_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}:\n{}", h.operator.logs());
    let exit = stopped.elapsed();
    let port = standby.metrics_port;
    let takeover = wait_leading(port, &mut standby.process, Duration::from_secs(15)).await + exit;
    eprintln!("the leader exited {exit:?} after SIGTERM; the standby led {takeover:?} after it");
    assert!(
        takeover < Duration::from_secs(5),
        "the standby took {takeover:?} to lead (the Lease lasts 15 s)"
    );
    let holder = lease_holder(&h.client, &lease).await.unwrap_or_default();
    assert!(is_process(&holder, standby.process.pid()), "{holder}");
    standby.process.stop().await;
    assert_logs_clean(&h, &[&standby.process]);
    h.ns.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Rollout restarts from a stale read
// ---------------------------------------------------------------------------------------------

/// Hands every GET answer over only after a delay: concurrent writers all read the workload
/// before any of them patches it, each working from what is then a stale read.
#[derive(Clone)]
struct LateReads;

impl<S> tower::Layer<S> for LateReads {
    type Service = LateReadsService<S>;
    fn layer(&self, inner: S) -> LateReadsService<S> {
        LateReadsService(inner)
    }
}

struct LateReadsService<S>(S);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for LateReadsService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let read = request.method() == http::Method::GET;
        let answer = self.0.call(request);
        Box::pin(async move {
            let answer = answer.await.map_err(Into::into);
            if read {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            answer
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_working_from_a_stale_read_never_restarts_a_workload_twice() {
    bounded(stale_restart()).await;
}

async fn stale_restart() {
    let _bed = BED.read().await;
    let client = trackvia_testsupport::kube::client().await;
    let ns = TestNamespace::create(&client, "tvc-restart-race").await;
    let deployments: Api<Deployment> = ns.api();
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
            }
        }
    }))
    .expect("deployment literal");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("creating the Deployment");
    let config = kube::Config::infer().await.expect("the bed's kubeconfig");
    let late = kube::client::ClientBuilder::try_from(config)
        .expect("a client")
        .with_layer(&LateReads)
        .build();
    let target = RolloutRestartTarget {
        kind: WorkloadKind::Deployment,
        name: "app".into(),
    };
    let generation = |d: &Deployment| d.metadata.generation.unwrap_or_default();
    let before = generation(&deployments.get("app").await.expect("reading"));

    // Four writers decide on the same read to restart for the same change.
    let writers = (0..4).map(|i| {
        let (late, ns, target) = (late.clone(), ns.name().to_string(), target.clone());
        async move {
            let now = format!("2026-01-01T00:00:0{i}Z");
            restart::restart(&late, &ns, &target, "hash-2", &now).await
        }
    });
    let results = futures::future::join_all(writers).await;
    eprintln!("restart results: {results:?}");
    let after = deployments.get("app").await.expect("reading");
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == RestartResult::Restarted)
            .count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, RestartResult::Restarted | RestartResult::AlreadyDone)),
        "{results:?}"
    );
    assert_eq!(
        generation(&after),
        before + 1,
        "the pod template changed more than once"
    );
    ns.cleanup().await;
}
