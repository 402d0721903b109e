//! The token's date: the `Expiring` condition, and what a past `tokenExpiresOn`
//! means once TrackVia has accepted the credentials after it (a stale date).

use jiff::Timestamp;

use super::conditions::{ConditionStatus, Instants, Setter, fmt_time};
use super::spec::ParsedSpec;
use crate::crd::{TrackViaConnectionStatus, condition, reason};

/// Ready's message when the credentials work.
pub(super) const READY_MESSAGE: &str = "the credentials work and are published";

/// Ready's message when the credentials work under a past `tokenExpiresOn`.
pub(super) const STALE_READY_MESSAGE: &str = "the credentials work and are published, but spec.tokenExpiresOn is in the past: the date is stale; set it to the token's expiration date in TrackVia";

/// TrackVia accepted the current credentials at or after the spec's expiry
/// instant: the date no longer says when the token stops working.
pub(super) fn date_stale(
    spec: Option<&ParsedSpec>,
    status: &TrackViaConnectionStatus,
    now: Timestamp,
) -> bool {
    let Some(expires) = spec.and_then(|s| s.token_expires_at) else {
        return false;
    };
    now >= expires
        && status.verified_fingerprint.is_some()
        && status.verified_fingerprint == status.credentials_fingerprint
        && Instants::of(status)
            .last_success
            .is_some_and(|at| at >= expires)
}

/// Ready's reason and message when the credentials work: stale or not.
pub(super) fn working_as(stale: bool) -> (&'static str, &'static str) {
    if stale {
        (reason::EXPIRY_DATE_STALE, STALE_READY_MESSAGE)
    } else {
        (reason::VERIFIED, READY_MESSAGE)
    }
}

/// Ready's reason and message when the credentials work, from the `Expiring`
/// condition already set on `status`.
pub(super) fn working(status: &TrackViaConnectionStatus) -> (&'static str, &'static str) {
    working_as(
        status
            .condition(condition::EXPIRING)
            .is_some_and(|c| c.reason == reason::EXPIRY_DATE_STALE),
    )
}

/// Set `Expiring` from the dates, the clock and whether the date is stale.
pub(super) fn set_expiring(
    next: &mut TrackViaConnectionStatus,
    spec: Option<&ParsedSpec>,
    setter: &Setter,
) {
    let now = setter.now;
    let stale = date_stale(spec, next, now);
    let (status, why, message) = match spec.map(|s| (s.token_expires_at, s.expiry_warning_at)) {
        Some((Some(expires), _)) if stale => (
            ConditionStatus::True,
            reason::EXPIRY_DATE_STALE,
            format!(
                "TrackVia accepted the credentials after spec.tokenExpiresOn had passed ({}): the date is stale; set it to the token's expiration date in TrackVia",
                fmt_time(expires)
            ),
        ),
        Some((Some(expires), Some(_))) if now >= expires => (
            ConditionStatus::False,
            reason::EXPIRED,
            format!("the token expired at {}", fmt_time(expires)),
        ),
        Some((Some(expires), Some(warn))) if now >= warn => (
            ConditionStatus::True,
            reason::EXPIRING,
            format!("the token expires at {}", fmt_time(expires)),
        ),
        Some((Some(expires), Some(warn))) => (
            ConditionStatus::False,
            reason::NOT_EXPIRING,
            format!(
                "the token expires at {}; warning from {}",
                fmt_time(expires),
                fmt_time(warn)
            ),
        ),
        _ => (
            ConditionStatus::False,
            reason::NO_EXPIRY_DATE,
            "spec.tokenExpiresOn is not set".into(),
        ),
    };
    setter.set(next, condition::EXPIRING, status, why, &message);
}
