//! The command line of `status` (and of `kubectl trackvia`): show connections,
//! `verify NAME` and `completion SHELL`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{OutputFormat, rotate, safe, verify_now};
use crate::connection::parse_duration;

/// Arguments of `status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Show this connection in detail (conditions, status fields, recent events).
    /// A connection named like a subcommand is given after `--`.
    name: Option<String>,
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Connections in every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["name", "namespace"])]
    all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: OutputFormat,
    /// Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Option<StatusCommand>,
}

#[derive(Subcommand)]
enum StatusCommand {
    /// Ask the operator to check a connection against TrackVia now and wait for the answer.
    ///
    /// Sets the trackvia.io/verify-requested-at annotation and waits until the operator
    /// records the answer. The operator runs at most one forced check per connection
    /// per minute; a request within that minute is answered when it ends.
    ///
    /// Exit codes: 0 verified, 2 unauthorized (401), 3 expired, 4 forbidden (403),
    /// 5 no definite answer (429, 5xx, unreachable, or none within --timeout),
    /// 1 usage or other error (not found, not allowed, missing Secret, invalid spec).
    Verify {
        /// The connection.
        name: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "90s")]
        timeout: String,
    },
    /// Rotate a connection's auth token: check the new token with TrackVia, then update
    /// the source Secret and the connection's expiry date together and wait until the
    /// operator has verified and published the new credentials.
    ///
    /// The new token is read from the terminal without echo, or from the first line of
    /// standard input when it is not a terminal; it is never printed. Nothing is written
    /// when TrackVia refuses it. Writes use server-side apply as field manager
    /// kubectl-trackvia.
    ///
    /// Exit codes: 0 rotated, verified and published; 2 unauthorized (401), 3 expired,
    /// 4 forbidden (403), 5 no definite answer from TrackVia (nothing written in these
    /// cases); 6 written but not confirmed by the operator within --timeout; 1 usage or
    /// other error (bad date, missing Secret or key, not allowed by RBAC; nothing written).
    Rotate(rotate::RotateArgs),
    /// Print a shell completion script.
    ///
    /// bash: `source <(trackvia-operator completion bash)`;
    /// zsh: `trackvia-operator completion zsh > "${fpath[1]}/_trackvia-operator"`;
    /// fish: `trackvia-operator completion fish | source`.
    Completion {
        /// The shell.
        shell: Shell,
    },
}

/// Shells with completion scripts.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
}

/// The completion script for `command` (the whole program) under `bin_name`.
pub fn completion_script(shell: Shell, mut command: clap::Command, bin_name: &str) -> String {
    let generate = |shell, command: &mut clap::Command, name: &str| {
        let mut out = Vec::new();
        clap_complete::generate(shell, command, name, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    match shell {
        Shell::Bash => {
            // clap_complete's bash script completes nothing after a subcommand when the
            // program's name holds a hyphen (it spells its states two ways); it is
            // generated for a name without one and registered for the real name.
            let plain = bin_name.replace('-', "_");
            let script = generate(clap_complete::Shell::Bash, &mut command, &plain);
            let suffix = format!(" {plain}");
            script
                .lines()
                .map(|line| match line.strip_suffix(&suffix) {
                    Some(head) if line.trim_start().starts_with("complete ") => {
                        format!("{head} {bin_name}\n")
                    }
                    _ => format!("{line}\n"),
                })
                .collect()
        }
        Shell::Zsh => generate(clap_complete::Shell::Zsh, &mut command, bin_name),
        Shell::Fish => generate(clap_complete::Shell::Fish, &mut command, bin_name),
    }
}

/// Run `status`. `root` is the whole program's command line and `plugin` whether it
/// was started as `kubectl-trackvia` (whose commands are those of `status`).
pub async fn main(mut args: StatusArgs, root: clap::Command, plugin: bool) -> ExitCode {
    match args.command.take() {
        Some(StatusCommand::Completion { shell }) => {
            let script = if plugin {
                let status = root
                    .find_subcommand("status")
                    .cloned()
                    .unwrap_or_else(|| root.clone());
                completion_script(shell, status.name(super::PLUGIN_NAME), super::PLUGIN_NAME)
            } else {
                completion_script(shell, root, "trackvia-operator")
            };
            print!("{script}");
            ExitCode::SUCCESS
        }
        Some(StatusCommand::Verify { name, timeout }) => verify_now(args, name, timeout).await,
        Some(StatusCommand::Rotate(rotate_args)) => {
            let target = rotate::Target {
                namespace: args.namespace,
                kubeconfig: args.kubeconfig,
                context: args.context,
            };
            let note = |text: &str| eprintln!("{}", safe::for_terminal(text));
            match rotate::run(target, rotate_args, rotate::read_token, note).await {
                Ok(lines) => {
                    for line in &lines {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    eprintln!("error: {}", safe::for_terminal(&failure.message));
                    ExitCode::from(failure.code)
                }
            }
        }
        None => {
            let options = super::Options {
                namespace: args.namespace,
                all_namespaces: args.all_namespaces,
                name: args.name,
                output: args.output,
                context: args.context,
                kubeconfig: args.kubeconfig,
            };
            match super::run(options, super::use_color()).await {
                Ok(r) => {
                    for warning in &r.warnings {
                        eprintln!("{}", safe::for_terminal(warning));
                    }
                    print!("{}", r.output);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", safe::for_terminal(&e.to_string()));
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `status verify NAME`: asks the operator to check the connection now and waits.
async fn verify_now(args: StatusArgs, name: String, timeout: String) -> ExitCode {
    let timeout = match parse_duration(&timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --timeout: {e}");
            return ExitCode::from(verify_now::OTHER_ERROR);
        }
    };
    let options = verify_now::Options {
        namespace: args.namespace,
        name,
        kubeconfig: args.kubeconfig,
        context: args.context,
        timeout,
    };
    let note = |text: &str| eprintln!("{}", safe::for_terminal(text));
    match verify_now::run(options, note).await {
        Ok(outcome) => {
            for line in &outcome.lines {
                println!("{line}");
            }
            ExitCode::from(outcome.code)
        }
        Err(e) => {
            eprintln!("error: {}", safe::for_terminal(&e.to_string()));
            ExitCode::from(verify_now::OTHER_ERROR)
        }
    }
}
