//! The command line's error: what stops a command before or while it runs, with the
//! flag or step it concerns in its text.

use super::status;
use crate::controller::secret::CredentialsError;
use crate::kube_helpers::short_kube_error;
use crate::leader::LeaderError;
use crate::supervisor::SignalsError;
use crate::trackvia::ClientError;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value is not one the command accepts.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag (and the file it names, if any).
        flag: String,
        /// Why its value is refused.
        reason: String,
    },
    /// Leader election is on but no namespace for the Lease is known.
    #[error("--leader-election needs --leader-election-namespace or POD_NAMESPACE")]
    NoLeaseNamespace,
    /// No Kubernetes configuration could be found or read.
    #[error("connecting to Kubernetes: {0}")]
    Kube(#[source] kube::config::InferConfigError),
    /// The log filter built from `--log-level` was refused.
    #[error(transparent)]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    /// What `verify --secret` shares with `status`: connecting to Kubernetes
    /// (as kubectl would) failed.
    #[error(transparent)]
    Status(#[from] status::Error),
    /// The Secret of `verify --secret` could not be read.
    #[error("reading Secret {secret}: {}", short_kube_error(source))]
    ReadSecret {
        /// The Secret, as `namespace/name`.
        secret: String,
        /// The API error.
        source: kube::Error,
    },
    /// The Secret of `verify --secret` holds no usable key and token.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// An environment variable `verify` reads the credentials from is unset or empty.
    #[error("{0} is not set (or use --secret namespace/name)")]
    NotSet(&'static str),
    /// Another process holds the Lease now.
    #[error("lost leadership ({0}); exiting so that only the new leader writes")]
    LostLeadership(String),
    /// The signal handlers could not be installed.
    #[error(transparent)]
    Signals(#[from] SignalsError),
    /// A Kubernetes client or leader election failed.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The TrackVia client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_helpers::api_error;

    #[test]
    fn an_unreadable_secret_is_named_with_the_api_servers_short_answer() {
        let missing = Error::ReadSecret {
            secret: "apps/src".into(),
            source: api_error(404, "secrets \"src\" not found"),
        };
        assert_eq!(
            missing.to_string(),
            "reading Secret apps/src: secrets \"src\" not found (404)"
        );
    }
}
