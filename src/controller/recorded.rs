//! What the status records of the credentials (`credentialsFingerprint`, taken
//! of them as read at `credentialsVersion`), and when a pass may go by that
//! record instead of reading their Secret: the status was written for the spec
//! as it is now, by a pass that published those credentials, and the Secret's
//! watch reports it still at the recorded version. A resourceVersion names one
//! write of one object, so the Secret still holds the credentials the
//! fingerprint was taken of. A restarted operator, or a new leader, then reads
//! no source Secret for a connection with nothing due (the output Secret has
//! its own record, see [`super::published`]).

use crate::crd::{ConditionStatus, TrackViaConnectionStatus, condition, reason};

/// The recorded (version, fingerprint) of the credentials, when the status was
/// written for `generation` of the spec (another one may read other keys or
/// another Secret) by a pass that published them. After a failed write, a
/// conflict, or while they are not to be published, the output Secret holds
/// other credentials than the fingerprinted ones, and they must be read.
pub fn record_of(
    status: Option<&TrackViaConnectionStatus>,
    generation: Option<i64>,
) -> Option<(&str, &str)> {
    let status = status?;
    if generation.is_none() || status.observed_generation != generation {
        return None;
    }
    let published = status
        .condition(condition::SECRET_SYNCED)
        .is_some_and(|c| c.status == ConditionStatus::True && c.reason == reason::SYNCED);
    if !published {
        return None;
    }
    let version = status.credentials_version.as_deref()?;
    let fingerprint = status.credentials_fingerprint.as_deref()?;
    (!version.is_empty()).then_some((version, fingerprint))
}

/// Is the Secret still at the recorded `version`, by its watch's report
/// (`None`: no report; `Some(None)`: deleted)?
pub fn still_at(version: &str, reported: Option<&Option<String>>) -> bool {
    matches!(reported, Some(Some(v)) if v == version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Condition;

    fn secret_synced(status: ConditionStatus, why: &str) -> Condition {
        Condition {
            type_: condition::SECRET_SYNCED.into(),
            status,
            reason: why.into(),
            message: "".into(),
            last_transition_time: "2026-12-03T00:00:00Z".into(),
            observed_generation: None,
        }
    }

    /// Written at `generation` by a pass that published the credentials.
    fn status(
        generation: i64,
        version: Option<&str>,
        fp: Option<&str>,
    ) -> TrackViaConnectionStatus {
        TrackViaConnectionStatus {
            observed_generation: Some(generation),
            credentials_version: version.map(Into::into),
            credentials_fingerprint: fp.map(Into::into),
            conditions: vec![secret_synced(ConditionStatus::True, reason::SYNCED)],
            ..TrackViaConnectionStatus::default()
        }
    }

    #[test]
    fn the_record_counts_only_for_the_spec_it_was_written_for() {
        let written = status(3, Some("41"), Some("fp"));
        assert_eq!(record_of(Some(&written), Some(3)), Some(("41", "fp")));
        // A new spec may name another Secret or other keys.
        assert_eq!(record_of(Some(&written), Some(4)), None);
        assert_eq!(record_of(Some(&written), None), None);
        // Written before the field existed, without credentials, or by no one.
        assert_eq!(record_of(Some(&status(3, None, Some("fp"))), Some(3)), None);
        assert_eq!(record_of(Some(&status(3, Some("41"), None)), Some(3)), None);
        assert_eq!(
            record_of(Some(&status(3, Some(""), Some("fp"))), Some(3)),
            None
        );
        assert_eq!(record_of(None, Some(3)), None);
    }

    #[test]
    fn the_record_counts_only_once_the_credentials_are_published() {
        // The write of the fingerprinted credentials failed, found a Secret not ours, or
        // they are not to be published: the output Secret holds others.
        for (state, why) in [
            (ConditionStatus::False, reason::ERROR),
            (ConditionStatus::False, reason::TARGET_CONFLICT),
            (ConditionStatus::False, reason::NOT_PUBLISHED),
            (ConditionStatus::Unknown, reason::SYNCED),
        ] {
            let written = TrackViaConnectionStatus {
                conditions: vec![secret_synced(state, why)],
                ..status(3, Some("41"), Some("fp"))
            };
            assert_eq!(record_of(Some(&written), Some(3)), None, "{why}");
        }
        let never = TrackViaConnectionStatus {
            conditions: Vec::new(),
            ..status(3, Some("41"), Some("fp"))
        };
        assert_eq!(record_of(Some(&never), Some(3)), None);
    }

    #[test]
    fn only_a_report_of_the_same_version_will_do() {
        let at = |v: &str| Some(v.to_string());
        assert!(still_at("41", Some(&at("41"))));
        // Written since (rotated, relabelled, or deleted and created again).
        assert!(!still_at("41", Some(&at("42"))));
        assert!(!still_at("41", Some(&None)));
        // No report (yet): the record alone proves nothing.
        assert!(!still_at("41", None));
    }
}
