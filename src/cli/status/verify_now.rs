//! `status verify NAME`: ask the operator to check a connection now (the
//! `trackvia.io/verify-requested-at` annotation) and wait for its answer. The
//! operator records the annotation's value in `status.verifyRequestedAt` only
//! once the check is answered, so that field equal to the value written here
//! is the answer. The exit code is that of the `verify` command.
//!
//! The decisions are pure functions of the connection and `now`; [`run`] does
//! the writing and the watching.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use super::{Error, connect, safe};
use crate::connection::fmt_time;
use crate::crd::{
    TrackViaConnection, TrackViaConnectionStatus, VERIFY_REQUESTED_ANNOTATION, condition, reason,
};
use crate::trackvia::{FORCED_GAP, Rejection, VerificationOutcome};

/// Exit code when no answer came within the timeout (as `verify` without a definite answer).
pub const NO_ANSWER: u8 = 5;
/// Exit code of an error that is not an answer (not found, refused by RBAC, …).
pub const OTHER_ERROR: u8 = 1;

/// What to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace; `None` means the kubeconfig context's.
    pub namespace: Option<String>,
    /// The connection.
    pub name: String,
    /// Kubeconfig file; `None` means kubectl's default.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; `None` means the current one.
    pub context: Option<String>,
    /// How long to wait for the answer.
    pub timeout: Duration,
}

/// The result: the exit code and the lines for stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code, as the `verify` command's.
    pub code: u8,
    /// What the operator answered.
    pub lines: Vec<String>,
}

/// Exit code for the reason of the `Verified` condition: 0 verified, 2 unauthorized,
/// 3 expired, 4 forbidden, 5 no definite answer, 1 anything that stopped the check
/// (missing or unreadable Secret, invalid spec, host not allowed).
pub fn exit_code(verified_reason: &str) -> u8 {
    match verified_reason {
        reason::VERIFIED => 0,
        reason::UNAUTHORIZED => 2,
        reason::EXPIRED => 3,
        reason::FORBIDDEN => 4,
        reason::TRANSIENT_FAILURE
        | reason::RATE_LIMITED
        | reason::UNREACHABLE
        | reason::VERIFICATION_PENDING => NO_ANSWER,
        _ => OTHER_ERROR,
    }
}

/// The exit code and line of a direct answer from TrackVia (the `verify` command's):
/// 0 verified, 2 unauthorized, 3 expired, 4 forbidden, 5 no definite answer.
pub fn answer(outcome: &VerificationOutcome) -> (u8, String) {
    match outcome {
        VerificationOutcome::Verified { http_status } => (
            0,
            format!("Verified: TrackVia accepted the credentials (HTTP {http_status})"),
        ),
        VerificationOutcome::Rejected {
            rejection,
            http_status,
            detail,
        } => {
            let (code, word) = match rejection {
                Rejection::Unauthorized => (2, "Unauthorized"),
                Rejection::Expired => (3, "Expired"),
                Rejection::Forbidden => (4, "Forbidden"),
            };
            (code, format!("{word}: HTTP {http_status}: {detail}"))
        }
        VerificationOutcome::Transient { kind, detail, .. } => (
            NO_ANSWER,
            format!("Unreachable ({}): {detail}", kind.as_str()),
        ),
    }
}

