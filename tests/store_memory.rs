//! The memory a connection takes in the operator's store, measured.
//!
//! The operator keeps every connection it watches, as the API server delivers it, for as
//! long as it runs: at 10,000 connections this store is the larger part of its heap. This
//! process deserialises [`CONNECTIONS`] connections with the status the operator writes for
//! a Ready one (taken from a `hack/bench` run), keeps them as kube-runtime's store does (a
//! clone in an `Arc`), and counts the bytes and blocks they hold through a counting global
//! allocator. Each must stay within its budget. The figures hold for 64-bit targets, where a
//! text of up to 24 bytes is kept inside the connection.
//!
//! This test has its own `main` (`harness = false` in Cargo.toml): a process of its own, so
//! that nothing else allocates while it counts.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};
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

/// A Ready connection as the API server delivers it (without managed fields, which the
/// operator drops before storing).
fn delivered(i: usize) -> Value {
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
                                     "name": format!("src-{}", i % 10)},
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
            "expiryWarningAt": "2099-12-17T00:00:00Z",
            "lastHttpStatus": 200,
            "lastSuccessfulVerificationTime": "2026-12-02T13:01:48Z",
            "lastVerifiedTime": "2026-12-02T13:01:48Z",
            "nextVerificationTime": "2026-12-02T14:05:25Z",
            "observedGeneration": 1,
            "publishedHash": "ad1301e2f575d909",
            "secretName": format!("conn-{i}"),
            "tokenExpiresAt": "2099-12-31T00:00:00Z",
            "verifiedFingerprint": "53ff2800c32c2202",
        },
    })
}

fn main() -> ExitCode {
    // The delivered texts are made first: only what the store keeps is counted.
    let texts: Vec<String> = (0..CONNECTIONS).map(|i| delivered(i).to_string()).collect();
    let mut kept: Vec<Arc<TrackViaConnection>> = Vec::with_capacity(CONNECTIONS);
    let before = alloc::counts();
    for text in &texts {
        match serde_json::from_str::<TrackViaConnection>(text) {
            // The reflector keeps a clone of what the watch delivered.
            Ok(tvc) => kept.push(Arc::new(tvc.clone())),
            Err(e) => {
                eprintln!("store_memory: the delivered connection does not read: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let after = alloc::counts();
    let bytes = after.live_bytes - before.live_bytes;
    let blocks = after.live_blocks - before.live_blocks;
    println!(
        "store_memory: one kept connection holds {:.0} bytes in {:.1} blocks \
         (budget {MAX_BYTES} bytes, {MAX_BLOCKS} blocks)",
        bytes as f64 / CONNECTIONS as f64,
        blocks as f64 / CONNECTIONS as f64,
    );
    // Nothing counted means the allocator is not counting, not that nothing is kept: each
    // connection is at least its `Arc`.
    if blocks < CONNECTIONS {
        eprintln!("store_memory: {blocks} blocks counted for {CONNECTIONS} connections");
        return ExitCode::FAILURE;
    }
    // Every field of the fixture must be read: one the types ignored would not be counted.
    for (i, tvc) in kept.iter().enumerate() {
        let read = serde_json::to_value(&**tvc).map_err(|e| e.to_string());
        if read.as_ref() != Ok(&delivered(i)) {
            eprintln!("store_memory: connection {i} does not read back as delivered: {read:?}");
            return ExitCode::FAILURE;
        }
    }
    if bytes > MAX_BYTES * CONNECTIONS || blocks > MAX_BLOCKS * CONNECTIONS {
        eprintln!("store_memory: over budget");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
