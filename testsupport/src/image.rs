//! The operator's container image, built by `hack/image`, and operator processes run from it
//! or from a binary: [`Launcher`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rand::Rng;

use crate::OperatorProcess;
use crate::command::{run, run_showing_stderr};
use crate::tools::repo_root;

/// The most building the image may take (a release build of the operator, when not cached).
const BUILD_TIME_LIMIT: Duration = Duration::from_secs(45 * 60);

/// The most one container engine command may take (`hack/image engine`, `hack/image run`).
const ENGINE_TIME_LIMIT: Duration = Duration::from_secs(300);

/// The `hack/image` script.
pub fn script() -> PathBuf {
    repo_root().join("hack/image")
}

/// The image built from the working tree by `hack/image build`.
pub struct Image {
    /// The image ID (`sha256:...`): unlike the tag, another build cannot move it.
    pub id: String,
}

static IMAGE: OnceLock<Result<Image, String>> = OnceLock::new();

impl Image {
    /// Builds the image (once per test process; the release build is cached by the script) and
    /// returns it. Panics with the script's output when the build fails or no engine can be
    /// installed: a test of the image never passes without one.
    pub fn get() -> &'static Image {
        match IMAGE.get_or_init(Image::build) {
            Ok(image) => image,
            Err(e) => panic!("{e}"),
        }
    }

    fn build() -> Result<Image, String> {
        let mut build = Command::new(script());
        build.args(["build", "--print-id"]);
        let output = run_showing_stderr(build, BUILD_TIME_LIMIT);
        if !output.succeeded() {
            return Err(format!(
                "hack/image build failed ({}); its progress is above",
                if output.timed_out {
                    format!("it did not finish in {BUILD_TIME_LIMIT:?}")
                } else {
                    output
                        .status
                        .map_or_else(|| output.stderr.clone(), |s| s.to_string())
                }
            ));
        }
        let id = output.stdout.trim().to_string();
        if !id.starts_with("sha256:") && !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("hack/image build printed {id:?}, not an image ID"));
        }
        Ok(Image { id })
    }

    /// `hack/image engine ARGS`: the container engine with the script's storage settings.
    pub fn engine(&self, args: &[&str]) -> Output {
        let mut engine = Command::new(script());
        engine.arg("engine").args(args);
        run(engine, ENGINE_TIME_LIMIT).into_output()
    }

    /// Arguments of `hack/image` that run this image with engine `flags` and operator `args`
    /// as the chart does: read-only root, no capabilities, the image's user.
    pub fn run_args(&self, flags: &[String], args: &[String]) -> Vec<String> {
        let mut argv = vec!["run".to_string()];
        argv.extend(flags.iter().cloned());
        argv.extend(["--image".to_string(), self.id.clone(), "--".to_string()]);
        argv.extend(args.iter().cloned());
        argv
    }

    /// Runs the image with engine `flags` and operator `args` to completion; `env` is set for
    /// the engine (name it with `-e NAME` in `flags` to pass it on).
    pub fn run(&self, flags: &[String], args: &[String], env: &[(&str, &str)]) -> Output {
        let mut image = Command::new(script());
        image
            .args(self.run_args(flags, args))
            .envs(env.iter().copied());
        run(image, ENGINE_TIME_LIMIT).into_output()
    }
}

/// `-v PATH:PATH:ro`: a host file visible read-only at the same path in a container.
pub fn mount_same_path(path: &Path) -> [String; 2] {
    let path = path.display();
    ["-v".to_string(), format!("{path}:{path}:ro")]
}

/// How a test starts the operator: the binary built for the tests, or the image.
pub enum Launcher {
    /// The operator binary at this path.
    Binary(PathBuf),
    /// The image, in a container on the host network with the kubeconfig mounted read-only.
    Image(ImageLauncher),
}

/// State of [`Launcher::Image`].
pub struct ImageLauncher {
    image: &'static Image,
    /// A copy of `$KUBECONFIG` the image's user can read (the test bed's is private to root).
    kubeconfig: PathBuf,
    /// Name of the last container started.
    last: Mutex<Option<String>>,
    _dir: tempfile::TempDir,
}

impl Launcher {
    /// Runs the operator from [`Image::get`]. Panics when the image cannot be built or
    /// `KUBECONFIG` is not set.
    pub fn image() -> Launcher {
        let image = Image::get();
        let source = std::env::var_os("KUBECONFIG").expect("KUBECONFIG names the test bed");
        let dir = tempfile::Builder::new()
            .prefix("trackvia-image-")
            .tempdir()
            .expect("a temporary directory");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::copy(&source, &kubeconfig).expect("copying the kubeconfig");
        set_mode(&kubeconfig, 0o644);
        Launcher::Image(ImageLauncher {
            image,
            kubeconfig,
            last: Mutex::new(None),
            _dir: dir,
        })
    }

    /// Name of the container last started by [`Launcher::spawn`] (image only).
    pub fn container(&self) -> Option<String> {
        match self {
            Launcher::Binary(_) => None,
            Launcher::Image(launcher) => launcher
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Starts the operator with `args`. From the image, every absolute path in `args` naming a
    /// file (an extra CA bundle) is mounted read-only at the same path; the container is
    /// removed when the process is killed or dropped.
    /// Starts the operator with `args`, and `env` added to its environment.
    pub fn spawn(&self, args: &[String], env: &[(String, String)]) -> OperatorProcess {
        match self {
            Launcher::Binary(bin) => OperatorProcess::spawn(bin, args, env),
            Launcher::Image(launcher) => launcher.spawn(args, env),
        }
    }
}

impl ImageLauncher {
    fn spawn(&self, args: &[String], env: &[(String, String)]) -> OperatorProcess {
        let name = container_name();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut flags = vec![
            "--name".to_string(),
            name.clone(),
            "--network".to_string(),
            "host".to_string(),
            "-e".to_string(),
            format!("KUBECONFIG={kubeconfig}"),
        ];
        for (key, value) in env {
            flags.extend(["-e".to_string(), format!("{key}={value}")]);
        }
        flags.extend(mount_same_path(&self.kubeconfig));
        for arg in args {
            let path = Path::new(arg);
            if path.is_absolute() && path.is_file() {
                flags.extend(mount_same_path(path));
            }
        }
        let argv = self.image.run_args(&flags, args);
        OperatorProcess::spawn(&script(), &argv, &[]).with_cleanup(move || {
            // The engine's client was killed: the container may still run.
            let mut rm = Command::new(script());
            rm.args(["engine", "rm", "--force", &name]);
            let _ = run(rm, ENGINE_TIME_LIMIT);
        })
    }
}

/// A container name unique to this run.
fn container_name() -> String {
    let suffix: u64 = rand::rng().random();
    format!("trackvia-test-{suffix:016x}")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
