//! The `verify` command: checks one API key and auth token against TrackVia with
//! the operator's classifier and exits with the outcome's code.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::status;
use super::{Error, install_crypto_provider};
use crate::connection::parse_duration;
use crate::trackvia::{Credentials, TrackViaClient};

/// Flags of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// TrackVia host (host[:port]).
    #[arg(long, default_value = "go.trackvia.com")]
    host: String,
    /// Account id, sent as the account-id header.
    #[arg(long)]
    account_id: Option<u64>,
    /// Read the key and token from this Secret (namespace/name) through the kubeconfig
    /// instead of TRACKVIA_API_KEY / TRACKVIA_AUTH_TOKEN.
    #[arg(long)]
    secret: Option<String>,
    /// Key of the API key in --secret.
    #[arg(long, default_value = "apiKey")]
    api_key_key: String,
    /// Key of the auth token in --secret.
    #[arg(long, default_value = "authToken")]
    auth_token_key: String,
    /// PEM bundle of CA certificates trusted in addition to the system roots.
    #[arg(long, env = "TRACKVIA_EXTRA_CA_FILE")]
    extra_ca_file: Option<std::path::PathBuf>,
    /// Timeout of the call.
    #[arg(long, default_value = "10s")]
    timeout: String,
}

/// `verify`: prints the answer and exits with its code.
pub async fn verify(args: VerifyArgs) -> ExitCode {
    install_crypto_provider();
    let creds = match verify_credentials(&args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let extra_ca = match &args.extra_ca_file {
        Some(path) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: --extra-ca-file {}: {e}", path.display());
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let timeout = match parse_duration(&args.timeout) {
        Ok(t) => t.max(Duration::from_millis(100)),
        Err(e) => {
            eprintln!("error: --timeout: {e}");
            return ExitCode::from(1);
        }
    };
    let client = match TrackViaClient::new(extra_ca.as_deref(), timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = client.verify(&args.host, args.account_id, &creds).await;
    let (code, line) = status::verify_now::answer(&outcome);
    println!("{line}");
    ExitCode::from(code)
}

async fn verify_credentials(args: &VerifyArgs) -> Result<Credentials, Error> {
    if let Some(reference) = &args.secret {
        let (ns, name) = reference.split_once('/').ok_or_else(|| Error::Flag {
            flag: format!("--secret {reference:?}"),
            reason: "expected namespace/name".into(),
        })?;
        let client = kube::Client::try_default()
            .await
            .map_err(status::Error::Connect)?;
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, ns);
        let secret = api.get(name).await.map_err(|source| Error::ReadSecret {
            secret: format!("{ns}/{name}"),
            source,
        })?;
        let data = secret.data.unwrap_or_default();
        return Ok(crate::controller::secret::credentials_from_data(
            &format!("{ns}/{name}"),
            &data,
            &args.api_key_key,
            &args.auth_token_key,
        )?);
    }
    let get = |k: &'static str| {
        std::env::var(k)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or(Error::NotSet(k))
    };
    Ok(Credentials {
        api_key: get("TRACKVIA_API_KEY")?,
        auth_token: get("TRACKVIA_AUTH_TOKEN")?,
    })
}
