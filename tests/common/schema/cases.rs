//! The table of objects the CRD's CEL rules must accept or refuse, by field.

use serde_json::json;

use super::*;

/// Every case of the table.
pub fn cases() -> Vec<Case> {
    [
        whole_specs(),
        informational_text(),
        host_cases(),
        date_cases(),
        interval_cases(),
        warning_cases(),
        label_cases(),
        key_cases(),
        target_cases(),
        several_problems(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whole specs.
fn whole_specs() -> Vec<Case> {
    vec![
        accepted("the minimal spec", json!({})),
        accepted(
            "only the required field",
            json!({ "host": null, "tokenExpiresOn": null }),
        ),
        accepted(
            "every field set",
            json!({
                "host": "sandbox.trackvia.com:443",
                "accountId": 12345,
                "credentialsSecretRef": { "name": "trackvia-api-user", "apiKeyKey": "key", "authTokenKey": "token" },
                "tokenName": "workato-prod",
                "apiUser": "svc-crm@acme.com",
                "expiryWarning": "168h",
                "verifyInterval": "30m",
                "target": {
                    "name": "crm-trackvia",
                    "keys": { "apiKey": "TV_KEY", "authToken": "TV_TOKEN", "host": "TV_HOST", "accountId": "TV_ACCOUNT", "baseUrl": "TV_URL" },
                    "labels": { "team": "crm", "app.kubernetes.io/name": "crm" },
                    "annotations": { "app.kubernetes.io/managed-by": "someone" },
                    "deletionPolicy": "Retain",
                },
                "publish": "Always",
                "rolloutRestartTargets": [{ "kind": "Deployment", "name": "crm-sync" }],
            }),
        ),
    ]
}

/// Informational text.
fn informational_text() -> Vec<Case> {
    vec![
        accepted(
            "a token name and API user beyond ASCII",
            json!({ "tokenName": "Intégration — prod ✓", "apiUser": "svc.crm+ops@acme.com" }),
        ),
        refused(
            "an escape sequence in tokenName",
            json!({ "tokenName": "prod\u{1b}[2J" }),
            &[TOKEN_NAME],
        ),
        refused(
            "a newline in tokenName",
            json!({ "tokenName": "prod\nfake line" }),
            &[TOKEN_NAME],
        ),
        refused(
            "a bell and a C1 control in apiUser",
            json!({ "apiUser": "svc\u{7}@acme.com\u{9b}" }),
            &[API_USER],
        ),
        refused(
            "a DEL in apiUser",
            json!({ "apiUser": "svc\u{7f}@acme.com" }),
            &[API_USER],
        ),
    ]
}

/// Host.
fn host_cases() -> Vec<Case> {
    vec![
        accepted("a subdomain", host("go.trackvia.com")),
        accepted("a host with a port", host("acme.trackvia.com:8443")),
        accepted("a host with port 443", host("acme.trackvia.com:443")),
        accepted("a single label with a port", host("localhost:1")),
        accepted("a single character", host("a")),
        accepted("an IPv4 address with a port", host("127.0.0.1:8443")),
        accepted("hyphens inside labels", host("my-acme.eu-1.trackvia.com")),
        accepted(
            "a 63-character label",
            host(&format!("{}.trackvia.com", "a".repeat(63))),
        ),
        refused(
            "a scheme",
            host("https://acme.trackvia.com"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "a path",
            host("acme.trackvia.com/openapi"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "a trailing slash",
            host("acme.trackvia.com/"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "userinfo",
            host("user@acme.trackvia.com"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused(
            "userinfo with a password",
            host("user:secret@acme.trackvia.com"),
            &[HOST_SHAPE, HOST_DNS],
        ),
        refused("upper case", host("ACME.trackvia.com"), &[HOST_DNS]),
        refused("mixed case", host("Acme.TrackVia.com"), &[HOST_DNS]),
        refused("an empty port", host("acme.trackvia.com:"), &[HOST_DNS]),
        refused(
            "a six-digit port",
            host("acme.trackvia.com:123456"),
            &[HOST_DNS],
        ),
        refused("a named port", host("acme.trackvia.com:https"), &[HOST_DNS]),
        refused("a negative port", host("acme.trackvia.com:-1"), &[HOST_DNS]),
        refused("two ports", host("acme.trackvia.com:1:2"), &[HOST_DNS]),
        refused("a leading hyphen", host("-acme.trackvia.com"), &[HOST_DNS]),
        refused(
            "a trailing hyphen in a label",
            host("acme-.trackvia.com"),
            &[HOST_DNS],
        ),
        refused("an empty label", host("acme..trackvia.com"), &[HOST_DNS]),
        refused("a trailing dot", host("acme.trackvia.com."), &[HOST_DNS]),
        refused(
            "a 64-character label",
            host(&format!("{}.trackvia.com", "a".repeat(64))),
            &[HOST_DNS],
        ),
        refused("an empty host", host(""), &[HOST_DNS]),
        refused("a space", host("acme trackvia.com"), &[HOST_DNS]),
        refused("an underscore", host("acme_1.trackvia.com"), &[HOST_DNS]),
        refused("an IPv6 literal", host("[::1]:8443"), &[HOST_DNS]),
    ]
}

/// TokenExpiresOn.
fn date_cases() -> Vec<Case> {
    vec![
        accepted("the first accepted day", date("2000-01-01")),
        accepted("the last day of a year", date("2027-12-31")),
        accepted("a leap day", date("2028-02-29")),
        accepted("a leap day of a year divisible by 400", date("2000-02-29")),
        accepted("the 30th of April", date("2027-04-30")),
        accepted("the 31st of July", date("2027-07-31")),
        accepted("the 31st of August", date("2027-08-31")),
        accepted("far in the future", date("9999-12-31")),
        accepted("no date", json!({ "tokenExpiresOn": null })),
        refused("month 13", date("2027-13-01"), &[DATE]),
        refused("month 00", date("2027-00-10"), &[DATE]),
        refused("day 00", date("2027-01-00"), &[DATE]),
        refused("day 32", date("2027-01-32"), &[DATE]),
        refused("slashes", date("2027/01/01"), &[DATE]),
        refused("a word", date("tomorrow"), &[DATE]),
        refused("the 30th of February", date("2027-02-30"), &[DATE]),
        refused("a leap day in a common year", date("2027-02-29"), &[DATE]),
        refused("a leap day in a century year", date("2100-02-29"), &[DATE]),
        refused("the 31st of April", date("2027-04-31"), &[DATE]),
        refused("the 31st of June", date("2027-06-31"), &[DATE]),
        refused("the 31st of September", date("2027-09-31"), &[DATE]),
        refused("the 31st of November", date("2027-11-31"), &[DATE]),
        refused("before 2000", date("1999-12-31"), &[DATE]),
        refused("a two-digit year", date("27-01-01"), &[DATE]),
        refused("no leading zeros", date("2027-1-1"), &[DATE]),
        refused("a timestamp", date("2027-01-01T00:00:00Z"), &[DATE]),
        refused("a leading space", date(" 2027-01-01"), &[DATE]),
        refused("an empty date", date(""), &[DATE]),
    ]
}

/// VerifyInterval.
fn interval_cases() -> Vec<Case> {
    vec![
        accepted("interval 1m", interval("1m")),
        accepted("interval 1h", interval("1h")),
        accepted("interval 0", interval("0")),
        accepted("interval 0s, also off", interval("0s")),
        accepted("interval 0m, also off", interval("0m")),
        accepted("interval 60s", interval("60s")),
        accepted("interval 1h30m", interval("1h30m")),
        accepted("interval 1.5h", interval("1.5h")),
        accepted("interval a year", interval("8784h")),
        refused("interval 30s", interval("30s"), &[INTERVAL]),
        refused("interval 59s", interval("59s"), &[INTERVAL]),
        refused("interval 59.9s", interval("59.9s"), &[INTERVAL]),
        refused("interval 1ms", interval("1ms"), &[INTERVAL]),
        refused("a negative interval", interval("-1h"), &[INTERVAL]),
        refused("an interval without a unit", interval("60"), &[INTERVAL]),
        refused("an interval in days", interval("1d"), &[INTERVAL]),
        refused("an interval in words", interval("hourly"), &[INTERVAL]),
        refused("an empty interval", interval(""), &[INTERVAL]),
    ]
}

/// ExpiryWarning.
fn warning_cases() -> Vec<Case> {
    vec![
        accepted("warning 0", warning("0")),
        accepted("warning 0s", warning("0s")),
        accepted("warning 336h", warning("336h")),
        accepted("warning 1h30m", warning("1h30m")),
        accepted("warning 1ms", warning("1ms")),
        refused("a negative warning", warning("-1h"), &[WARNING]),
        refused("a negative fraction", warning("-0.5s"), &[WARNING]),
        refused("a warning in days", warning("14d"), &[WARNING]),
        refused("a warning without a unit", warning("336"), &[WARNING]),
        refused("a warning in words", warning("two weeks"), &[WARNING]),
    ]
}

/// Target.labels.
fn label_cases() -> Vec<Case> {
    vec![
        accepted(
            "ordinary labels",
            json!({ "target": { "labels": { "team": "crm" } } }),
        ),
        accepted(
            "other app.kubernetes.io labels",
            json!({ "target": { "labels": { "app.kubernetes.io/part-of": "crm" } } }),
        ),
        accepted("no labels", json!({ "target": { "labels": {} } })),
        refused(
            "managed-by in labels",
            json!({ "target": { "labels": { "app.kubernetes.io/managed-by": "helm" } } }),
            &[LABELS],
        ),
        refused(
            "managed-by in labels, even with the operator's own value",
            json!({ "target": { "labels": { "team": "crm", "app.kubernetes.io/managed-by": "trackvia-operator" } } }),
            &[LABELS],
        ),
    ]
}

/// Target.keys.
fn key_cases() -> Vec<Case> {
    vec![
        accepted("default keys", json!({ "target": { "keys": {} } })),
        accepted(
            "one key renamed",
            json!({ "target": { "keys": { "host": "trackviaHost" } } }),
        ),
        accepted(
            "keys differing only in case",
            json!({ "target": { "keys": { "host": "Host", "baseUrl": "HOST" } } }),
        ),
        refused(
            "two keys the same",
            json!({ "target": { "keys": { "apiKey": "token", "authToken": "token" } } }),
            &[KEYS],
        ),
        refused(
            "a key equal to another's default",
            json!({ "target": { "keys": { "host": "apiKey" } } }),
            &[KEYS],
        ),
        refused(
            "all keys the same",
            json!({ "target": { "keys": { "apiKey": "k", "authToken": "k", "host": "k", "accountId": "k", "baseUrl": "k" } } }),
            &[KEYS],
        ),
    ]
}

/// The output Secret is never the source Secret (a rule on the whole object).
fn target_cases() -> Vec<Case> {
    vec![
        refused(
            "target.name is the credentials Secret",
            json!({ "target": { "name": "trackvia-api-user" } }),
            &[TARGET_SOURCE],
        ),
        refused(
            "no target.name, and the connection is named like its credentials Secret",
            json!({ "credentialsSecretRef": { "name": "crm" } }),
            &[TARGET_SOURCE],
        ),
        accepted(
            "named like its credentials Secret, publishing under another name",
            json!({ "credentialsSecretRef": { "name": "crm" }, "target": { "name": "crm-out" } }),
        ),
        accepted(
            "a target named like the connection, reading another Secret",
            json!({ "target": { "name": "crm" } }),
        ),
    ]
}

/// Several problems at once are all reported.
fn several_problems() -> Vec<Case> {
    vec![refused(
        "a bad host, date and interval",
        json!({ "host": "https://ACME", "tokenExpiresOn": "2027-02-30", "verifyInterval": "5s" }),
        &[HOST_SHAPE, HOST_DNS, DATE, INTERVAL],
    )]
}
