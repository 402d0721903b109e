//! A rollout restart decided on a stale read is refused by the API server, on the real bed:
//! concurrent writers that all read a workload before any of them patches it restart it
//! once.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::leader::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use trackvia_operator::controller::restart::{self, RestartResult};
use trackvia_operator::crd::{RolloutRestartTarget, WorkloadKind};
use trackvia_testsupport::fixtures::deployment;
use trackvia_testsupport::kube::TestNamespace;

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
    let client = trackvia_testsupport::kube::client().await;
    let ns = TestNamespace::create(&client, "tvc-restart-race").await;
    let deployments: Api<Deployment> = ns.api();
    deployments
        .create(&PostParams::default(), &deployment("app"))
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
