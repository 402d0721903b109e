//! The steps of `rotate` that talk to the API server and TrackVia: the dry-run
//! and real applies, the check of the new token, and the wait for the operator.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;

use super::plan::{self, FIELD_MANAGER, Progress};
use super::{Error, Failure, Found, NOT_CONFIRMED, NOTHING_WRITTEN, RotateArgs};
use crate::cli::status::verify_now;
use crate::crd::TrackViaConnection;
use crate::trackvia::{Credentials, TrackViaClient, VerificationOutcome};

/// The two apply bodies.
pub(super) struct Bodies {
    /// Of the source Secret.
    pub secret: serde_json::Value,
    /// Of the connection.
    pub tvc: serde_json::Value,
}

async fn apply<K>(
    api: &Api<K>,
    name: &str,
    body: &serde_json::Value,
    params: &PatchParams,
    (resource, what): (&'static str, &str),
) -> Result<K, Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, params, &Patch::Apply(body))
        .await
        .map_err(|e| Error::kube(e, "patch", resource, what))
}

/// Dry-run both applies (RBAC and validation refuse here), check the token with
/// TrackVia, then apply the Secret and the connection; the connection as applied.
pub(super) async fn write(
    found: &Found,
    bodies: &Bodies,
    args: &RotateArgs,
    creds: &Credentials,
    note: &mut impl FnMut(&str),
) -> Result<TrackViaConnection, Failure> {
    let source = found.tvc.spec.credentials_secret_ref.name.as_str();
    let secret = ("secrets", found.what_secret.as_str());
    let tvc = ("trackviaconnections", found.what_tvc.as_str());
    let not_written = |e: Error| Failure::from(Error::NotWritten(Box::new(e)));
    let dry = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let real = PatchParams::apply(FIELD_MANAGER).force();
    apply(&found.secrets, source, &bodies.secret, &dry, secret)
        .await
        .map_err(not_written)?;
    apply(&found.connections, &args.name, &bodies.tvc, &dry, tvc)
        .await
        .map_err(not_written)?;
    check_with_trackvia(args, &found.tvc, creds, note).await?;
    apply(&found.secrets, source, &bodies.secret, &real, secret)
        .await
        .map_err(not_written)?;
    apply(&found.connections, &args.name, &bodies.tvc, &real, tvc)
        .await
        .map_err(|e| {
            Failure::from(Error::OnlySecretWritten {
                source: Box::new(e),
                secret: found.what_secret.clone(),
            })
        })
}

/// The call and classifier of `verify`, for the connection's host and account.
async fn check_with_trackvia(
    args: &RotateArgs,
    tvc: &TrackViaConnection,
    creds: &Credentials,
    note: &mut impl FnMut(&str),
) -> Result<(), Failure> {
    let extra_ca = match &args.extra_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| Error::ExtraCa {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let timeout = args.request_timeout.max(Duration::from_millis(100));
    let client = TrackViaClient::new(extra_ca.as_deref(), timeout).map_err(Error::Client)?;
    note(&format!(
        "Checking the new token with TrackVia at {}…",
        tvc.spec.host
    ));
    let outcome = client
        .verify(&tvc.spec.host, tvc.spec.account_id, creds)
        .await;
    let (code, line) = verify_now::answer(&outcome);
    let message = match outcome {
        VerificationOutcome::Verified { .. } => {
            note(&line);
            return Ok(());
        }
        VerificationOutcome::Rejected { .. } => {
            format!("TrackVia refused the new token: {line}. {NOTHING_WRITTEN}")
        }
        VerificationOutcome::Transient { .. } => {
            format!("no definite answer from TrackVia: {line}. {NOTHING_WRITTEN}")
        }
    };
    Err(Failure { code, message })
}

/// Waiting for the operator to report the new credentials verified and published.
pub(super) struct Wait<'a> {
    pub connections: &'a Api<TrackViaConnection>,
    pub name: &'a str,
    /// The connection's generation after the apply.
    pub generation: Option<i64>,
    /// The fingerprint of the new credentials.
    pub fingerprint: &'a str,
    pub timeout: Duration,
}

const WRITTEN: &str = "The new token and expiry date are written";

impl Wait<'_> {
    /// Force a check, then wait.
    pub async fn run(&self, note: &mut impl FnMut(&str)) -> Result<(), Failure> {
        let name = self.name;
        if let Err(e) = verify_now::request_check(self.connections, name, Timestamp::now()).await {
            note(&format!(
                "Could not request a check ({}); the operator checks the changed Secret anyway.",
                Error::kube(e, "patch", "trackviaconnections", name)
            ));
        }
        note(&format!(
            "Waiting up to {}s for the operator to verify and publish the new credentials…",
            self.timeout.as_secs()
        ));
        let progress =
            |t: &TrackViaConnection| plan::progress(t, self.generation, self.fingerprint);
        let wait = await_condition(
            self.connections.clone(),
            name,
            |t: Option<&TrackViaConnection>| t.is_none_or(|t| progress(t) != Progress::Waiting),
        );
        let not_confirmed = |message: String| Failure {
            code: NOT_CONFIRMED,
            message,
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Ok(Some(t))) => match progress(&t) {
                Progress::Published => Ok(()),
                Progress::Refused(_, line) => Err(not_confirmed(format!(
                    "{WRITTEN}, but the operator's check was refused: {line}"
                ))),
                Progress::Waiting => Err(not_confirmed(format!("{WRITTEN}; the wait ended early"))),
            },
            Ok(Ok(None)) => Err(not_confirmed(format!(
                "{WRITTEN}, but TrackViaConnection {name} was deleted"
            ))),
            Ok(Err(e)) => Err(not_confirmed(format!("{WRITTEN}; watching {name}: {e}"))),
            Err(_) => Err(not_confirmed(self.timed_out().await)),
        }
    }

    async fn timed_out(&self) -> String {
        let ready = self
            .connections
            .get_opt(self.name)
            .await
            .ok()
            .flatten()
            .and_then(|t| t.status)
            .and_then(|s| s.condition("Ready").cloned())
            .map_or("no Ready condition".to_string(), |c| {
                format!("Ready {} ({}): {}", c.status, c.reason, c.message)
            });
        format!(
            "{WRITTEN}, but the operator did not report them verified and published within \
             {}s ({ready}). Is the operator running and watching this namespace? \
             `kubectl trackvia {}` shows the connection.",
            self.timeout.as_secs(),
            self.name
        )
    }
}
