//! The write fence: the instant until which this process may write, and the
//! client layer that refuses every write once it has passed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::LeaderError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The instant until which this process may write, shared by the elector and the client.
#[derive(Debug, Default)]
pub struct Fence {
    until: Mutex<Option<Instant>>,
}

impl Fence {
    /// A closed fence (a standby's).
    pub fn closed() -> Arc<Fence> {
        Arc::new(Fence::default())
    }

    /// Whether writes may go out now.
    pub fn is_open(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() < d)
    }

    /// The current deadline, if leading.
    pub fn deadline(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn extend_to(&self, until: Instant) {
        let mut current = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// Refuse every write from now on.
    pub fn close(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The error a fenced write fails with.
#[derive(Debug, thiserror::Error)]
#[error("write refused: this process does not hold the leader Lease (not renewed in time)")]
pub struct NotLeader;

/// Requests that change something (anything but GET, HEAD, OPTIONS).
fn is_write(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

/// A client layer refusing writes while the [`Fence`] is closed.
#[derive(Clone)]
pub struct FenceLayer(pub Arc<Fence>);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// The service made by [`FenceLayer`].
#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Arc<Fence>,
}

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
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
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Checked as the request is handed to the connection, not when the reconcile began.
        if is_write(request.method()) && !self.fence.is_open() {
            return Box::pin(std::future::ready(Err(Box::new(NotLeader) as BoxError)));
        }
        let sent = self.inner.call(request);
        Box::pin(async move { sent.await.map_err(Into::into) })
    }
}

/// A Kubernetes client whose requests carry `user_agent`, and whose writes pass `fence` if given.
pub fn client(
    mut config: kube::Config,
    user_agent: &str,
    fence: Option<Arc<Fence>>,
) -> Result<kube::Client, LeaderError> {
    let agent =
        http::HeaderValue::from_str(user_agent).map_err(|source| LeaderError::UserAgent {
            agent: user_agent.to_string(),
            source,
        })?;
    config.headers.push((http::header::USER_AGENT, agent));
    let builder = kube::client::ClientBuilder::try_from(config).map_err(LeaderError::Client)?;
    Ok(match fence {
        Some(fence) => builder.with_layer(&FenceLayer(fence)).build(),
        None => builder.build(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_at_its_deadline_without_anyone_noticing() {
        let fence = Fence::closed();
        assert!(!fence.is_open());
        fence.extend_to(Instant::now() + Duration::from_secs(10));
        assert!(fence.is_open());
        // An older renewal answered late never shortens the deadline.
        fence.extend_to(Instant::now() + Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(fence.is_open());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!fence.is_open());
    }

    #[test]
    fn only_reads_pass_a_closed_fence() {
        for m in [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS] {
            assert!(!is_write(&m));
        }
        for m in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            assert!(is_write(&m));
        }
    }
}
