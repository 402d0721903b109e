//! What the status records of the credentials (`credentialsFingerprint`, taken
//! of them as read at `credentialsVersion`), and when a pass may go by that
//! record instead of reading their Secret: the status was written for the spec
//! as it is now, and the Secret's watch reports it still at the recorded
//! version. A resourceVersion names one write of one object, so the Secret
//! still holds the credentials the fingerprint was taken of. A restarted
//! operator, or a new leader, then reads no source Secret for a connection
//! with nothing due (the output Secret has its own record, see
//! [`super::published`]).

use crate::crd::TrackViaConnectionStatus;

/// The recorded (version, fingerprint) of the credentials, when the status was
/// written for `generation` of the spec (another one may read other keys or
/// another Secret).
pub fn recorded(
    status: Option<&TrackViaConnectionStatus>,
    generation: Option<i64>,
) -> Option<(&str, &str)> {
    let status = status?;
    if generation.is_none() || status.observed_generation != generation {
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

    fn status(
        generation: i64,
        version: Option<&str>,
        fp: Option<&str>,
    ) -> TrackViaConnectionStatus {
        TrackViaConnectionStatus {
            observed_generation: Some(generation),
            credentials_version: version.map(Into::into),
            credentials_fingerprint: fp.map(Into::into),
            ..TrackViaConnectionStatus::default()
        }
    }

    #[test]
    fn the_record_counts_only_for_the_spec_it_was_written_for() {
        let written = status(3, Some("41"), Some("fp"));
        assert_eq!(recorded(Some(&written), Some(3)), Some(("41", "fp")));
        // A new spec may name another Secret or other keys.
        assert_eq!(recorded(Some(&written), Some(4)), None);
        assert_eq!(recorded(Some(&written), None), None);
        // Written before the field existed, without credentials, or by no one.
        assert_eq!(recorded(Some(&status(3, None, Some("fp"))), Some(3)), None);
        assert_eq!(recorded(Some(&status(3, Some("41"), None)), Some(3)), None);
        assert_eq!(
            recorded(Some(&status(3, Some(""), Some("fp"))), Some(3)),
            None
        );
        assert_eq!(recorded(None, Some(3)), None);
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
