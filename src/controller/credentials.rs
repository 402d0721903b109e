//! The credentials read from a source Secret's data, checked, and why a
//! source Secret yields none. Messages name the Secret and the key, never a value.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use crate::trackvia::Credentials;

/// Why a source Secret yields no credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The Secret does not exist.
    #[error("Secret {secret} not found in namespace {namespace}")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        secret: String,
    },
    /// A key is missing or its value unusable.
    #[error("Secret {secret} {problem}")]
    BadKey {
        /// The Secret as named in the message.
        secret: String,
        /// What is wrong with which key.
        problem: KeyProblem,
    },
}

/// What is wrong with one key of a source Secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The key is absent.
    #[error("has no key {0:?}")]
    Missing(String),
    /// The value is not UTF-8.
    #[error("key {0:?} is not UTF-8")]
    NotUtf8(String),
    /// The value is longer than 8 KiB.
    #[error("key {0:?} is longer than 8 KiB")]
    TooLong(String),
    /// The value is empty (or blank).
    #[error("key {0:?} is empty")]
    Empty(String),
    /// The value holds whitespace or control characters.
    #[error("key {0:?} contains whitespace or control characters")]
    BadCharacters(String),
}

/// The key and token from a Secret's data, checked: present, UTF-8, not empty,
/// at most 8 KiB, no whitespace or control characters.
pub fn credentials_from_data(
    secret_name: &str,
    data: &BTreeMap<String, ByteString>,
    api_key_key: &str,
    auth_token_key: &str,
) -> Result<Credentials, CredentialsError> {
    let value = |key: &str| -> Result<String, KeyProblem> {
        let bytes = data
            .get(key)
            .ok_or_else(|| KeyProblem::Missing(key.into()))?;
        let text = std::str::from_utf8(&bytes.0)
            .map_err(|_| KeyProblem::NotUtf8(key.into()))?
            .trim();
        if text.len() > 8 * 1024 {
            return Err(KeyProblem::TooLong(key.into()));
        }
        if text.is_empty() {
            return Err(KeyProblem::Empty(key.into()));
        }
        if text.chars().any(|c| c.is_control() || c == ' ') {
            return Err(KeyProblem::BadCharacters(key.into()));
        }
        Ok(text.to_string())
    };
    let checked = |key: &str| {
        value(key).map_err(|problem| CredentialsError::BadKey {
            secret: secret_name.to_string(),
            problem,
        })
    };
    Ok(Credentials {
        api_key: checked(api_key_key)?,
        auth_token: checked(auth_token_key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_and_checked_without_echoing_values() {
        let data = |pairs: &[(&str, &[u8])]| -> BTreeMap<String, ByteString> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect()
        };
        let ok = data(&[("apiKey", b" key-1\n"), ("authToken", b"tok-1")]);
        let c = credentials_from_data("src", &ok, "apiKey", "authToken").unwrap();
        assert_eq!(
            (c.api_key.as_str(), c.auth_token.as_str()),
            ("key-1", "tok-1")
        );
        let long = vec![b'x'; 8 * 1024 + 1];
        for (bad, needle) in [
            (data(&[("apiKey", b"key-1")]), "no key \"authToken\""),
            (
                data(&[("apiKey", b"key-1"), ("authToken", b"  ")]),
                "is empty",
            ),
            (
                data(&[("apiKey", b"key-1"), ("authToken", b"a b")]),
                "whitespace",
            ),
            (
                data(&[("apiKey", b"key-1"), ("authToken", &[0xff, 0xfe])]),
                "not UTF-8",
            ),
            (data(&[("apiKey", b"key-1"), ("authToken", &long)]), "8 KiB"),
        ] {
            let err = credentials_from_data("src", &bad, "apiKey", "authToken")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle) && err.contains("src"), "{err}");
            assert!(!err.contains("key-1"), "{err}");
        }
    }
}
