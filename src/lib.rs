//! trackvia-operator: keeps TrackVia API credentials verified and published in Kubernetes.

pub mod adoption;
pub mod controller;
pub mod crd;
pub mod http;
pub mod kube_helpers;
pub mod leader;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod restart;
pub mod secret;
pub mod source_read;
pub mod status;
pub mod supervisor;
pub mod trackvia;
pub mod watches;

/// Errors of the operator's own paths. Their text never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Configuration given at start-up is invalid.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
