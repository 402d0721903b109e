//! The small HTTP server: `/metrics` (OpenMetrics), `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The metrics registry.
    pub registry: Arc<Registry>,
    /// True once the caches are synced (or while waiting as a standby).
    pub ready: Arc<AtomicBool>,
    /// True while the Kubernetes API server answers.
    pub api_reachable: Arc<AtomicBool>,
}

/// Serve until the process ends.
pub async fn serve(addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "encoding failed".to_string(),
        ),
    }
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if !state.api_reachable.load(Ordering::SeqCst) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Kubernetes API server is unreachable",
        )
    } else if !state.ready.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Keep `reachable` up to date: ask the API server for its version every few
/// seconds, with a short timeout.
pub async fn watch_api_server(client: kube::Client, reachable: Arc<AtomicBool>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let ok = matches!(
            tokio::time::timeout(
                std::time::Duration::from_secs(3),
                client.apiserver_version()
            )
            .await,
            Ok(Ok(_))
        );
        let was = reachable.swap(ok, Ordering::SeqCst);
        if was && !ok {
            tracing::warn!("the Kubernetes API server does not answer; /readyz reports not ready");
        } else if !was && ok {
            tracing::info!("the Kubernetes API server answers");
        }
    }
}
