//! What the status records of the output Secret as the operator last wrote it
//! or found it up to date: its resourceVersion and a fingerprint of what was
//! rendered (`status.publishedVersion`, "<resourceVersion>/<16 hex digits>").
//!
//! A process keeps the same pair in memory ([`super::Outputs`]); the status
//! carries it over a restart or a leader handover, so that the new process does
//! not read every output Secret again. A Secret still at the recorded version
//! has not been written by anyone since, and the same fingerprint means the
//! operator would render it the same: there is nothing to read and nothing to
//! write. Any difference (another writer, new credentials, a new spec, a
//! rendering changed by an upgrade) falls back to reading the Secret.

use compact_str::{CompactString, format_compact};
use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use crate::connection::SecretOutcome;
use crate::crd::TrackViaConnectionStatus;

/// The fingerprint of a desired Secret: everything it is rendered with but its
/// values, which are in it through the keyed hash of its content (an
/// annotation). So it shows nothing of the credentials, and it is the same
/// from one build of the operator to the next.
pub fn fingerprint(desired: &Secret) -> u64 {
    let without_values = Secret {
        data: None,
        ..desired.clone()
    };
    let bytes = serde_json::to_vec(&without_values).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The status's record of the output Secret at `version` rendered as `fingerprint`.
pub fn record(version: &str, fingerprint: u64) -> CompactString {
    format_compact!("{version}/{fingerprint:016x}")
}

/// Does `status` record the output Secret at `version` rendered as `fingerprint`?
pub fn unchanged_since(
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
        assert_eq!(format!("{fp:016x}"), "2a767e228c69aed0");
    }
}
