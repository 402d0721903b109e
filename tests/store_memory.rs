//! The memory a connection takes in the operator's store, measured.
//!
//! The operator keeps every connection it watches, as the API server delivers it, for as
//! long as it runs: at 10,000 connections this store is the larger part of its heap. This
//! process deserialises [`CONNECTIONS`] connections with the status the operator writes for
//! a Ready one (taken from a `hack/bench` run), keeps them as kube-runtime's store does (a
//! clone in an `Arc`), and counts the bytes and blocks they hold through a counting global
//! allocator; then as many pending checks ([`Checks`]), remembered output Secrets
//! ([`Outputs`]) and spec hashes with the Secret read ([`SpecChanges`]), one per connection. Each must stay
//! within its budget, and give its memory back once every connection is deleted. The figures hold for 64-bit targets, where a text of up to 24 bytes
//! is kept inside the connection.
//!
//! This test has its own `main` (`harness = false` in Cargo.toml): a process of its own, so
//! that nothing else allocates while it counts.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use trackvia_operator::controller::Outputs;
use trackvia_operator::controller::checks::Checks;
use trackvia_operator::controller::key::Key;
use trackvia_operator::controller::spec_changes::SpecChanges;
use trackvia_operator::crd::TrackViaConnection;
use trackvia_testsupport::alloc::{self, Counting};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Connections kept.
const CONNECTIONS: usize = 1_000;
/// Most bytes one kept connection may hold (asked of the allocator).
const MAX_BYTES: usize = 2_000;
/// Most blocks one kept connection may hold: each costs the allocator a header and
/// rounding beyond its bytes.
const MAX_BLOCKS: usize = 12;
/// Most bytes one connection's pending check may hold: its key and instant, twice, with its
/// share of the two tables' free room (kube-runtime's scheduler took about 580).
const MAX_CHECK_BYTES: usize = 300;
/// Most bytes the operator may remember of one output Secret it wrote (its table's share,
/// the names and version kept inside the entry).
const MAX_OUTPUT_BYTES: usize = 200;
/// Most bytes the connection watch may hold per connection to tell its changes and know the
/// readers of each Secret read (kube-runtime's predicate filter held the name, namespace and
/// uid as three heap texts: about 250 bytes in 3 blocks). Its table's room doubles as it
/// grows: 1,000 entries of 80 bytes sit in 2,048 slots; each name in a Secret's set of
/// readers adds about 33 bytes.
const MAX_SPEC_BYTES: usize = 240;
/// The same with a Secret per connection: each Secret's set of readers is a table of its own
/// (a block of 4 slots), and the table of Secrets holds an entry per connection.
const MAX_SPEC_BYTES_OWN_SECRET: usize = 520;
/// Most bytes a table may still hold once every connection is deleted: the room of a few
/// dozen entries in each table (a table of 1,000 keeps room for 1,792, over 100 KiB, unless
/// it shrinks).
const MAX_LEFT_BYTES: usize = 16 * 1024;
/// Source Secrets the connections read, as `hack/bench` has them by default.
const SHARED_SECRETS: usize = 10;

