//! Lease-based leader election with a write fence.
//!
//! Only the holder of the Lease reconciles. Holding is not a flag that a background task
//! flips when it notices a loss: it is a deadline. Each successful renewal (an update of the
//! Lease guarded by its `resourceVersion`) moves the deadline to the time the request was
//! sent plus the renew deadline, which is shorter than the Lease's duration. Every write the
//! controller sends goes through a client whose [`fence_layer`] refuses it once the deadline
//! has passed — also when the process was frozen and the clock ran on meanwhile, before any
//! task had the chance to notice. A standby counts the Lease's duration from the moment it
//! first saw the current version of the Lease (on its own monotonic clock), so it takes over
//! only after the old leader's fence has closed, whatever the clocks of the two nodes say.
//!
//! [`fence`] holds the deadline and the client layer enforcing it; [`lease`]
//! holds the [`Elector`] reading and writing the Lease. The timing and the
//! decision are here, pure.

mod fence;
mod lease;

use std::time::Duration;

use tokio::time::Instant;

pub use fence::{Fence, NotLeader, client, fence_layer};
pub use lease::Elector;

/// Errors of the election and of building its clients, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timing does not leave the margin the fence relies on.
    #[error("{0}")]
    Timing(&'static str),
    /// The user agent is not a valid header value.
    #[error("user agent {agent:?}: {source}")]
    UserAgent {
        /// The value given.
        agent: String,
        /// Why it is refused.
        #[source]
        source: http::header::InvalidHeaderValue,
    },
    /// The Kubernetes client could not be built.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The API server did not answer within the renew deadline.
    #[error("no answer {0}")]
    NoAnswer(&'static str),
    /// A call about the Lease failed.
    #[error("{doing}: {source}")]
    Kube {
        /// What was being done.
        doing: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

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
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(LeaderError::Timing(
                "the retry period must be above zero and below the renew deadline",
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaderError::Timing(
                "the renew deadline must be below the lease duration",
            ));
        }
        if self.lease_duration.as_secs() < 1 || self.lease_duration.subsec_nanos() != 0 {
            return Err(LeaderError::Timing(
                "the lease duration must be a whole number of seconds",
            ));
        }
        Ok(())
    }
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
