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
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(state)).await
}

/// The routes, answering from `state`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn get(state: &HttpState, path: &str) -> (StatusCode, String, String) {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, kind, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_follows_the_api_server_then_the_caches_and_metrics_are_openmetrics() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.status_writes.inc();
        let state = HttpState {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
            api_reachable: Arc::new(AtomicBool::new(false)),
        };
        assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
        let (code, _, body) = get(&state, "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("unreachable"), "{body}");
        state.api_reachable.store(true, Ordering::SeqCst);
        let (code, _, body) = get(&state, "/readyz").await;
        assert_eq!(
            (code, body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
        );
        state.ready.store(true, Ordering::SeqCst);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);

        let (code, kind, body) = get(&state, "/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        assert!(body.contains("trackvia_status_writes_total 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
