//! The decisions of `rotate`, as pure functions: the new expiry date, the new
//! source Secret data, the two server-side apply bodies, whether the operator
//! has published the new credentials, and the lines shown at the end.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Value, json};

use crate::connection::token_expiry_instant;
use crate::crd::ConditionStatus;
use crate::crd::{TrackViaConnection, condition};

use super::super::verify_now::exit_code;
use super::error::Refusal;

/// The field manager of the writes of `rotate`.
pub const FIELD_MANAGER: &str = "kubectl-trackvia";

/// `--expires-on`: a calendar date `YYYY-MM-DD` from 2000-01-01 on (as the schema allows).
pub fn parse_expiry_date(text: &str) -> Result<Date, Refusal> {
    let not_a_date = || Refusal::NotADate(text.to_string());
    token_expiry_instant(text).map_err(|_| not_a_date())?;
    let date: Date = text.parse().map_err(|_| not_a_date())?;
    if date < jiff::civil::date(2000, 1, 1) {
        return Err(Refusal::Before2000(text.to_string()));
    }
    Ok(date)
}

/// A token expiring on `date` stops working at 00:00 UTC that day: a date that is
/// today or earlier (in UTC) at `now` is refused.
pub fn check_expiry_date(date: Date, now: Timestamp) -> Result<(), Refusal> {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    if date <= today {
        return Err(Refusal::NotAfterToday { date, today });
    }
    Ok(())
}

/// `--token-name`: the schema's rule for `tokenName` (at most 256 characters,
/// no control characters), checked before anything is sent anywhere.
pub fn check_token_name(name: &str) -> Result<(), Refusal> {
    if name.chars().count() > 256 {
        return Err(Refusal::TokenNameTooLong);
    }
    if name
        .chars()
        .any(|c| c.is_control() || ('\u{7f}'..='\u{9f}').contains(&c))
    {
        return Err(Refusal::TokenNameControl);
    }
    Ok(())
}

/// The source Secret's data with `token_key` set to `token` (trimmed). `Err`
/// (naming the keys present, never a value) when the Secret has no such key:
/// the connection's spec and the Secret disagree, and a rotation would not fix it.
pub fn new_data(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
    token_key: &str,
    token: &str,
) -> Result<BTreeMap<String, ByteString>, Refusal> {
    if !data.contains_key(token_key) {
        let present: Vec<&str> = data.keys().map(String::as_str).collect();
        return Err(Refusal::NoTokenKey {
            secret: secret.to_string(),
            key: token_key.to_string(),
            present: if present.is_empty() {
                "none".to_string()
            } else {
                present.join(", ")
            },
        });
    }
    let mut out = data.clone();
    out.insert(
        token_key.to_string(),
        ByteString(token.trim().as_bytes().to_vec()),
    );
    Ok(out)
}

/// Fields under `section` (`f:data`, `f:spec`) that `manager` owns through apply.
/// A later apply by the same manager that leaves one out removes it, so each
/// apply of `rotate` carries them again.
pub fn applied_fields(managed: Option<&[ManagedFieldsEntry]>, section: &str) -> Vec<String> {
    managed
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
        })
        .filter_map(|e| e.fields_v1.as_ref()?.0.get(section)?.as_object())
        .flat_map(|fields| fields.keys())
        .filter_map(|k| k.strip_prefix("f:"))
        .map(str::to_string)
        .collect()
}

/// The apply body of the source Secret: the token key, and the other keys this
/// manager applied before (unchanged). `resource_version` makes it fail when the
/// Secret changed since it was read.
pub fn secret_apply(
    namespace: &str,
    name: &str,
    resource_version: Option<&str>,
    data: &BTreeMap<String, ByteString>,
    token_key: &str,
    owned: &[String],
) -> Value {
    let data: BTreeMap<&String, &ByteString> = data
        .iter()
        .filter(|(k, _)| k.as_str() == token_key || owned.contains(k))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
        "data": data,
    })
}

/// The apply body of the connection: `tokenExpiresOn`, and `tokenName` when given
/// or when this manager applied it before (kept as it is). Without a
/// resourceVersion: the operator's status writes change that all the time.
pub fn connection_apply(
    tvc: &TrackViaConnection,
    expires_on: Date,
    token_name: Option<&str>,
) -> Value {
    let owned = applied_fields(tvc.metadata.managed_fields.as_deref(), "f:spec");
    let mut spec = json!({"tokenExpiresOn": expires_on.to_string()});
    let name = token_name.or(tvc
        .spec
        .token_name
        .as_deref()
        .filter(|_| owned.iter().any(|f| f == "tokenName")));
    if let Some(name) = name {
        spec["tokenName"] = json!(name);
    }
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": tvc.metadata.name, "namespace": tvc.metadata.namespace},
        "spec": spec,
    })
}

/// Where the operator is with the new credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not yet answered for the new spec and credentials.
    Waiting,
    /// Verified and published.
    Published,
    /// The operator's check was refused: the exit code of that answer and its line.
    Refused(u8, String),
}

/// Has the operator verified and published the credentials whose fingerprint is
/// `fingerprint`, for a spec at least as new as `generation`?
pub fn progress(tvc: &TrackViaConnection, generation: Option<i64>, fingerprint: &str) -> Progress {
    let Some(status) = &tvc.status else {
        return Progress::Waiting;
    };
    if status.observed_generation < generation
        || status.credentials_fingerprint.as_deref() != Some(fingerprint)
    {
        return Progress::Waiting;
    }
    let is_true = |type_: &str| {
        status
            .condition(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    };
    if status.verified_fingerprint.as_deref() == Some(fingerprint)
        && is_true(condition::VERIFIED)
        && is_true(condition::READY)
        && is_true(condition::SECRET_SYNCED)
    {
        return Progress::Published;
    }
    match status.condition(condition::VERIFIED) {
        Some(v)
            if v.status == ConditionStatus::False && (2..=4).contains(&exit_code(&v.reason)) =>
        {
            Progress::Refused(exit_code(&v.reason), format!("{}: {}", v.reason, v.message))
        }
        _ => Progress::Waiting,
    }
}

/// What was done, for the connection `tvc` as it was before: never a credential.
pub fn summary(
    before: &TrackViaConnection,
    secret: &str,
    token_key: &str,
    expires_on: Date,
    token_name: Option<&str>,
    published_to: &str,
) -> Vec<String> {
    let old_date = before.spec.token_expires_on.as_deref();
    let old_name = before.spec.token_name.as_deref();
    let mut spec = format!(
        "TrackViaConnection {}: tokenExpiresOn {} -> {expires_on}",
        before.metadata.name.as_deref().unwrap_or("-"),
        old_date.unwrap_or("(unset)")
    );
    if let Some(new) = token_name.filter(|n| Some(*n) != old_name) {
        spec.push_str(&format!(
            ", tokenName {} -> {new:?}",
            old_name.map_or("(unset)".to_string(), |n| format!("{n:?}"))
        ));
    }
    let old_token = match (old_name, old_date) {
        (Some(n), Some(d)) => format!("the old token {n:?} (expiring on {d})"),
        (Some(n), None) => format!("the old token {n:?}"),
        (None, Some(d)) => format!("the old token (expiring on {d})"),
        (None, None) => "the old token".to_string(),
    };
    vec![
        format!("{secret}: key {token_key} holds the new token"),
        spec,
        format!("Verified by TrackVia and published to Secret {published_to}"),
        format!(
            "Reminder: delete {old_token} in TrackVia (gear icon, Deactivate, then delete) once \
             the workloads use the new one; until then it still works."
        ),
    ]
}
