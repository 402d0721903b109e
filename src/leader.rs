//! Lease-based leader election with a write fence.
//!
//! Only the holder of the Lease reconciles. Holding is not a flag that a background task
//! flips when it notices a loss: it is a deadline. Each successful renewal (an update of the
//! Lease guarded by its `resourceVersion`) moves the deadline to the time the request was
//! sent plus the renew deadline, which is shorter than the Lease's duration. Every write the
//! controller sends goes through a client whose [`FenceLayer`] refuses it once the deadline
//! has passed — also when the process was frozen and the clock ran on meanwhile, before any
//! task had the chance to notice. A standby counts the Lease's duration from the moment it
//! first saw the current version of the Lease (on its own monotonic clock), so it takes over
//! only after the old leader's fence has closed, whatever the clocks of the two nodes say.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Timing of the election. `renew_deadline` < `lease_duration` leaves the margin in which a
/// leader that could not renew has stopped writing while the Lease still names it.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This process's identity (holderIdentity).
    pub identity: String,
    /// How long a standby waits, after it last saw the Lease change, before taking it.
    pub lease_duration: Duration,
    /// How long after a renewal was sent the leader may still write.
    pub renew_deadline: Duration,
    /// Time between two attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Checks the ordering the fence relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err("the retry period must be above zero and below the renew deadline".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err("the renew deadline must be below the lease duration".into());
        }
        if self.lease_duration.as_secs() < 1 || self.lease_duration.subsec_nanos() != 0 {
            return Err("the lease duration must be a whole number of seconds".into());
        }
        Ok(())
    }
}

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

    fn extend_to(&self, until: Instant) {
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
) -> Result<kube::Client, String> {
    let agent = http::HeaderValue::from_str(user_agent)
        .map_err(|e| format!("user agent {user_agent:?}: {e}"))?;
    config.headers.push((http::header::USER_AGENT, agent));
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("building the Kubernetes client: {e}"))?;
    Ok(match fence {
        Some(fence) => builder.with_layer(&FenceLayer(fence)).build(),
        None => builder.build(),
    })
}

/// What to do with the Lease as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It names us: renew it.
    Renew,
    /// It is free, or expired by our own observation: take it.
    Acquire,
    /// Someone else holds it.
    Wait,
}

/// Decides from the holder, when this version of the Lease was first seen here, the
/// duration it announces and the time now. Pure.
pub fn decide(
    holder: Option<&str>,
    me: &str,
    first_seen: Instant,
    duration: Duration,
    now: Instant,
) -> Step {
    match holder {
        Some(h) if h == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) if now >= first_seen + duration => Step::Acquire,
        Some(_) => Step::Wait,
    }
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// No renewal succeeded before the renew deadline.
    DeadlinePassed,
    /// The Lease names another holder.
    TakenBy(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::DeadlinePassed => write!(f, "the Lease could not be renewed in time"),
            Lost::TakenBy(h) => write!(f, "the Lease is held by {h}"),
        }
    }
}

/// Runs the election for one process.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    fence: Arc<Fence>,
    /// resourceVersion of the Lease last read or written, and when it was first seen.
    observed: Option<(String, Instant)>,
    /// The Lease as this process last wrote it while holding it.
    held: Option<Lease>,
}

