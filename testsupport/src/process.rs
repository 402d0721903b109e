//! Running the operator binary as a child process, with its output captured to a file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`OperatorProcess::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A child process (normally the operator) whose stdout and stderr go to one log file.
/// The process is killed when this value is dropped; if the thread is panicking then, the
/// tail of the log is printed to help explain the failure.
pub struct OperatorProcess {
    child: Child,
    program: String,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
    /// Run after the process is killed: removes what it leaves behind (a container).
    after_kill: Option<Box<dyn Fn() + Send + Sync>>,
    // Held for its Drop: removes the log file's directory.
    _log_dir: tempfile::TempDir,
}

impl OperatorProcess {
    /// Starts `bin` with `args`, the current environment plus `env`, and output captured.
    /// Panics if the process cannot be started.
    pub fn spawn(bin: &Path, args: &[String], env: &[(String, String)]) -> OperatorProcess {
        let program = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| bin.display().to_string());
        let log_dir = tempfile::Builder::new()
            .prefix(&format!("{program}-log-"))
            .tempdir()
            .expect("creating a directory for the process log");
        let log_path = log_dir.path().join("output.log");
        let stdout = File::create(&log_path).expect("creating the process log file");
        let stderr = stdout.try_clone().expect("duplicating the log file handle");
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        OperatorProcess {
            child,
            program,
            log_path,
            exit: None,
            after_kill: None,
            _log_dir: log_dir,
        }
    }

    /// Runs `cleanup` whenever the process is killed (and when this value is dropped), for a
    /// process that leaves something behind when it dies without a chance to clean up, such
    /// as a container engine's client.
    pub fn with_cleanup(mut self, cleanup: impl Fn() + Send + Sync + 'static) -> OperatorProcess {
        self.after_kill = Some(Box::new(cleanup));
        self
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The resident set size of the process in bytes (`VmRSS` of `/proc/PID/status`).
    /// Panics when it cannot be read (the process ended, or no `/proc`).
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes_of(self.pid())
    }

    /// Path of the log file (stdout and stderr interleaved).
    pub fn log_file(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process has written so far.
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Sends SIGKILL and reaps the process (then runs the cleanup, if any).
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.try_exit_status().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
            if let Some(cleanup) = &self.after_kill {
                cleanup();
            }
        }
        self.exit
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the process if it still runs.
    pub fn signal(&mut self, signal: i32) {
        if self.try_exit_status().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped
        // child, so it cannot have been recycled for another process.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Freezes the process (SIGSTOP): it runs no code until [`OperatorProcess::resume`],
    /// while the clocks go on.
    pub fn freeze(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends SIGTERM and waits up to [`STOP_GRACE`] for the process to exit, then SIGKILL.
    pub async fn stop(&mut self) -> ExitStatus {
        self.stop_within(STOP_GRACE).await
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit, then SIGKILL. The
    /// returned status tells which happened (`ExitStatusExt::signal()` is 9 after SIGKILL).
    pub async fn stop_within(&mut self, grace: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit_status() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{} (pid {}) did not stop within {grace:?} of SIGTERM; killing it",
            self.program,
            self.pid()
        );
        self.kill()
            .expect("waiting for a killed child process cannot fail")
    }

    /// Waits until the log contains `needle`. Panics with the log if the process exits first
    /// or `timeout` passes.
    pub async fn wait_log_contains(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return;
            }
            if let Some(status) = self.try_exit_status() {
                // One more read: the line may have been written just before exiting.
                if self.logs().contains(needle) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before logging {needle:?}; its log:\n{}",
                    self.program,
                    self.logs()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not log {needle:?} within {timeout:?}; its log:\n{}",
                    self.program,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
        // Also after a normal exit: what the process left behind must not outlive the test.
        if let Some(cleanup) = self.after_kill.take() {
            cleanup();
        }
        if std::thread::panicking() {
            let logs = self.logs();
            let lines: Vec<&str> = logs.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            eprintln!(
                "---- last {} lines of {} (pid {}) ----\n{}\n---- end of log ----",
                tail.len(),
                self.program,
                self.child.id(),
                tail.join("\n")
            );
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// The resident set size of process `pid` in bytes, from `/proc/PID/status`. Panics when it
/// cannot be read.
pub fn rss_bytes_of(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no VmRSS in {path}"))
}
