//! The errors of `rotate`: a flag or Secret refused by the pure checks
//! ([`Refusal`]), and what stops the command while it reads, checks and writes
//! ([`Error`]), each naming the object, verb or flag concerned. API answers are
//! carried as the server wrote them; `rotate::run` scrubs the new credentials
//! from every failure it prints.

use std::path::PathBuf;

use jiff::civil::Date;

use super::NOTHING_WRITTEN;
use crate::controller::secret::CredentialsError;
use crate::trackvia::ClientError;

/// A flag or the source Secret refused before anything is read or sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `--expires-on` is no `YYYY-MM-DD` date.
    #[error("{0:?} is not a calendar date (YYYY-MM-DD)")]
    NotADate(String),
    /// `--expires-on` is before the schema's first date.
    #[error("{0:?} is before 2000-01-01")]
    Before2000(String),
    /// A token expiring on that date would not work after today.
    #[error(
        "--expires-on {date}: a token expiring on that day stops working at 00:00 UTC, \
         which is not after today ({today} UTC)"
    )]
    NotAfterToday {
        /// The date given.
        date: Date,
        /// Today in UTC.
        today: Date,
    },
    /// `--token-name` is longer than the schema allows.
    #[error("--token-name is longer than 256 characters")]
    TokenNameTooLong,
    /// `--token-name` holds a control character.
    #[error("--token-name must not contain control characters")]
    TokenNameControl,
    /// The source Secret has no key of the name the spec gives for the token.
    #[error(
        "{secret} has no key {key:?}, the key the connection's \
         spec.credentialsSecretRef.authTokenKey names (keys present: {present}); \
         fix the spec or the Secret first"
    )]
    NoTokenKey {
        /// The Secret, as `Secret namespace/name`.
        secret: String,
        /// The key the spec names.
        key: String,
        /// The keys it holds, comma-separated (`none` if none).
        present: String,
    },
}

/// Why `rotate` stopped (exit code 1 unless a [`super::Failure`] says otherwise).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or the Secret was refused.
    #[error(transparent)]
    Refusal(#[from] Refusal),
    /// Connecting to Kubernetes failed.
    #[error(transparent)]
    Status(#[from] crate::cli::status::Error),
    /// RBAC refuses a call: the verb and resource missing from the role.
    #[error(
        "not allowed to {verb} {what}: the {verb:?} verb on {resource} is missing from \
         your RBAC role ({message})"
    )]
    Forbidden {
        /// The verb refused.
        verb: &'static str,
        /// The resource, plural.
        resource: &'static str,
        /// The object.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// The object changed since it was read.
    #[error("{what} changed while the command ran, run it again ({message})")]
    Conflict {
        /// The object.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// The API server refused a call otherwise.
    #[error("{verb} {what}: {message} (HTTP {code})")]
    Api {
        /// The verb.
        verb: &'static str,
        /// The object.
        what: String,
        /// The API server's message.
        message: String,
        /// The HTTP status.
        code: u16,
    },
    /// A call failed without an answer from the API server.
    #[error("{verb} {what}: {source}")]
    Kube {
        /// The verb.
        verb: &'static str,
        /// The object.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The connection's host is not one the token may be sent to.
    #[error(
        "{what} names host {host:?}, which --allowed-hosts does not allow: the new token \
         is sent only to an allowed host. {NOTHING_WRITTEN}"
    )]
    HostNotAllowed {
        /// The connection.
        what: String,
        /// Its `spec.host`.
        host: String,
    },
    /// The source Secret the connection names does not exist.
    #[error("{secret} (spec.credentialsSecretRef of {tvc}) not found")]
    NoSecret {
        /// The Secret.
        secret: String,
        /// The connection.
        tvc: String,
    },
    /// The token could not be read from the terminal.
    #[error("reading the token from the terminal: {0}")]
    Terminal(#[source] std::io::Error),
    /// The token could not be read from standard input.
    #[error("reading the token from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    /// The new credentials are not usable.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The file of `--extra-ca-file` could not be read.
    #[error("--extra-ca-file {}: {source}", path.display())]
    ExtraCa {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The TrackVia client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A step before any write failed.
    #[error("{0}. {NOTHING_WRITTEN}")]
    NotWritten(Box<Error>),
    /// The connection's apply failed after the Secret's.
    #[error(
        "{source}. {secret} already holds the new token (the operator verifies and \
         publishes it), but tokenExpiresOn is unchanged"
    )]
    OnlySecretWritten {
        /// The failed apply.
        source: Box<Error>,
        /// The Secret written.
        secret: String,
    },
}

