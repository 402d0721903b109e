//! Command line: parses the arguments and dispatches to `trackvia_operator::cli`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use trackvia_operator::cli::status;
use trackvia_operator::cli::{self, Cli, Command, runtime};
use trackvia_operator::crd;

fn main() -> ExitCode {
    // Started as `kubectl-trackvia` (kubectl plugin): the arguments are those of `status`.
    // Usage errors exit 1 (exit codes 2-5 are verification outcomes); --help and --version exit 0.
    let args: Vec<_> = std::env::args_os().collect();
    let plugin = status::invoked_as_plugin(&args);
    let cli = match Cli::try_parse_from(status::plugin_args(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Crd => {
            print!("{}", crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let runtime = runtime();
            let code = runtime.block_on(cli::run::run(*args));
            // Whatever is still running (a call to an API server that went away) is dropped.
            runtime.shutdown_timeout(Duration::from_millis(200));
            code
        }
        Command::Verify(args) => runtime().block_on(cli::verify::verify(args)),
        Command::Status(args) => {
            cli::install_crypto_provider();
            runtime().block_on(status::command::main(args, Cli::command(), plugin))
        }
        Command::Completion { shell } => {
            print!(
                "{}",
                status::command::completion_script(shell, Cli::command(), "trackvia-operator")
            );
            ExitCode::SUCCESS
        }
        Command::Probe(args) => runtime().block_on(cli::probe(args)),
    }
}
