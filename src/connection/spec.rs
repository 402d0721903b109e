//! The spec, parsed once into typed values: durations, the token's dates,
//! the host, and what the schema cannot check (Secret keys, labels, sizes).
//! A failure names the field it is about.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::crd::{MANAGED_BY_LABEL, TrackViaConnectionSpec};
use crate::names;

/// The longest verification interval honoured (longer ones are cut to this).
const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);
/// The shortest verification interval other than `0` (off).
const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// The spec, parsed into typed values.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSpec {
    /// `host[:port]`, lower case.
    pub host: String,
    /// 00:00 UTC on `tokenExpiresOn`.
    pub token_expires_at: Option<Timestamp>,
    /// `tokenExpiresAt - expiryWarning`.
    pub expiry_warning_at: Option<Timestamp>,
    /// Periodic verification interval; `None` when turned off (`0`).
    pub verify_interval: Option<Duration>,
}

/// A duration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// `""`, which kube's parser would read as zero.
    #[error("an empty string is not a duration")]
    Empty,
    /// Too long a text, a sign inside it, or a number beyond range.
    #[error("{0:?} is not a duration of a sensible size")]
    Size(String),
    /// Not a duration at all.
    #[error("{text:?} is not a duration: {detail}")]
    Syntax {
        /// The text given.
        text: String,
        /// The parser's word.
        detail: String,
    },
    /// Below zero.
    #[error("{0:?} is negative")]
    Negative(String),
}

/// A spec the operator cannot work with: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `spec.host`.
    #[error(
        "host {0:?} must be host[:port]: a DNS name without scheme, userinfo or path, and a port from 1 to 65535"
    )]
    Host(String),
    /// `spec.target.keys` repeat a name.
    #[error("target.keys must all be different")]
    DuplicateKeys,
    /// A `spec.target.keys` entry is no Secret key.
    #[error("target.keys: {0:?} is not a valid Secret key")]
    SecretKey(String),
    /// A `spec.target.labels` entry.
    #[error("target.labels: {0:?}={1:?} is not a valid label")]
    Label(String, String),
    /// A `spec.target.annotations` key.
    #[error("target.annotations: {0:?} is not a valid annotation key")]
    AnnotationKey(String),
    /// `spec.target.labels` claims the operator's own label.
    #[error("target.labels must not set {MANAGED_BY_LABEL}")]
    ManagedByLabel,
    /// `spec.tokenExpiresOn` is not a calendar date.
    #[error("tokenExpiresOn {0:?} is not a calendar date (YYYY-MM-DD)")]
    Date(String),
    /// `spec.tokenExpiresOn` is a date without an instant.
    #[error("tokenExpiresOn {date:?}: {detail}")]
    DateRange {
        /// The date given.
        date: String,
        /// Why it has no instant.
        detail: String,
    },
    /// `spec.expiryWarning`.
    #[error("expiryWarning: {0}")]
    ExpiryWarning(DurationError),
    /// `spec.expiryWarning` reaches before the start of time.
    #[error("expiryWarning is too long")]
    ExpiryWarningTooLong,
    /// `spec.verifyInterval`.
    #[error("verifyInterval: {0}")]
    VerifyInterval(DurationError),
    /// `spec.verifyInterval` is neither `0` nor at least a minute.
    #[error("verifyInterval {0:?} is below the minimum of 1m")]
    VerifyIntervalTooShort(String),
}

/// Parse a duration such as `336h`, `1h30m`, `90s` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    // kube's parser panics on a number beyond `Duration`'s range and on a sign
    // inside the text; the schema does not stop `9999999999999999999h` (the
    // CEL rules may not run at all on older clusters), so refuse such input here.
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let too_big = unsigned
        .split(|c: char| c.is_alphabetic())
        .filter_map(|number| number.parse::<f64>().ok())
        .any(|number| number >= 1e12);
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.len() > 64 || unsigned.contains(['-', '+']) || too_big {
        return Err(DurationError::Size(text.into()));
    }
    let parsed: kube::core::Duration = text.parse().map_err(|e| DurationError::Syntax {
        text: text.into(),
        detail: format!("{e}"),
    })?;
    if text.starts_with('-') {
        return Err(DurationError::Negative(text.into()));
    }
    Ok(parsed.into())
}

/// The instant a token dated `date` (YYYY-MM-DD) stops working: 00:00:00 UTC that day.
pub fn token_expiry_instant(date: &str) -> Result<Timestamp, SpecError> {
    let day: jiff::civil::Date = date.parse().map_err(|_| SpecError::Date(date.into()))?;
    if date.len() != 10 {
        return Err(SpecError::Date(date.into()));
    }
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| SpecError::DateRange {
            date: date.into(),
            detail: e.to_string(),
        })
}

/// Parse and check what the schema cannot (real dates, sizes of durations).
pub fn parse_spec(spec: &TrackViaConnectionSpec) -> Result<ParsedSpec, SpecError> {
    let host = spec.host.trim().to_ascii_lowercase();
    if !names::valid_host_port(&host) {
        return Err(SpecError::Host(spec.host.to_string()));
    }
    check_target(spec)?;
    let token_expires_at = spec
        .token_expires_on
        .as_deref()
        .map(token_expiry_instant)
        .transpose()?;
    let warning = parse_duration(&spec.expiry_warning).map_err(SpecError::ExpiryWarning)?;
    let warning = SignedDuration::try_from(warning).map_err(|_| SpecError::ExpiryWarningTooLong)?;
    let expiry_warning_at = token_expires_at
        .map(|at| at.checked_sub(warning))
        .transpose()
        .map_err(|_| SpecError::ExpiryWarningTooLong)?;
    Ok(ParsedSpec {
        host,
        token_expires_at,
        expiry_warning_at,
        verify_interval: verify_interval(&spec.verify_interval)?,
    })
}

/// `verifyInterval`: `None` for `0`, at least a minute, at most a year.
fn verify_interval(text: &str) -> Result<Option<Duration>, SpecError> {
    let interval = parse_duration(text).map_err(SpecError::VerifyInterval)?;
    if interval.is_zero() {
        Ok(None)
    } else if interval < MIN_INTERVAL {
        Err(SpecError::VerifyIntervalTooShort(text.into()))
    } else {
        Ok(Some(interval.min(MAX_INTERVAL)))
    }
}

/// The output Secret's keys, labels and annotations.
fn check_target(spec: &TrackViaConnectionSpec) -> Result<(), SpecError> {
    let keys = &spec.target.keys;
    let names = [
        &keys.api_key,
        &keys.auth_token,
        &keys.host,
        &keys.account_id,
        &keys.base_url,
    ];
    if names
        .iter()
        .enumerate()
        .any(|(i, a)| names[..i].contains(a))
    {
        return Err(SpecError::DuplicateKeys);
    }
    if let Some(key) = names.iter().find(|k| !names::valid_secret_key(k)) {
        return Err(SpecError::SecretKey(key.to_string()));
    }
    for (key, value) in &spec.target.labels {
        if !names::valid_qualified_name(key) || !names::valid_label_value(value) {
            return Err(SpecError::Label(key.clone(), value.clone()));
        }
    }
    if let Some(key) = (spec.target.annotations.keys()).find(|k| !names::valid_qualified_name(k)) {
        return Err(SpecError::AnnotationKey(key.clone()));
    }
    if spec.target.labels.contains_key(MANAGED_BY_LABEL) {
        return Err(SpecError::ManagedByLabel);
    }
    Ok(())
}
