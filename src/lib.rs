//! trackvia-operator: keeps TrackVia API credentials verified and published in Kubernetes.

pub mod cli;
pub mod connection;
pub mod controller;
pub mod crd;
pub mod http;
pub mod kube_helpers;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod probe;

pub mod supervisor;
pub mod trackvia;

/// The `status` command, at its earlier path.
pub use cli::status as report;

// The controller's parts keep their earlier paths.
pub use controller::{adoption, restart, secret, source_read, watches};

/// The controller's error, and a result carrying it.
pub use controller::{Error, Result};
