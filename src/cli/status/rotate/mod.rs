//! `status rotate NAME` (`kubectl trackvia rotate NAME`): the Kubernetes half of a
//! token rotation in one step. The new token is checked with TrackVia first (the
//! call and classifier of `verify`); only when TrackVia accepts it are the source
//! Secret's token key and the connection's `tokenExpiresOn`/`tokenName` applied
//! (both dry-run first, so RBAC or validation refuse before anything is written),
//! a check is forced and the command waits until the operator has verified and
//! published the new credentials. No credential is ever printed.
//!
//! The decisions are pure (`plan`); [`run`] does the reading, writing and waiting.

mod error;
mod plan;
mod steps;
mod token;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{connect, safe, verify_now};
use crate::connection::parse_duration;
use crate::controller::secret::credentials_from_data;
use crate::crd::TrackViaConnection;
use crate::trackvia::AllowedHosts;
use steps::{Bodies, Wait, write};

pub use error::{Error, Refusal};
pub use plan::{FIELD_MANAGER, Progress, parse_expiry_date};
pub use token::read_token;

/// Exit code when the new token was written but the operator did not report it
/// verified and published within `--timeout` (or reported something else).
pub const NOT_CONFIRMED: u8 = 6;

/// Arguments of `rotate`.
#[derive(clap::Args)]
pub struct RotateArgs {
    /// The connection.
    pub name: String,
    /// The expiry date chosen in TrackVia for the new token.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_expiry_date)]
    pub expires_on: Date,
    /// The new token's name on TrackVia's API Access page (default: the current tokenName).
    #[arg(long)]
    pub token_name: Option<String>,
    /// Hosts the new token may be sent to (as the operator's --allowed-hosts).
    #[arg(long, env = "TRACKVIA_ALLOWED_HOSTS", default_value = "*.trackvia.com", value_parser = AllowedHosts::parse)]
    pub allowed_hosts: AllowedHosts,
    /// PEM bundle of CA certificates trusted in addition to the system roots.
    #[arg(long, env = "TRACKVIA_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,
    /// Timeout of the call to TrackVia.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How long to wait for the operator to verify and publish the new credentials.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Where the connection is.
#[derive(Clone, Debug)]
pub struct Target {
    /// Namespace; `None` means the kubeconfig context's.
    pub namespace: Option<String>,
    /// Kubeconfig file; `None` means kubectl's default.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; `None` means the current one.
    pub context: Option<String>,
}

/// Why the rotation stopped: the exit code and the message for stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// 1 usage or other error, 2-4 refused by TrackVia, 5 no definite answer
    /// from TrackVia, [`NOT_CONFIRMED`] written but not confirmed.
    pub code: u8,
    /// What happened and what was (not) written.
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            code: verify_now::OTHER_ERROR,
            message: e.to_string(),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(e: Refusal) -> Failure {
        Failure::from(Error::from(e))
    }
}

/// The end of every message of a failure before any write.
const NOTHING_WRITTEN: &str = "Nothing was written.";

/// The connection and its source Secret, as read.
struct Found {
    ns: String,
    connections: Api<TrackViaConnection>,
    secrets: Api<Secret>,
    tvc: TrackViaConnection,
    secret: Secret,
    what_tvc: String,
    what_secret: String,
}

/// Read the connection and its source Secret; refuse a host outside the allow list.
async fn find(target: &Target, args: &RotateArgs) -> Result<Found, Error> {
    let (client, ns) = connect::connect_in(
        target.kubeconfig.as_deref(),
        target.context.as_deref(),
        target.namespace.as_deref(),
    )
    .await?;
    let connections: Api<TrackViaConnection> = Api::namespaced(client.clone(), &ns);
    let what_tvc = format!("TrackViaConnection {ns}/{}", args.name);
    let tvc = connections
        .get_opt(&args.name)
        .await
        .map_err(|e| Error::kube(e, "get", "trackviaconnections", &what_tvc))?
        .ok_or_else(|| Error::NotFound(what_tvc.clone()))?;
    if !args.allowed_hosts.allows(&tvc.spec.host) {
        return Err(Error::HostNotAllowed {
            what: what_tvc,
            host: tvc.spec.host.to_string(),
        });
    }
    let source = &tvc.spec.credentials_secret_ref.name;
    let what_secret = format!("Secret {ns}/{source}");
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let secret = secrets
        .get_opt(source)
        .await
        .map_err(|e| Error::kube(e, "get", "secrets", &what_secret))?
        .ok_or_else(|| Error::NoSecret {
            secret: what_secret.clone(),
            tvc: what_tvc.clone(),
        })?;
    Ok(Found {
        ns,
        connections,
        secrets,
        tvc,
        secret,
        what_tvc,
        what_secret,
    })
}

/// Rotate; `token` reads the new token once the connection and its Secret are
/// found. Progress notes go to `note`; `Ok` holds the lines for stdout.
pub async fn run(
    target: Target,
    args: RotateArgs,
    token: impl FnOnce() -> Result<String, Error>,
    mut note: impl FnMut(&str),
) -> Result<Vec<String>, Failure> {
    plan::check_expiry_date(args.expires_on, Timestamp::now())?;
    if let Some(name) = &args.token_name {
        plan::check_token_name(name)?;
    }
    let found = find(&target, &args).await?;
    let source = &found.tvc.spec.credentials_secret_ref;
    let old_data = found.secret.data.clone().unwrap_or_default();
    let data = plan::new_data(
        &found.what_secret,
        &old_data,
        &source.auth_token_key,
        &token()?,
    )?;
    let creds = credentials_from_data(
        &format!("{}/{} with the new token", found.ns, source.name),
        &data,
        &source.api_key_key,
        &source.auth_token_key,
    )
    .map_err(Error::from)?;
    let scrub = |f: Failure| Failure {
        code: f.code,
        message: safe::for_terminal(&creds.scrub(&f.message)).into_owned(),
    };
    let owned = plan::applied_fields(found.secret.metadata.managed_fields.as_deref(), "f:data");
    let bodies = Bodies {
        secret: plan::secret_apply(
            &found.ns,
            &source.name,
            found.secret.metadata.resource_version.as_deref(),
            &data,
            &source.auth_token_key,
            &owned,
        ),
        tvc: plan::connection_apply(&found.tvc, args.expires_on, args.token_name.as_deref()),
    };
    let applied = write(&found, &bodies, &args, &creds, &mut note)
        .await
        .map_err(scrub)?;
    let fingerprint = creds.fingerprint(
        found
            .tvc
            .metadata
            .uid
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    );
    let wait = Wait {
        connections: &found.connections,
        name: &args.name,
        generation: applied.metadata.generation,
        fingerprint: &fingerprint,
        timeout: args.timeout,
    };
    wait.run(&mut note).await.map_err(scrub)?;
    let lines = plan::summary(
        &found.tvc,
        &found.what_secret,
        &source.auth_token_key,
        args.expires_on,
        args.token_name.as_deref(),
        &applied.target_name(),
    );
    Ok(lines
        .iter()
        .map(|l| safe::for_terminal(&creds.scrub(l)).into_owned())
        .collect())
}
