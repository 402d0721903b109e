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
pub mod tables;
pub mod trackvia;
