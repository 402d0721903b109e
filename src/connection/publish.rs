//! Publishing: whether the current credentials go to the output Secret, and
//! what writing it did to `SecretSynced` and `Ready`.

use compact_str::CompactString;
use jiff::Timestamp;

use super::conditions::{ConditionExt, ConditionStatus, Setter};
use super::expiry;
use super::readiness::HELD_BY_SECRET;
use crate::crd::{Publish, TrackViaConnectionStatus, condition, reason};

/// Ready reasons under which nothing is published.
const BLOCKING: [&str; 4] = [
    reason::INVALID_SPEC,
    reason::HOST_NOT_ALLOWED,
    reason::CREDENTIALS_NOT_FOUND,
    reason::CREDENTIALS_UNREADABLE,
];

/// Should the current credentials be written to the output Secret?
pub fn should_publish(publish: Publish, status: &TrackViaConnectionStatus) -> bool {
    let Some(fingerprint) = status.credentials_fingerprint.as_deref() else {
        return false;
    };
    let ready_blocked = status
        .condition(condition::READY)
        .is_some_and(|r| r.reason_in(&BLOCKING));
    if ready_blocked {
        return false;
    }
    match publish {
        Publish::Always => true,
        Publish::Verified => status.verified_fingerprint.as_deref() == Some(fingerprint),
    }
}

/// What happened to the output Secret this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretOutcome {
    /// Written or already up to date, with this content hash.
    Synced {
        /// Content hash of the Secret.
        hash: String,
        /// Its version and rendering, for `status.publishedVersion`; `None` when
        /// the API server returned no version.
        published: Option<CompactString>,
    },
    /// Not written: the credentials are not verified (publish: Verified).
    NotPublished,
    /// Not written: a Secret the operator does not own is at the name.
    Conflict(String),
    /// Writing failed.
    Error(String),
}

/// Fill in `SecretSynced` and let a Secret problem override a True `Ready`.
pub fn finish(
    mut status: TrackViaConnectionStatus,
    secret: &SecretOutcome,
    generation: Option<i64>,
    now: Timestamp,
) -> TrackViaConnectionStatus {
    let setter = Setter { generation, now };
    let secret_name = status.secret_name.clone().unwrap_or_default();
    // `desired_status` carries a conflict or an unwritable Secret over only
    // where Ready would otherwise be True (verified, or inside the grace period
    // of an outage).
    let ready = status.condition(condition::READY);
    let held = ready.is_some_and(|r| r.reason_in(&HELD_BY_SECRET));
    let ready_true = held || ready.is_some_and(|r| r.is(ConditionStatus::True));
    if held && !matches!(secret, SecretOutcome::Conflict(_) | SecretOutcome::Error(_)) {
        let (why, message) = expiry::working(&status);
        setter.set(
            &mut status,
            condition::READY,
            ConditionStatus::True,
            why,
            message,
        );
    }
    let synced = |status: &mut TrackViaConnectionStatus, state, why: &str, message: &str| {
        setter.set(status, condition::SECRET_SYNCED, state, why, message);
    };
    match secret {
        SecretOutcome::Synced { hash, published } => {
            // Only credentials that may be published are written (see
            // `should_publish`), so the Secret holds the current ones.
            let message = format!("Secret {secret_name} is up to date");
            status.published_hash = Some(hash.into());
            status.published_version = published.clone();
            synced(&mut status, ConditionStatus::True, reason::SYNCED, &message);
        }
        SecretOutcome::NotPublished => {
            let message = if status.published_hash.is_some() {
                format!(
                    "the current credentials are not verified: Secret {secret_name} keeps the last verified ones"
                )
            } else {
                format!(
                    "Secret {secret_name} is written once TrackVia accepts the credentials (publish: Verified)"
                )
            };
            synced(
                &mut status,
                ConditionStatus::False,
                reason::NOT_PUBLISHED,
                &message,
            );
        }
        SecretOutcome::Conflict(msg) | SecretOutcome::Error(msg) => {
            let (synced_reason, ready_reason) = match secret {
                SecretOutcome::Conflict(_) => (reason::TARGET_CONFLICT, reason::TARGET_CONFLICT),
                // Applications cannot get working credentials: say so in the summary.
                _ => (reason::ERROR, reason::SECRET_SYNC_FAILED),
            };
            synced(&mut status, ConditionStatus::False, synced_reason, msg);
            if ready_true {
                setter.set(
                    &mut status,
                    condition::READY,
                    ConditionStatus::False,
                    ready_reason,
                    msg,
                );
            }
        }
    }
    status
}