/// A Ready connection as the API server delivers it (without managed fields, which the
/// operator drops before storing), reading one of `secrets` source Secrets.
fn delivered(i: usize, secrets: usize) -> Value {
    let time = "2026-12-02T13:02:27Z";
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": time, "observedGeneration": 1})
    };
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {
            "creationTimestamp": "2026-12-02T13:01:48Z",
            "generation": 1,
            "name": format!("conn-{i}"),
            "namespace": "tvbench-u1jici",
            "resourceVersion": format!("{}", 15_081 + i),
            "uid": format!("8bdb4d4b-eea6-4752-bcc3-{i:012}"),
        },
        "spec": {
            "credentialsSecretRef": {"apiKeyKey": "apiKey", "authTokenKey": "authToken",
                                     "name": format!("src-{}", i % secrets)},
            "expiryWarning": "336h",
            "host": "localhost:45937",
            "publish": "Verified",
            "target": {"deletionPolicy": "Delete",
                       "keys": {"accountId": "accountId", "apiKey": "apiKey",
                                "authToken": "authToken", "baseUrl": "baseUrl", "host": "host"}},
            "tokenExpiresOn": "2099-12-31",
            "verifyInterval": "1h",
        },
        "status": {
            "conditions": [
                condition("Ready", "True", "Verified", "the credentials work and are published"),
                condition("Verified", "True", "Verified",
                          "TrackVia accepted the credentials (HTTP 200)"),
                condition("SecretSynced", "True", "Synced",
                          &format!("Secret conn-{i} is up to date")),
                condition("Expiring", "False", "NotExpiring",
                          "the token expires at 2099-12-31T00:00:00Z; \
                           warning from 2099-12-17T00:00:00Z"),
            ],
            "consecutiveFailures": 0,
            "credentialsFingerprint": "53ff2800c32c2202",
            "credentialsVersion": format!("{}", 3_999_000_000u64 + i as u64),
            "expiryWarningAt": "2099-12-17T00:00:00Z",
            "lastHttpStatus": 200,
            "lastSuccessfulVerificationTime": "2026-12-02T13:01:48Z",
            "lastVerifiedTime": "2026-12-02T13:01:48Z",
            "nextVerificationTime": "2026-12-02T14:05:25Z",
            "observedGeneration": 1,
            "publishedHash": "ad1301e2f575d909",
            // A cluster's resourceVersion as large as etcd's revision gets in a busy year.
            "publishedVersion": format!("{}/9c41d0a6e13f5b27", 4_000_000_000u64 + i as u64),
            "secretName": format!("conn-{i}"),
            "tokenExpiresAt": "2099-12-31T00:00:00Z",
            "verifiedFingerprint": "53ff2800c32c2202",
        },
    })
}

