//! The one command runner of the tests: a program run with a time limit, its output read in
//! full, the command line kept for messages. It never panics once the program has started, so
//! it is usable from `Drop`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or timed-out) command printed.
#[derive(Debug)]
pub struct Ran {
    /// How it ended; `None` when it could not be started or waited for.
    pub status: Option<ExitStatus>,
    /// Whether it was killed at its time limit.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub command: String,
}

impl Ran {
    /// Whether it ran to the end and exited 0.
    pub fn succeeded(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// Panics with the command and its output unless it succeeded.
    pub fn expect_success(self) -> Ran {
        assert!(self.succeeded(), "{}", self.failure());
        self
    }

    /// Standard output, then standard error.
    pub fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The command, how it failed, and its output: for messages.
    pub fn failure(&self) -> String {
        format!(
            "`{}` {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            if self.timed_out {
                "did not finish in time".to_string()
            } else {
                format!("failed ({:?})", self.status)
            },
            self.stdout,
            self.stderr
        )
    }

    /// The [`Output`] `std::process::Command::output` would give. Panics when the program
    /// could not be started; one killed at its time limit has a failed status and says so on
    /// its standard error.
    pub fn into_output(self) -> Output {
        let Some(status) = self.status else {
            panic!("running `{}`: {}", self.command, self.stderr);
        };
        let mut stderr = self.stderr;
        if self.timed_out {
            stderr.push_str("\n(killed: it did not finish in time)\n");
        }
        Output {
            status,
            stdout: self.stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }
}

/// Runs `program` with `args` and `env` added to the environment, in the repository's root;
/// kills it after `timeout`. Never panics once the program has started, so it is usable from
/// `Drop`.
pub fn run_blocking(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Ran {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(crate::tools::repo_root());
    run(command, timeout)
}

/// Runs `command` as its caller set it up (arguments, environment, directory) with no input
/// and its output read in full; kills it after `timeout`. Never panics.
pub fn run(command: Command, timeout: Duration) -> Ran {
    run_with(command, timeout, false)
}

/// [`run`], but the program's standard error goes straight to the test's (to show the
/// progress of a long build as it happens); [`Ran::stderr`] stays empty.
pub fn run_showing_stderr(command: Command, timeout: Duration) -> Ran {
    run_with(command, timeout, true)
}

fn run_with(mut command: Command, timeout: Duration, show_stderr: bool) -> Ran {
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if show_stderr {
            Stdio::inherit()
        } else {
            Stdio::piped()
        });
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Ran {
                status: None,
                timed_out: false,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                command: line,
            };
        }
    };
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            Ok(None) => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(_) => break None,
        }
    };
    Ran {
        status,
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        command: line,
    }
}

/// [`run_blocking`] off the async runtime's worker threads.
pub async fn run_tool(
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
) -> Ran {
    tokio::task::spawn_blocking(move || run_blocking(&program, &args, &env, timeout))
        .await
        .expect("the tool runner does not panic")
}
