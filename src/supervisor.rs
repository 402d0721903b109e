//! Runs the controller — alone, or only while this process leads — and stops it within a
//! bounded time on SIGTERM or SIGINT, whatever state the API server is in: in-flight
//! reconciles get [`DRAIN`] to finish, the Lease release gets [`RELEASE`], then the process
//! ends.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::leader::{Elector, Lost};
use crate::metrics::Metrics;

/// How long in-flight work may take to finish after a stop was asked for.
pub const DRAIN: Duration = Duration::from_secs(2);
/// How long handing the Lease back may take.
pub const RELEASE: Duration = Duration::from_secs(2);

/// The signal handlers could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("listening for signals: {0}")]
pub struct SignalsError(#[source] pub std::io::Error);

/// SIGTERM and SIGINT, listened to from start-up on.
pub struct Signals {
    term: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs the handlers (the default action, dying by the signal, no longer applies).
    pub fn install() -> Result<Signals, SignalsError> {
        let listen = |kind| signal(kind).map_err(SignalsError);
        Ok(Signals {
            term: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
        })
    }

    /// Resolves when a stop is asked for.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Runs `work` until it ends or a stop is asked for; then lets it finish for at most [`DRAIN`].
pub async fn run_single(work: impl Future<Output = ()>, signals: &mut Signals) {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        () = &mut work => return,
        () = signals.recv() => tracing::info!("stopping"),
    }
    if tokio::time::timeout(DRAIN, work).await.is_err() {
        tracing::warn!("in-flight work did not finish within {DRAIN:?}; stopping anyway");
    }
}

/// Waits for leadership, runs `work` while leading, and releases the Lease on a clean stop.
/// `Err` when leadership was lost: the caller exits so that only the new leader writes.
pub async fn run_elected<W: Future<Output = ()>>(
    mut elector: Elector,
    work: impl FnOnce() -> W,
    signals: &mut Signals,
    metrics: &Metrics,
) -> Result<(), Lost> {
    tokio::select! {
        biased;
        () = signals.recv() => {
            tracing::info!("stopping (standby)");
            return Ok(());
        }
        () = elector.acquire() => {}
    }
    tracing::info!("became leader; reconciling");
    metrics.leader.set(1);
    // Boxed, so that dropping it below really ends the controller (and its spawned watches).
    let mut work = Box::pin(work());
    let outcome = tokio::select! {
        biased;
        lost = elector.keep() => Err(lost),
        () = signals.recv() => {
            tracing::info!("stopping");
            // Keep renewing while in-flight work finishes.
            tokio::select! {
                biased;
                lost = elector.keep() => Err(lost),
                r = tokio::time::timeout(DRAIN, &mut work) => {
                    if r.is_err() {
                        tracing::warn!("in-flight work did not finish within {DRAIN:?}; stopping anyway");
                    }
                    Ok(())
                }
            }
        }
        () = &mut work => Ok(()),
    };
    metrics.leader.set(0);
    // Nothing of the controller runs past this point, whatever the outcome.
    drop(work);
    match tokio::time::timeout(RELEASE, elector.release()).await {
        Ok(Ok(())) => tracing::info!("released the Lease"),
        Ok(Err(e)) => tracing::warn!("{e}"),
        Err(_) => tracing::warn!("releasing the Lease: no answer within {RELEASE:?}"),
    }
    outcome
}