fn main() -> ExitCode {
    let measured = [
        connections(),
        checks(),
        outputs(),
        spec_changes(SHARED_SECRETS, MAX_SPEC_BYTES, 1),
        spec_changes(CONNECTIONS, MAX_SPEC_BYTES_OWN_SECRET, 2),
    ];
    for result in &measured {
        match result {
            Ok(figure) => println!("store_memory: {figure}"),
            Err(e) => eprintln!("store_memory: {e}"),
        }
    }
    if measured.iter().all(Result::is_ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What one stored connection holds, within its budget.
fn connections() -> Result<String, String> {
    // The delivered texts are made first: only what the store keeps is counted.
    let texts: Vec<String> = (0..CONNECTIONS)
        .map(|i| delivered(i, SHARED_SECRETS).to_string())
        .collect();
    let mut kept: Vec<Arc<TrackViaConnection>> = Vec::with_capacity(CONNECTIONS);
    let before = alloc::counts();
    for text in &texts {
        let tvc = serde_json::from_str::<TrackViaConnection>(text)
            .map_err(|e| format!("the delivered connection does not read: {e}"))?;
        // The reflector keeps a clone of what the watch delivered.
        kept.push(Arc::new(tvc.clone()));
    }
    let (bytes, blocks) = held_since(before)?;
    // Every field of the fixture must be read: one the types ignored would not be counted.
    for (i, tvc) in kept.iter().enumerate() {
        let read = serde_json::to_value(&**tvc).map_err(|e| e.to_string());
        if read.as_ref() != Ok(&delivered(i, SHARED_SECRETS)) {
            return Err(format!(
                "connection {i} does not read back as delivered: {read:?}"
            ));
        }
    }
    within("one kept connection", bytes, blocks, MAX_BYTES, MAX_BLOCKS)
}

/// What one connection's pending check holds, within its budget.
fn checks() -> Result<String, String> {
    let checks = Checks::default();
    let before = alloc::counts();
    for i in 0..CONNECTIONS {
        let key = Key::new(Some("tvbench-u1jici"), &format!("conn-{i}"));
        checks.after(key, Some(Duration::from_secs(3_600 + i as u64)));
    }
    let (bytes, blocks) = held_since(before)?;
    if checks.len() != CONNECTIONS {
        return Err(format!("{} checks kept of {CONNECTIONS}", checks.len()));
    }
    let figure = within("one pending check", bytes, blocks, MAX_CHECK_BYTES, 1)?;
    for i in 0..CONNECTIONS {
        checks.forget(&Key::new(Some("tvbench-u1jici"), &format!("conn-{i}")));
    }
    emptied(figure, "the pending checks", checks.len(), before)
}

/// What the operator remembers of one output Secret it wrote, within its budget.
fn outputs() -> Result<String, String> {
    let outputs = Outputs::default();
    let before = alloc::counts();
    for i in 0..CONNECTIONS {
        let version = (15_081 + i).to_string();
        outputs.set(
            "tvbench-u1jici",
            &format!("conn-{i}"),
            Some(version),
            i as u64,
        );
    }
    let (bytes, blocks) = held_since(before)?;
    let last = CONNECTIONS - 1;
    if outputs.get("tvbench-u1jici", &format!("conn-{last}"))
        != Some(((15_081 + last).to_string(), last as u64))
    {
        return Err("the last output Secret is not remembered".into());
    }
    let figure = within(
        "one remembered output Secret",
        bytes,
        blocks,
        MAX_OUTPUT_BYTES,
        1,
    )?;
    for i in 0..CONNECTIONS {
        outputs.forget("tvbench-u1jici", &format!("conn-{i}"));
    }
    let left = usize::from(outputs.get("tvbench-u1jici", "conn-0").is_some());
    emptied(figure, "the remembered output Secrets", left, before)
}

/// What the connection watch remembers of one connection to tell its changes and the
/// Secret it reads, the connections reading `secrets` Secrets, within its budget.
fn spec_changes(secrets: usize, max_bytes: usize, max_blocks: usize) -> Result<String, String> {
    let mut changes = SpecChanges::default();
    let delivered: Vec<TrackViaConnection> = (0..CONNECTIONS)
        .map(|i| serde_json::from_value(delivered(i, secrets)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let before = alloc::counts();
    // The watch hands over a copy; the pass gets it back, and it is dropped here.
    let started = delivered
        .iter()
        .filter_map(|tvc| changes.follow(Event::Apply(tvc.clone()), drop).start)
        .count();
    let (bytes, blocks) = held_since(before)?;
    if started != CONNECTIONS || changes.len() != CONNECTIONS {
        return Err(format!(
            "{started} passes started for {CONNECTIONS} new connections"
        ));
    }
    let figure = within(
        &format!("one connection's spec hash and Secret read ({secrets} Secrets read)"),
        bytes,
        blocks,
        max_bytes,
        max_blocks,
    )?;
    for tvc in &delivered {
        changes.follow(Event::Delete(tvc.clone()), drop);
    }
    let what = format!("the spec hashes and readers ({secrets} Secrets read)");
    emptied(figure, &what, changes.len(), before)
}

/// `figure`, and what `what` holds once every connection is gone (`left` of them still
/// there), within [`MAX_LEFT_BYTES`].
fn emptied(
    figure: String,
    what: &str,
    left: usize,
    before: alloc::Counts,
) -> Result<String, String> {
    if left != 0 {
        return Err(format!("{what}: {left} entries left after every deletion"));
    }
    let held = alloc::counts().live_bytes.saturating_sub(before.live_bytes);
    let emptied =
        format!("{what} hold {held} bytes once all are deleted (budget {MAX_LEFT_BYTES})");
    if held > MAX_LEFT_BYTES {
        return Err(format!("over budget: {emptied}"));
    }
    Ok(format!("{figure}; {emptied}"))
}

/// Bytes and blocks allocated since `before` and still held, per connection. Nothing
/// counted means the allocator is not counting, not that nothing is held.
fn held_since(before: alloc::Counts) -> Result<(f64, f64), String> {
    let after = alloc::counts();
    let (Some(bytes), Some(blocks)) = (
        after.live_bytes.checked_sub(before.live_bytes),
        after.live_blocks.checked_sub(before.live_blocks),
    ) else {
        return Err("less held than before: the measurement freed what it was to count".into());
    };
    if blocks == 0 {
        return Err("no block counted: the allocator is not counting".into());
    }
    let per = |n: usize| n as f64 / CONNECTIONS as f64;
    Ok((per(bytes), per(blocks)))
}

/// The figure, or an error when it is over its budget.
fn within(
    what: &str,
    bytes: f64,
    blocks: f64,
    max_bytes: usize,
    max_blocks: usize,
) -> Result<String, String> {
    let figure = format!(
        "{what} holds {bytes:.0} bytes in {blocks:.1} blocks (budget {max_bytes} bytes, {max_blocks} blocks)"
    );
    if bytes > max_bytes as f64 || blocks > max_blocks as f64 {
        return Err(format!("over budget: {figure}"));
    }
    Ok(figure)
}
