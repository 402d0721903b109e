//! The release notes `helm install` prints: the commands they suggest are run as printed,
//! against the test bed, and never put a credential on a command line.

use std::io::Write;
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Secret;
use trackvia_testsupport::kube::{TestNamespace, client};
use trackvia_testsupport::tools::{helm_install_notes, tool};

/// The indented shell lines of the notes' first example, up to the connection manifest.
fn secret_commands(notes: &str) -> String {
    let start = notes
        .find("  read -rsp")
        .unwrap_or_else(|| panic!("the notes do not read the credentials with read -rs:\n{notes}"));
    let block: Vec<&str> = notes[start..]
        .lines()
        .take_while(|l| l.starts_with("  ") || l.is_empty())
        .take_while(|l| !l.contains("apply -f"))
        .collect();
    block.join("\n")
}

#[tokio::test]
async fn the_notes_create_the_secret_without_a_credential_on_the_command_line() {
    let notes = tokio::task::spawn_blocking(|| helm_install_notes(&[]))
        .await
        .expect("the helm thread");
    assert!(!notes.contains("--from-literal"), "{notes}");
    let commands = secret_commands(&notes);

    let client = client().await;
    let ns = TestNamespace::create(&client, "chart-notes").await;
    let script = commands.replace("<namespace>", ns.name());
    let key = "notes-test-api-key";
    let token = "notes-test-auth-token";
    let kubectl_dir = tool("kubectl")
        .parent()
        .expect("kubectl's directory")
        .to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let path = format!(
            "{}:{}",
            kubectl_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("bash")
            .args(["-euc", &script])
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running bash");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{key}\n{token}\n").as_bytes())
            .expect("typing the credentials");
        child.wait_with_output().expect("bash finished")
    })
    .await
    .expect("the bash thread");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the notes' commands failed:\n{commands}\n{printed}"
    );
    assert!(
        !printed.contains(key) && !printed.contains(token),
        "a credential was printed:\n{printed}"
    );
    let secret = ns
        .api::<Secret>()
        .get("trackvia-api-user")
        .await
        .expect("the notes' commands created the Secret");
    let data = secret.data.expect("the Secret has data");
    assert_eq!(data["apiKey"].0, key.as_bytes());
    assert_eq!(data["authToken"].0, token.as_bytes());
    ns.cleanup().await;
}
