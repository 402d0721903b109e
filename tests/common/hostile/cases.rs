//! The hostile connections of `tests/hostile_connections.rs`: what each one is and what must
//! happen to it (a refusal by the API server naming the field, or Ready=False with a reason).

use serde_json::json;

use super::Expect::{NotReady, Refused};
use super::{Case, case, created};

/// Every hostile connection spec, merged over a valid one. `port` is the fake TrackVia's,
/// `elsewhere` a namespace holding a valid source Secret, `sa_token` a ServiceAccount token
/// Secret in the connections' namespace.
#[rustfmt::skip]
pub fn hostile_cases(port: u16, elsewhere: &str, sa_token: &str) -> Vec<Case> {
    let fake_port = |h: &str| format!("{h}:{port}");
    vec![
        // Dates.
        case("month 13", json!({"tokenExpiresOn": "2027-13-01"}), Refused("spec.tokenExpiresOn")),
        case("date with a time", json!({"tokenExpiresOn": "2027-03-31T00:00:00Z"}), Refused("spec.tokenExpiresOn")),
        case("empty date", json!({"tokenExpiresOn": ""}), Refused("spec.tokenExpiresOn")),
        case("full-width digits", json!({"tokenExpiresOn": "２０２７-03-31"}), Refused("spec.tokenExpiresOn")),
        case("30 February", json!({"tokenExpiresOn": "2027-02-30"}), NotReady("InvalidSpec", "tokenExpiresOn")),
        case("29 February of a common year", json!({"tokenExpiresOn": "2027-02-29"}), NotReady("InvalidSpec", "tokenExpiresOn")),
        case("year 0001", json!({"tokenExpiresOn": "0001-01-01"}), NotReady("Expired", "0001-01-01")),
        // Hosts.
        case("userinfo", json!({"host": "user:pass@acme.trackvia.com"}), Refused("spec.host")),
        case("query", json!({"host": "acme.trackvia.com?x=1"}), Refused("spec.host")),
        case("fragment", json!({"host": "acme.trackvia.com#x"}), Refused("spec.host")),
        case("IPv6 literal", json!({"host": "[::1]:443"}), Refused("spec.host")),
        case("upper case", json!({"host": "ACME.trackvia.com"}), Refused("spec.host")),
        case("trailing dot", json!({"host": "acme.trackvia.com."}), Refused("spec.host")),
        case("empty host", json!({"host": ""}), Refused("spec.host")),
        case("300 characters", json!({"host": format!("{}com", "a.".repeat(150))}), Refused("spec.host")),
        case("64-character label", json!({"host": format!("{}.trackvia.com", "a".repeat(64))}), Refused("spec.host")),
        case("unicode", json!({"host": "acmé.trackvia.com"}), Refused("spec.host")),
        case("header injection", json!({"host": "acme.trackvia.com\r\nX-Evil: 1"}), Refused("spec.host")),
        case("cloud metadata IP", json!({"host": "169.254.169.254"}), NotReady("HostNotAllowed", "allowed hosts")),
        case("0.0.0.0 on the fake's port", json!({"host": fake_port("0.0.0.0")}), NotReady("HostNotAllowed", "allowed hosts")),
        case("decimal IP on the fake's port", json!({"host": fake_port("2130706433")}), NotReady("HostNotAllowed", "allowed hosts")),
        case("suffix of an allowed name", json!({"host": fake_port("localhost.evil.example")}), NotReady("HostNotAllowed", "allowed hosts")),
        case("port 0", json!({"host": "localhost:0"}), NotReady("InvalidSpec", "port")),
        case("port 99999", json!({"host": "localhost:99999"}), NotReady("InvalidSpec", "port")),
        // Durations.
        case("negative verifyInterval", json!({"verifyInterval": "-1h"}), Refused("spec.verifyInterval")),
        case("negative expiryWarning", json!({"expiryWarning": "-5m"}), Refused("spec.expiryWarning")),
        case("days", json!({"verifyInterval": "1d"}), Refused("spec.verifyInterval")),
        case("33-character duration", json!({"verifyInterval": "1h".repeat(17)}), Refused("spec.verifyInterval")),
        case("verifyInterval 30s", json!({"verifyInterval": "30s"}), NotReady("InvalidSpec", "verifyInterval")),
        case("verifyInterval 0.5m", json!({"verifyInterval": "0.5m"}), NotReady("InvalidSpec", "verifyInterval")),
        case("verifyInterval of 10^17 hours", json!({"verifyInterval": "99999999999999999h"}), NotReady("InvalidSpec", "verifyInterval")),
        case("expiryWarning of 10^11 hours", json!({"tokenExpiresOn": "2099-01-01", "expiryWarning": "999999999999h"}), NotReady("InvalidSpec", "expiryWarning")),
        // Account ids.
        case("account 0", json!({"accountId": 0}), Refused("spec.accountId")),
        case("account 2^64", json!({"accountId": 18446744073709551616.0}), Refused("spec.accountId")),
        case("account as a string", json!({"accountId": "12"}), Refused("spec.accountId")),
        case("fractional account", json!({"accountId": 1.5}), Refused("spec.accountId")),
        // The source Secret.
        case("no credentialsSecretRef", json!({"credentialsSecretRef": null}), Refused("spec.credentialsSecretRef")),
        case("namespace/name", json!({"credentialsSecretRef": {"name": "other/src"}}), Refused("spec.credentialsSecretRef.name")),
        case("empty Secret name", json!({"credentialsSecretRef": {"name": ""}}), Refused("spec.credentialsSecretRef.name")),
        case("path in a key name", json!({"credentialsSecretRef": {"apiKeyKey": "../apiKey"}}), Refused("spec.credentialsSecretRef.apiKeyKey")),
        case("a namespace field, server-side apply", json!({"credentialsSecretRef": {"name": "src-elsewhere", "namespace": elsewhere}}), Refused("spec.credentialsSecretRef.namespace")),
        created("a namespace field, created (pruned)", json!({"credentialsSecretRef": {"name": "src-elsewhere", "namespace": elsewhere}}), NotReady("CredentialsNotFound", "not found in namespace")),
        case("a key that is not there", json!({"credentialsSecretRef": {"authTokenKey": "nope"}}), NotReady("CredentialsNotFound", "\"nope\"")),
        case("an empty token", json!({"credentialsSecretRef": {"name": "src-empty"}}), NotReady("CredentialsNotFound", "empty")),
        case("a token with a space", json!({"credentialsSecretRef": {"name": "src-space"}}), NotReady("CredentialsNotFound", "whitespace")),
        case("a token that is not UTF-8", json!({"credentialsSecretRef": {"name": "src-binary"}}), NotReady("CredentialsNotFound", "UTF-8")),
        case("a unicode token", json!({"credentialsSecretRef": {"name": "src-unicode"}}), NotReady("Unauthorized", "401")),
        case("a 600 kB token", json!({"credentialsSecretRef": {"name": "src-huge"}}), NotReady("CredentialsNotFound", "8 KiB")),
        // The output Secret.
        case("upper-case target", json!({"target": {"name": "Crm"}}), Refused("spec.target.name")),
        case("space in a target key", json!({"target": {"keys": {"authToken": "auth token"}}}), Refused("spec.target.keys.authToken")),
        case("a ServiceAccount token Secret", json!({"target": {"name": sa_token}}), NotReady("TargetConflict", "not managed")),
        case("its own source Secret", json!({"target": {"name": "src"}}), NotReady("InvalidSpec", "never writes its source Secret")),
        case("adopting its own source Secret", json!({"target": {"name": "src", "adopt": true}}), NotReady("InvalidSpec", "never writes its source Secret")),
        case("another connection's Secret", json!({"target": {"name": "before"}}), NotReady("TargetConflict", "before")),
        case("adopting a ServiceAccount token Secret", json!({"target": {"name": sa_token, "adopt": true}}), NotReady("TargetConflict", "only Opaque Secrets are adopted")),
        case("'..' as a data key", json!({"target": {"name": "dotdot", "keys": {"host": ".."}}}), NotReady("InvalidSpec", "not a valid Secret key")),
        case("an invalid label", json!({"target": {"name": "badlabel", "labels": {"bad key!": "x"}}}), NotReady("InvalidSpec", "not a valid label")),
        case("one key for key and token", json!({"target": {"name": "samekey", "keys": {"apiKey": "cred", "authToken": "cred"}}}), NotReady("InvalidSpec", "must all be different")),
        case("the managed-by label", json!({"target": {"name": "label", "labels": {"app.kubernetes.io/managed-by": "someone-else"}}}), NotReady("InvalidSpec", "app.kubernetes.io/managed-by")),
        // Everything else.
        case("a Pod as restart target", json!({"rolloutRestartTargets": [{"kind": "Pod", "name": "x"}]}), Refused("spec.rolloutRestartTargets.kind")),
        case("33 restart targets", json!({"rolloutRestartTargets": (0..33).map(|i| json!({"kind": "Deployment", "name": format!("d{i}")})).collect::<Vec<_>>()}), Refused("spec.rolloutRestartTargets")),
        case("publish in lower case", json!({"publish": "always"}), Refused("spec.publish")),
        case("a 10 000-character tokenName", json!({"tokenName": "x".repeat(10_000)}), Refused("spec.tokenName")),
    ]
}
