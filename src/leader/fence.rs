//! The write fence: the instant until which this process may write, and the
//! client layer that refuses every write once it has passed.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::LeaderError;

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
        *self.until.lock()
    }

    pub(super) fn extend_to(&self, until: Instant) {
        let mut current = self.until.lock();
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// Refuse every write from now on.
    pub fn close(&self) {
        *self.until.lock() = None;
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

/// A client layer refusing writes while the [`Fence`] is closed. The check is
/// made when the client sends each request, not when the reconcile began: a
/// pass that outlives the Lease has its later writes refused.
pub fn fence_layer<B>(
    fence: Arc<Fence>,
) -> tower::filter::FilterLayer<
    impl FnMut(http::Request<B>) -> Result<http::Request<B>, NotLeader> + Clone,
> {
    tower::filter::FilterLayer::new(move |request: http::Request<B>| {
        if is_write(request.method()) && !fence.is_open() {
            Err(NotLeader)
        } else {
            Ok(request)
        }
    })
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
        Some(fence) => builder.with_layer(&fence_layer(fence)).build(),
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

    /// Sends a request with `method` through `service`: whether it was refused as
    /// [`NotLeader`].
    async fn refused<S>(service: &mut S, method: http::Method) -> bool
    where
        S: tower::Service<http::Request<()>, Error = tower::BoxError>,
    {
        use tower::ServiceExt;
        let request = http::Request::builder()
            .method(method)
            .body(())
            .expect("a request");
        match service.ready().await.expect("ready").call(request).await {
            Ok(_) => false,
            Err(e) => e.is::<NotLeader>(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_refuses_writes_when_they_are_sent_after_the_deadline() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tower::Layer;
        let fence = Fence::closed();
        let sent = Arc::new(AtomicUsize::new(0));
        let counted = sent.clone();
        let inner = tower::service_fn(move |_: http::Request<()>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
        });
        let mut service = fence_layer(fence.clone()).layer(inner);
        let sent = || sent.load(Ordering::SeqCst);

        // Closed: writes never reach the connection; reads do.
        for m in [
            http::Method::POST,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            assert!(refused(&mut service, m).await);
        }
        assert_eq!(sent(), 0);
        assert!(!refused(&mut service, http::Method::GET).await);
        assert_eq!(sent(), 1);

        // Open: writes pass, until the deadline passes (the service was built before).
        fence.extend_to(Instant::now() + Duration::from_secs(10));
        assert!(!refused(&mut service, http::Method::PATCH).await);
        assert_eq!(sent(), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(refused(&mut service, http::Method::PATCH).await);
        assert!(!refused(&mut service, http::Method::HEAD).await);
        assert_eq!(sent(), 3);
    }
}