impl Elector {
    /// An elector using `client` (unfenced) for the Lease and guarding `fence`.
    pub fn new(client: kube::Client, settings: LeaseSettings, fence: Arc<Fence>) -> Elector {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            fence,
            observed: None,
            held: None,
        }
    }

    /// Returns once this process holds the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.attempt().await {
                Ok(None) => return,
                Ok(Some(holder)) => tracing::debug!(%holder, "the Lease is held"),
                Err(e) => tracing::warn!("leader election: {e}"),
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// Renews the Lease every retry period; returns when leadership is over. By then the
    /// fence is closed: no write has left since the deadline.
    pub async fn keep(&mut self) -> Lost {
        loop {
            let Some(deadline) = self.fence.deadline() else {
                return Lost::DeadlinePassed;
            };
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => {
                    self.fence.close();
                    return Lost::DeadlinePassed;
                }
                () = tokio::time::sleep(self.settings.retry_period) => {}
            }
            if !self.fence.is_open() {
                self.fence.close();
                return Lost::DeadlinePassed;
            }
            match tokio::time::timeout_at(deadline, self.attempt()).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(holder))) => {
                    self.fence.close();
                    return Lost::TakenBy(holder);
                }
                Ok(Err(e)) => tracing::warn!("renewing the Lease: {e}"),
                Err(_) => tracing::warn!("renewing the Lease: no answer before the renew deadline"),
            }
        }
    }

    /// Closes the fence, then hands the Lease back if it still names this process, so a
    /// standby takes over at once. The update is guarded by the version last written.
    pub async fn release(&mut self) -> Result<(), String> {
        self.fence.close();
        let Some(mut lease) = self.held.take() else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// One read and, when due, one guarded write. `Ok(None)`: this process holds the Lease
    /// now; `Ok(Some(holder))`: another does.
    async fn attempt(&mut self) -> Result<Option<String>, String> {
        let bound = self.settings.renew_deadline;
        let read = tokio::time::timeout(bound, self.api.get_opt(&self.settings.name))
            .await
            .map_err(|_| "no answer reading the Lease".to_string())?
            .map_err(|e| format!("reading the Lease: {e}"))?;
        let now = Instant::now();
        let Some(current) = read else {
            return self.write(None, now).await;
        };
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                self.observed = Some((version, now));
                now
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.settings.lease_duration);
        let holder = spec.holder_identity.as_deref();
        match decide(holder, &self.settings.identity, first_seen, duration, now) {
            Step::Wait => Ok(Some(holder.unwrap_or_default().to_string())),
            Step::Renew | Step::Acquire => self.write(Some(current), now).await,
        }
    }

    /// Creates the Lease or updates `current` (guarded by its resourceVersion) to name us.
    async fn write(
        &mut self,
        current: Option<Lease>,
        sent: Instant,
    ) -> Result<Option<String>, String> {
        let now = MicroTime(jiff::Timestamp::now());
        let identity = self.settings.identity.clone();
        let duration = i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let bound = self.settings.renew_deadline;
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(identity),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_duration_seconds: Some(duration),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                tokio::time::timeout(bound, self.api.create(&PostParams::default(), &lease)).await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if spec.holder_identity.as_deref() != Some(identity.as_str()) {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(now.clone());
                    spec.holder_identity = Some(identity);
                }
                spec.renew_time = Some(now);
                spec.lease_duration_seconds = Some(duration);
                lease.metadata.managed_fields = None;
                tokio::time::timeout(
                    bound,
                    self.api
                        .replace(&self.settings.name, &PostParams::default(), &lease),
                )
                .await
            }
        };
        match result {
            Err(_) => Err("no answer writing the Lease".into()),
            Ok(Ok(lease)) => {
                self.fence.extend_to(sent + self.settings.renew_deadline);
                let version = lease.metadata.resource_version.clone().unwrap_or_default();
                self.observed = Some((version, Instant::now()));
                self.held = Some(lease);
                Ok(None)
            }
            // Someone else wrote first: read again next time.
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => Ok(Some("another candidate".into())),
            Ok(Err(e)) => Err(format!("writing the Lease: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_is_taken_only_a_full_duration_after_it_was_last_seen_to_change() {
        let seen = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(decide(Some("a"), "b", seen, d, seen), Step::Wait);
        assert_eq!(
            decide(
                Some("a"),
                "b",
                seen,
                d,
                seen + Duration::from_millis(14_999)
            ),
            Step::Wait
        );
        assert_eq!(decide(Some("a"), "b", seen, d, seen + d), Step::Acquire);
        assert_eq!(decide(None, "b", seen, d, seen), Step::Acquire);
        assert_eq!(decide(Some(""), "b", seen, d, seen), Step::Acquire);
        assert_eq!(decide(Some("b"), "b", seen, d, seen), Step::Renew);
    }

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

    #[test]
    fn the_timing_must_leave_a_margin() {
        let ok = LeaseSettings {
            name: "l".into(),
            namespace: "n".into(),
            identity: "i".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.renew_deadline = Duration::from_secs(15);
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.retry_period = Duration::from_secs(10);
        assert!(bad.validate().is_err());
    }
}
