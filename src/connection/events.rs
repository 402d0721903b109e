//! Events: the transitions between two statuses worth telling people about
//! (a new `Ready` reason, `Expiring` turning True, new credentials published).

use super::conditions::{ConditionExt, ConditionStatus};
use crate::crd::{TrackViaConnectionStatus, condition, reason};

/// Event reason when `Expiring` turns True.
const EXPIRING_EVENT: &str = "Expiring";
/// Event reason when the published credentials change.
const SECRET_UPDATED_EVENT: &str = "SecretUpdated";

/// A transition worth an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Normal or Warning.
    pub warning: bool,
    /// Event reason.
    pub reason: String,
    /// Event note.
    pub message: String,
}

/// Does a status differ in anything a reader cares about? Timestamps move only
/// with real events here, so a plain comparison is the right test, but for
/// `credentialsVersion`: a new version of the same credentials (their Secret's
/// labels edited, say) is recorded with the next change, not written alone,
/// which for a Secret read by a thousand connections would be a thousand writes.
pub fn changed(old: Option<&TrackViaConnectionStatus>, new: &TrackViaConnectionStatus) -> bool {
    let Some(old) = old else {
        return true;
    };
    if old.credentials_version == new.credentials_version {
        return old != new;
    }
    *old != TrackViaConnectionStatus {
        credentials_version: old.credentials_version.clone(),
        ..new.clone()
    }
}

/// Events for what changed between two statuses: a new Ready reason, Expiring turning True.
pub fn transitions(
    old: Option<&TrackViaConnectionStatus>,
    new: &TrackViaConnectionStatus,
) -> Vec<Transition> {
    let mut out: Vec<Transition> = ready_moved(old, new).into_iter().collect();
    let was_expiring = old
        .and_then(|o| o.condition(condition::EXPIRING))
        .is_some_and(|c| c.is(ConditionStatus::True));
    if let Some(exp) = new.condition(condition::EXPIRING)
        && exp.is(ConditionStatus::True)
        && !was_expiring
    {
        let event_reason = if exp.reason == reason::EXPIRY_DATE_STALE {
            reason::EXPIRY_DATE_STALE
        } else {
            EXPIRING_EVENT
        };
        // A stale date also moves Ready's reason: one event says it.
        out.retain(|t| t.reason != event_reason);
        out.push(Transition {
            warning: true,
            reason: event_reason.into(),
            message: exp.message.to_string(),
        });
    }
    let old_hash = old.and_then(|o| o.published_hash.as_deref());
    if let Some(hash) = new.published_hash.as_deref()
        && old_hash.is_some_and(|h| h != hash)
    {
        out.push(Transition {
            warning: false,
            reason: SECRET_UPDATED_EVENT.into(),
            message: format!(
                "Secret {} now holds new credentials",
                new.secret_name.as_deref().unwrap_or("")
            ),
        });
    }
    out
}

/// The event for a new Ready status or reason, if it deserves one.
fn ready_moved(
    old: Option<&TrackViaConnectionStatus>,
    new: &TrackViaConnectionStatus,
) -> Option<Transition> {
    let ready = new.condition(condition::READY)?;
    let old_ready = old.and_then(|o| o.condition(condition::READY));
    let moved = old_ready.is_none_or(|o| o.status != ready.status || o.reason != ready.reason);
    // A new connection that is Ready at its first answer records no event
    // (its status says so): creating a thousand writes no thousand Events.
    // A new connection has no status until that answer; one that had a
    // status before (missing credentials, an invalid spec…) and passed
    // through a pending check has recovered, which is recorded.
    let first_answer = old_ready.is_none();
    let is_true = ready.is(ConditionStatus::True);
    let quiet = first_answer && is_true && ready.reason == reason::VERIFIED;
    (moved && ready.reason != reason::VERIFICATION_PENDING && !quiet).then(|| Transition {
        warning: !is_true || ready.reason == reason::EXPIRY_DATE_STALE,
        reason: ready.reason.to_string(),
        message: ready.message.to_string(),
    })
}
