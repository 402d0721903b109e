//! Test support for trackvia-operator.
//!
//! - [`alloc`]: a global allocator that counts live bytes and blocks, for memory budgets.
//! - [`audit`]: the write requests in the test bed's audit log.
//! - [`bed`]: a private control plane started and stopped by one test.
//! - [`fixtures`]: a connection and its server-side apply, a Deployment, RFC 7396 merges,
//!   random name parts.
//! - [`golden`]: golden files under tests/golden (`UPDATE_GOLDEN=1` rewrites them).
//! - [`command`]: running a program with a time limit; every program the support code runs
//!   to completion goes through it.
//! - [`fake`]: a fake TrackVia API over HTTPS with its own certificate authority.
//! - [`kube`]: helpers for tests against the real test bed (client, throw-away namespaces,
//!   waiting with diagnostics, running the operator binary).
//! - [`image`]: the operator's container image (`hack/image`) and [`image::Launcher`], which
//!   starts the operator from the binary or from the image.
//! - [`markdown`]: the headings (as GitHub anchors) and links of a Markdown file.
//! - [`tools`]: finding helm, promtool, prometheus...; rendering the chart.
//! - [`metrics`]: the parser of the operator's `/metrics` text.
//! - [`prometheus`]: a real Prometheus server on loopback.
//! - [`time`]: wall-clock helpers.

pub mod alloc;
pub mod audit;
pub mod bed;
pub mod command;
pub mod fake;
pub mod fixtures;
pub mod golden;
pub mod image;
pub mod kube;
pub mod markdown;
pub mod metrics;
mod process;
pub mod prometheus;
pub mod time;
pub mod tools;

pub use fake::{Behavior, FakeOptions, FakeTrackVia, RecordedRequest};
pub use process::{OperatorProcess, free_port, rss_bytes_of};