impl Error {
    /// A failed `verb` on `what` (of `resource`): RBAC names the verb missing.
    pub fn kube(e: kube::Error, verb: &'static str, resource: &'static str, what: &str) -> Error {
        let what = what.to_string();
        match e {
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden {
                verb,
                resource,
                what,
                message: s.message,
            },
            kube::Error::Api(s) if s.code == 409 => Error::Conflict {
                what,
                message: s.message,
            },
            kube::Error::Api(s) => Error::Api {
                verb,
                what,
                message: s.message,
                code: s.code,
            },
            source => Error::Kube { verb, what, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_helpers::api_error as api;

    const SECRET: &str = "Secret apps/src";

    #[test]
    fn api_errors_name_the_verb_and_what_was_written() {
        let forbidden = Error::kube(api(403, "no"), "patch", "secrets", SECRET);
        assert_eq!(
            forbidden.to_string(),
            "not allowed to patch Secret apps/src: the \"patch\" verb on secrets is missing \
             from your RBAC role (no)"
        );
        let changed = Error::kube(api(409, "stale"), "patch", "secrets", SECRET);
        assert_eq!(
            changed.to_string(),
            "Secret apps/src changed while the command ran, run it again (stale)"
        );
        let invalid = Error::kube(api(422, "bad"), "patch", "secrets", SECRET);
        assert_eq!(invalid.to_string(), "patch Secret apps/src: bad (HTTP 422)");
        let io = || kube::Error::ReadEvents(std::io::Error::other("reset"));
        let offline = Error::kube(io(), "get", "secrets", SECRET);
        assert_eq!(
            offline.to_string(),
            format!("get Secret apps/src: {}", io())
        );
        assert_eq!(
            Error::NotWritten(Box::new(offline)).to_string(),
            format!("get Secret apps/src: {}. Nothing was written.", io())
        );
        let only_secret = Error::OnlySecretWritten {
            source: Box::new(invalid),
            secret: SECRET.into(),
        };
        assert_eq!(
            only_secret.to_string(),
            "patch Secret apps/src: bad (HTTP 422). Secret apps/src already holds the new token \
             (the operator verifies and publishes it), but tokenExpiresOn is unchanged"
        );
    }

    #[test]
    fn refusals_name_the_flag_the_object_and_the_host() {
        let tvc = "TrackViaConnection apps/crm";
        let host = Error::HostNotAllowed {
            what: tvc.into(),
            host: "evil.example".into(),
        };
        assert_eq!(
            host.to_string(),
            "TrackViaConnection apps/crm names host \"evil.example\", which --allowed-hosts does \
             not allow: the new token is sent only to an allowed host. Nothing was written."
        );
        let no_secret = Error::NoSecret {
            secret: SECRET.into(),
            tvc: tvc.into(),
        };
        assert_eq!(
            no_secret.to_string(),
            "Secret apps/src (spec.credentialsSecretRef of TrackViaConnection apps/crm) not found"
        );
        assert_eq!(
            Error::NotFound(tvc.into()).to_string(),
            "TrackViaConnection apps/crm not found"
        );
        let date = jiff::civil::date(2030, 6, 15);
        let texts = [
            (
                Refusal::NotADate("tomorrow".into()),
                "\"tomorrow\" is not a calendar date (YYYY-MM-DD)",
            ),
            (
                Refusal::Before2000("1999-12-31".into()),
                "\"1999-12-31\" is before 2000-01-01",
            ),
            (
                Refusal::NotAfterToday { date, today: date },
                "--expires-on 2030-06-15: a token expiring on that day stops working at 00:00 \
                 UTC, which is not after today (2030-06-15 UTC)",
            ),
            (
                Refusal::TokenNameTooLong,
                "--token-name is longer than 256 characters",
            ),
            (
                Refusal::TokenNameControl,
                "--token-name must not contain control characters",
            ),
        ];
        for (refusal, text) in texts {
            assert_eq!(Error::from(refusal).to_string(), text);
        }
    }
}
