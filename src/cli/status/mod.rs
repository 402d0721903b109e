//! The `status` command: TrackViaConnections as a table, one of them in detail, or
//! JSON for scripts, with the workloads that consume each output Secret and the
//! recent events of a connection.
//!
//! Building and rendering are pure functions of what was read and of `now`;
//! [`run`] does the reading. Secret contents are never read: what is shown
//! comes from the connections' spec and status, the workloads' pod templates
//! and events, none of which holds a credential.

use std::ffi::OsString;

pub mod command;
mod connect;
pub mod encode;
mod error;
mod model;
mod reads;
mod render;
pub mod rotate;
mod safe;
#[cfg(test)]
mod tests;
pub mod verify_now;
mod views;

pub use error::Error;
pub use model::*;
pub use reads::*;
pub use render::*;
pub use views::*;

/// Name a symlink to the binary must end with to act as `kubectl trackvia`.
pub const PLUGIN_NAME: &str = "kubectl-trackvia";

/// Consumers listed per connection in the table before the rest is counted.
const MAX_CONSUMERS_SHOWN: usize = 3;

/// Events shown in the detailed view (the most recent ones).
const MAX_EVENTS: usize = 20;

/// How the result is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON with stable field names, for scripts.
    Json,
    /// YAML with the same field names as the JSON.
    Yaml,
}

/// What to show.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace; `None` means the kubeconfig context's.
    pub namespace: Option<String>,
    /// Every namespace (ignored with `name`).
    pub all_namespaces: bool,
    /// One connection, in detail.
    pub name: Option<String>,
    /// Output format.
    pub output: OutputFormat,
    /// Kubeconfig context; `None` means the current one.
    pub context: Option<String>,
    /// Kubeconfig file; `None` means kubectl's default.
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// What [`run`] produced: the text for stdout and warnings for stderr.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// For stdout.
    pub output: String,
    /// For stderr (for example workloads that could not be listed).
    pub warnings: Vec<String>,
}

/// The arguments of a `kubectl trackvia ...` invocation as those of
/// `trackvia-operator status ...`: when the program was started through a link
/// named `kubectl-trackvia`, `status` is put in front of the arguments.
pub fn plugin_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if invoked_as_plugin(&args) {
        args.insert(1.min(args.len()), OsString::from("status"));
    }
    args
}

/// Whether the program was started through a link named `kubectl-trackvia`.
pub fn invoked_as_plugin(args: &[OsString]) -> bool {
    args.first().is_some_and(|first| {
        std::path::Path::new(first)
            .file_name()
            .map(|n| n.to_string_lossy().ends_with(PLUGIN_NAME))
            .unwrap_or(false)
    })
}

/// Colour is used only on a terminal, and never when `NO_COLOR` is set.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