/// Ask the operator for a check of `name` now: the annotation's value, which the
/// operator copies to `status.verifyRequestedAt` once the check is answered.
pub async fn request_check(
    api: &Api<TrackViaConnection>,
    name: &str,
    now: Timestamp,
) -> Result<String, kube::Error> {
    let requested = now.to_string();
    let body = json!({"metadata": {"annotations": {VERIFY_REQUESTED_ANNOTATION: requested}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(requested)
}

/// Has the operator answered the request whose annotation value is `requested`,
/// for the connection's current spec?
pub fn answered(tvc: &TrackViaConnection, requested: &str) -> bool {
    tvc.status.as_ref().is_some_and(|s| {
        s.verify_requested_at.as_deref() == Some(requested)
            && s.observed_generation >= tvc.metadata.generation
    })
}

/// The answer as the exit code and lines: the `Verified` condition, and `Ready`
/// when it says something else.
pub fn outcome(status: &TrackViaConnectionStatus) -> Outcome {
    let verified = status.condition(condition::VERIFIED);
    let ready = status.condition(condition::READY);
    let Some(first) = verified.or(ready) else {
        return Outcome {
            code: OTHER_ERROR,
            lines: vec!["the operator recorded the request without any condition".into()],
        };
    };
    let mut lines = vec![format!("{}: {}", first.reason, first.message)];
    if let (Some(v), Some(r)) = (verified, ready)
        && (r.reason != v.reason || r.message != v.message)
    {
        lines.push(format!("Ready: {} ({}): {}", r.status, r.reason, r.message));
    }
    if let Some(at) = &status.last_verified_time {
        lines.push(format!("Last verified: {at}"));
    }
    Outcome {
        code: exit_code(&first.reason),
        lines,
    }
}

/// The latest instant a forced check asked for at `now` may be held back to by
/// the operator's limit of one forced check per connection per [`FORCED_GAP`];
/// `None` when it cannot be held back. The last forced check ran at or before
/// `lastVerifiedTime`, so it is held back at most until that plus the gap.
pub fn forced_limit_until(
    before: Option<&TrackViaConnectionStatus>,
    now: Timestamp,
) -> Option<Timestamp> {
    let before = before?;
    before.verify_requested_at.as_ref()?;
    let last: Timestamp = before.last_verified_time.as_deref()?.parse().ok()?;
    let gap = jiff::SignedDuration::try_from(FORCED_GAP).ok()?;
    let until = last.checked_add(gap).ok()?;
    (until > now).then_some(until)
}

/// Annotate the connection and wait for the operator's answer. Notes (a check held
/// back by the forced-check limit) go to `note` as they arise; `Err` is an error
/// that is not an answer (exit code [`OTHER_ERROR`]).
pub async fn run(options: Options, mut note: impl FnMut(&str)) -> Result<Outcome, Error> {
    let (client, namespace) = connect::connect_in(
        options.kubeconfig.as_deref(),
        options.context.as_deref(),
        options.namespace.as_deref(),
    )
    .await?;
    let name = options.name.as_str();
    let api: Api<TrackViaConnection> = Api::namespaced(client, &namespace);
    let before = api
        .get_opt(name)
        .await
        .map_err(|e| Error::annotate(name, e))?
        .ok_or_else(|| Error::NotFoundIn {
            name: name.to_string(),
            namespace: namespace.clone(),
        })?;

    let now = Timestamp::now();
    let requested = request_check(&api, name, now)
        .await
        .map_err(|e| Error::annotate(name, e))?;
    if let Some(until) = forced_limit_until(before.status.as_ref(), now) {
        note(&format!(
            "The operator runs at most one forced check per connection per minute and the last \
             check of {name} was at {}: this one may be deferred until {}.",
            before
                .status
                .as_ref()
                .and_then(|s| s.last_verified_time.as_deref())
                .unwrap_or("-"),
            fmt_time(until)
        ));
    }

    let wait = await_condition(api, name, |tvc: Option<&TrackViaConnection>| {
        tvc.is_none_or(|t| answered(t, &requested))
    });
    match tokio::time::timeout(options.timeout, wait).await {
        Err(_) => Ok(Outcome {
            code: NO_ANSWER,
            lines: vec![format!(
                "No answer within {}s: is the operator running and watching namespace {namespace}? \
                 The request stays; `status {name}` shows the answer when it comes.",
                options.timeout.as_secs()
            )],
        }),
        Ok(Err(source)) => Err(Error::Watch {
            name: name.to_string(),
            source,
        }),
        Ok(Ok(None)) => Err(Error::Deleted(name.to_string())),
        Ok(Ok(Some(tvc))) => Ok(outcome(&tvc.status.unwrap_or_default())),
    }
    .map(|mut o| {
        for line in &mut o.lines {
            *line = safe::for_terminal(line).into_owned();
        }
        o
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn tvc(generation: i64, status: serde_json::Value) -> TrackViaConnection {
        serde_json::from_value(json!({
            "apiVersion": "trackvia.io/v1alpha1",
            "kind": "TrackViaConnection",
            "metadata": {"name": "crm", "namespace": "apps", "generation": generation},
            "spec": {"credentialsSecretRef": {"name": "src"}},
            "status": status,
        }))
        .unwrap()
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2030-01-01T00:00:00Z"})
    }

    #[test]
    fn exit_codes_are_those_of_verify() {
        assert_eq!(exit_code("Verified"), 0);
        assert_eq!(exit_code("Unauthorized"), 2);
        assert_eq!(exit_code("Expired"), 3);
        assert_eq!(exit_code("Forbidden"), 4);
        for r in [
            "TransientFailure",
            "RateLimited",
            "Unreachable",
            "VerificationPending",
        ] {
            assert_eq!(exit_code(r), 5, "{r}");
        }
        for r in ["CredentialsNotFound", "InvalidSpec", "HostNotAllowed"] {
            assert_eq!(exit_code(r), 1, "{r}");
        }
    }

    #[test]
    fn the_answer_is_the_recorded_request_for_the_current_generation() {
        let requested = "2030-01-01T00:00:05.123Z";
        let done = json!({"observedGeneration": 2, "verifyRequestedAt": requested});
        assert!(answered(&tvc(2, done.clone()), requested));
        assert!(!answered(&tvc(3, done), requested), "an older spec");
        let earlier = json!({"observedGeneration": 2, "verifyRequestedAt": "2030-01-01T00:00:00Z"});
        assert!(!answered(&tvc(2, earlier), requested));
        assert!(!answered(&tvc(2, json!(null)), requested));
    }

    #[test]
    fn outcome_lines_golden() {
        let status: TrackViaConnectionStatus = serde_json::from_value(json!({
            "conditions": [
                cond("Ready", "True", "Verified", "Secret crm-out holds verified credentials"),
                cond("Verified", "True", "Verified", "TrackVia accepted the credentials (HTTP 200)"),
            ],
            "lastVerifiedTime": "2030-01-01T00:00:06Z",
        }))
        .unwrap();
        assert_eq!(
            outcome(&status),
            Outcome {
                code: 0,
                lines: vec![
                    "Verified: TrackVia accepted the credentials (HTTP 200)".into(),
                    "Ready: True (Verified): Secret crm-out holds verified credentials".into(),
                    "Last verified: 2030-01-01T00:00:06Z".into(),
                ],
            }
        );
        let missing: TrackViaConnectionStatus = serde_json::from_value(json!({
            "conditions": [cond("Ready", "False", "CredentialsNotFound", "Secret src not found")],
        }))
        .unwrap();
        assert_eq!(
            outcome(&missing),
            Outcome {
                code: 1,
                lines: vec!["CredentialsNotFound: Secret src not found".into()],
            }
        );
    }

    #[test]
    fn a_check_soon_after_the_last_may_be_deferred() {
        let now = ts("2030-01-01T00:00:30Z");
        let status = |requested: Option<&str>, last: Option<&str>| -> TrackViaConnectionStatus {
            serde_json::from_value(json!({
                "verifyRequestedAt": requested, "lastVerifiedTime": last,
            }))
            .unwrap()
        };
        let recent = status(Some("a"), Some("2030-01-01T00:00:10Z"));
        assert_eq!(
            forced_limit_until(Some(&recent), now),
            Some(ts("2030-01-01T00:01:10Z"))
        );
        let old = status(Some("a"), Some("2029-12-31T23:59:00Z"));
        assert_eq!(forced_limit_until(Some(&old), now), None);
        let never_forced = status(None, Some("2030-01-01T00:00:10Z"));
        assert_eq!(forced_limit_until(Some(&never_forced), now), None);
        assert_eq!(forced_limit_until(None, now), None);
    }
}
