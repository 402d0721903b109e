//! The one command runner of the tests: a program run with a time limit, its output read in
//! full, the command line kept for messages. It never panics once the program has started, so
//! it is usable from `Drop`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
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
        assert!(
            self.succeeded(),
            "`{}` {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            if self.timed_out {
                "did not finish in time".to_string()
            } else {
                format!("failed ({:?})", self.status)
            },
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `program` with `args` and `env` added to the environment; kills it after `timeout`.
/// Never panics once the program has started, so it is usable from `Drop`.
pub fn run_blocking(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Ran {
    let command = format!("{} {}", program.display(), args.join(" "));
    let mut child = match Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(crate::tools::repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Ran {
                status: None,
                timed_out: false,
                stdout: String::new(),
                stderr: format!("cannot start: {e}"),
                command,
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
        command,
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
