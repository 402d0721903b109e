//! What the status records of the output Secret as the operator last wrote it
//! or found it up to date: its resourceVersion and a fingerprint of what was
//! rendered (`status.publishedVersion`, "<resourceVersion>/<16 hex digits>").
//!
//! A process keeps the same pair in memory ([`super::Outputs`]), which decides
//! while it has it; the status carries the pair over a restart or a leader
//! handover, so that the new process does not read every output Secret again.
//! A Secret still at the recorded version has not been written by anyone
//! since, and the same fingerprint means the operator would render it the
//! same: there is nothing to read and nothing to write. Any difference
//! (another writer, new credentials, a new spec, a rendering or rules changed
//! by an upgrade) falls back to reading the Secret.

use compact_str::{CompactString, format_compact};
use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use crate::connection::SecretOutcome;
use crate::crd::TrackViaConnectionStatus;

/// The rules a pass judges an existing output Secret by ([`super::secret::needs_apply`],
/// [`super::plan::secret_step`], [`super::adoption::as_adopted`]) and the rendering of its
/// values ([`super::secret::desired_secret`]: the keys, the values' format, the content
/// hash), as a number in every fingerprint. Bump it when either changes: Secrets recorded
/// by an earlier build are then read and judged once more. A pass that goes by the
/// status's record of the credentials ([`super::recorded`]) renders the Secret without
/// its values, so only this number tells it that the values would be rendered otherwise.
const RULES: u8 = 1;

/// The fingerprint of a desired Secret: the rules it is judged by and everything
/// it is rendered with but its values, which are in it through the keyed hash
/// of its content (an annotation). So it reveals no more of the credentials than
/// `publishedHash` does, and it is the same from one build to the next.
pub fn fingerprint(desired: &Secret) -> u64 {
    let without_values = Secret {
        data: None,
        ..desired.clone()
    };
    // A Secret always serialises (its maps have text keys).
    let bytes = serde_json::to_vec(&without_values).unwrap_or_default();
    let digest = Sha256::new()
        .chain_update([RULES])
        .chain_update(&bytes)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The status's record of the output Secret at `version` rendered as `fingerprint`.
fn record(version: &str, fingerprint: u64) -> CompactString {
    format_compact!("{version}/{fingerprint:016x}")
}

/// Is the output Secret the watch reports at `version` known to hold what the
/// operator renders as `fingerprint`, so that it needs neither a read nor a write?
/// This process's memory of the Secret decides when it has one: it may be newer
/// than any status (a status write not yet seen by the watch, or one that failed).
/// Only without memory of it (after a restart or a handover, a deleted Secret,
/// or the table cleared when full) does the record in `status` count.
pub fn known_unchanged(
    remembered: Option<&(String, u64)>,
    status: Option<&TrackViaConnectionStatus>,
    version: &str,
    fingerprint: u64,
) -> bool {
    match remembered {
        Some((v, fp)) => v == version && *fp == fingerprint,
        None => unchanged_since(status, version, fingerprint),
    }
}

/// Does `status` record the output Secret at `version` rendered as `fingerprint`?
fn unchanged_since(
    status: Option<&TrackViaConnectionStatus>,
    version: &str,
    fingerprint: u64,
) -> bool {
    let recorded = status.and_then(|s| s.published_version.as_deref());
    recorded
        .and_then(|r| r.split_once('/'))
        .is_some_and(|(v, fp)| {
            v == version && fp.len() == 16 && u64::from_str_radix(fp, 16) == Ok(fingerprint)
        })
}

/// The outcome of a pass that left the Secret published at `version`.
pub fn synced(hash: &str, version: Option<&str>, fingerprint: u64) -> SecretOutcome {
    SecretOutcome::Synced {
        hash: hash.to_string(),
        published: version.map(|v| record(v, fingerprint)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::secret::desired_secret;
    use crate::crd::TrackViaConnection;
    use crate::trackvia::Credentials;

    fn connection(uid: &str) -> TrackViaConnection {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "trackvia.io/v1alpha1",
            "kind": "TrackViaConnection",
            "metadata": {"name": "crm", "namespace": "apps", "uid": uid, "generation": 1},
            "spec": {"credentialsSecretRef": {"name": "src"}},
        }))
        .expect("a connection")
    }

    fn creds(token: &str) -> Credentials {
        Credentials {
            api_key: "key-1".into(),
            auth_token: token.into(),
        }
    }

    fn status(recorded: Option<CompactString>) -> TrackViaConnectionStatus {
        TrackViaConnectionStatus {
            published_version: recorded,
            ..TrackViaConnectionStatus::default()
        }
    }

    #[test]
    fn a_secret_is_known_unchanged_only_at_the_recorded_version_and_rendering() {
        let tvc = connection("uid-1");
        let fp = fingerprint(&desired_secret(&tvc, "go.trackvia.com", &creds("token-1")));
        let recorded = status(Some(record("42", fp)));
        assert!(unchanged_since(Some(&recorded), "42", fp));
        // Someone wrote the Secret since.
        assert!(!unchanged_since(Some(&recorded), "43", fp));
        // The operator would write something else.
        assert!(!unchanged_since(Some(&recorded), "42", fp ^ 1));
        // Nothing recorded: a status written before the field existed, or none yet.
        assert!(!unchanged_since(Some(&status(None)), "42", fp));
        assert!(!unchanged_since(None, "42", fp));
        // Not a record this operator wrote.
        for odd in ["42", "42/", "42/zz", "4/2", &format!("42/{fp:016x}0")] {
            assert!(
                !unchanged_since(Some(&status(Some(odd.into()))), "42", fp),
                "{odd}"
            );
        }
    }

    #[test]
    fn the_memory_of_this_process_goes_before_the_status() {
        let (a, b) = (1u64, 2u64);
        // The status still records version 1 with credentials A; this process has since
        // written version 2 with B, and A is to be published again (a rollback). The
        // watch still reports version 1: the Secret must be read, not taken as A.
        let stale = status(Some(record("1", a)));
        let memory = ("2".to_string(), b);
        assert!(!known_unchanged(Some(&memory), Some(&stale), "1", a));
        // What this process remembers decides, whatever the status says.
        assert!(known_unchanged(Some(&memory), Some(&stale), "2", b));
        assert!(known_unchanged(Some(&memory), None, "2", b));
        // No memory (a new process): the status's record decides.
        assert!(known_unchanged(None, Some(&stale), "1", a));
        assert!(!known_unchanged(None, Some(&stale), "2", b));
        assert!(!known_unchanged(None, None, "1", a));
    }

    #[test]
    fn the_fingerprint_follows_the_content_without_showing_it() {
        let tvc = connection("uid-1");
        let render = |tvc: &TrackViaConnection, token: &str, host: &str| {
            fingerprint(&desired_secret(tvc, host, &creds(token)))
        };
        let fp = render(&tvc, "token-1", "go.trackvia.com");
        assert_eq!(fp, render(&tvc, "token-1", "go.trackvia.com"));
        // New credentials, a new host, another connection: another fingerprint.
        assert_ne!(fp, render(&tvc, "token-2", "go.trackvia.com"));
        assert_ne!(fp, render(&tvc, "token-1", "eu.trackvia.com"));
        assert_ne!(
            fp,
            render(&connection("uid-2"), "token-1", "go.trackvia.com")
        );
        // The same from one build to the next (a SHA-256, not the process's hasher): a
        // new build reads no Secret an older one recorded, unless it renders differently.
        assert_eq!(format!("{fp:016x}"), "14a50929d9872c95");
    }
}
