//! The [`Elector`]: reads the Lease, takes or renews it with writes guarded by
//! its resourceVersion, moves the fence's deadline on each renewal, and hands
//! the Lease back on a clean stop.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

use super::{Fence, LeaderError, LeaseSettings, Lost, Step, decide};

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
    pub async fn release(&mut self) -> Result<(), LeaderError> {
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
            Err(source) => Err(LeaderError::Kube {
                doing: "releasing the Lease",
                source,
            }),
        }
    }

    /// One read and, when due, one guarded write. `Ok(None)`: this process holds the Lease
    /// now; `Ok(Some(holder))`: another does.
    async fn attempt(&mut self) -> Result<Option<String>, LeaderError> {
        let bound = self.settings.renew_deadline;
        let read = tokio::time::timeout(bound, self.api.get_opt(&self.settings.name))
            .await
            .map_err(|_| LeaderError::NoAnswer("reading the Lease"))?
            .map_err(|source| LeaderError::Kube {
                doing: "reading the Lease",
                source,
            })?;
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
    ) -> Result<Option<String>, LeaderError> {
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
            Err(_) => Err(LeaderError::NoAnswer("writing the Lease")),
            Ok(Ok(lease)) => {
                self.fence.extend_to(sent + self.settings.renew_deadline);
                let version = lease.metadata.resource_version.clone().unwrap_or_default();
                self.observed = Some((version, Instant::now()));
                self.held = Some(lease);
                Ok(None)
            }
            // Someone else wrote first: read again next time.
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => Ok(Some("another candidate".into())),
            Ok(Err(source)) => Err(LeaderError::Kube {
                doing: "writing the Lease",
                source,
            }),
        }
    }
}
