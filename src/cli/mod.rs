//! The command line: the top-level arguments (`run`, `crd`, `verify`, `status`,
//! `completion`, `probe`) and what their commands share (runtime, TLS provider).
//! `main.rs` parses and dispatches; each command's wiring lives in its own module.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::connection::parse_duration;

mod error;
pub mod run;
pub mod status;
pub mod verify;

pub use error::Error;
pub use run::RunArgs;
pub use verify::VerifyArgs;

#[derive(Parser)]
#[command(
    name = "trackvia-operator",
    version,
    about = "Keeps TrackVia API credentials verified and published in Kubernetes",
    args_override_self = true
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Check one API key and auth token against TrackVia, with the operator's classifier.
    ///
    /// Exit codes: 0 verified, 2 unauthorized (401), 3 expired, 4 forbidden (403),
    /// 5 no definite answer (429, 5xx, timeout, TLS, DNS, connection), 1 usage or other error.
    Verify(VerifyArgs),
    /// Show connections: readiness, expiry countdown, output Secret and the workloads using it.
    ///
    /// Also works as a kubectl plugin: `ln -s $(which trackvia-operator) ~/bin/kubectl-trackvia`,
    /// then `kubectl trackvia -A`.
    Status(status::command::StatusArgs),
    /// Print a shell completion script (bash, zsh or fish).
    Completion {
        /// The shell.
        shell: status::command::Shell,
    },
    /// GET an address of the operator (for example http://HOST:8080/readyz) and exit 0 when
    /// it answers 2xx, 1 otherwise; for checks run from the operator's image (`helm test`).
    Probe(ProbeArgs),
}

#[derive(Args)]
pub struct ProbeArgs {
    /// The http:// address to GET.
    pub url: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "5s")]
    pub timeout: String,
}

/// `probe`: GET the address and exit 0 when it answers 2xx.
pub async fn probe(args: ProbeArgs) -> ExitCode {
    let timeout = match parse_duration(&args.timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("--timeout: {e}");
            return ExitCode::FAILURE;
        }
    };
    install_crypto_provider();
    match crate::probe::probe(&args.url, timeout).await {
        Ok(()) => {
            println!("{} is ready", args.url);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded tokio runtime (start-up: failing to build one is fatal).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Makes aws-lc-rs the process-wide rustls provider.
pub fn install_crypto_provider() {
    // kube and reqwest both use rustls with aws-lc-rs; make it the process default
    // so neither has to guess. An error means one is already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
