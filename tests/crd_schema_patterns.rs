//! The OpenAPI patterns of the CRD's schema: they are the published constants, compile for
//! the API server, and match what the CEL rules and the operator mean.

mod common;

use common::schema::*;
use regex::Regex;
use trackvia_operator::connection;
use trackvia_operator::crd::{
    DATE_PATTERN, DURATION_PATTERN, HOST_PATTERN, NAME_PATTERN, PRINTABLE_PATTERN,
    SECRET_KEY_PATTERN,
};

fn pattern(text: &str) -> Regex {
    Regex::new(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn patterns_in_the_schema_are_the_published_constants() {
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["host"]["pattern"], HOST_PATTERN);
    assert_eq!(spec["tokenExpiresOn"]["pattern"], DATE_PATTERN);
    assert_eq!(spec["tokenName"]["pattern"], PRINTABLE_PATTERN);
    assert_eq!(spec["apiUser"]["pattern"], PRINTABLE_PATTERN);
    assert_eq!(spec["expiryWarning"]["pattern"], DURATION_PATTERN);
    assert_eq!(spec["verifyInterval"]["pattern"], DURATION_PATTERN);
    assert_eq!(
        spec["credentialsSecretRef"]["properties"]["name"]["pattern"],
        NAME_PATTERN
    );
    assert_eq!(
        spec["credentialsSecretRef"]["properties"]["apiKeyKey"]["pattern"],
        SECRET_KEY_PATTERN
    );
    assert_eq!(
        spec["target"]["properties"]["keys"]["properties"]["baseUrl"]["pattern"],
        SECRET_KEY_PATTERN
    );
    // The host rule checks the same expression as the pattern (CEL doubles the backslash).
    let rules = rules_in(&schema);
    let host_rule = rules
        .iter()
        .find(|(_, r)| r.message == HOST_DNS)
        .map(|(text, _)| text.replace("\\\\", "\\"))
        .expect("the host rule");
    assert!(
        host_rule.contains(&format!("'{HOST_PATTERN}'")),
        "{host_rule}"
    );
    // Every pattern compiles for the API server (RE2 syntax, which the regex crate shares).
    for text in [
        HOST_PATTERN,
        DATE_PATTERN,
        DURATION_PATTERN,
        NAME_PATTERN,
        SECRET_KEY_PATTERN,
        PRINTABLE_PATTERN,
    ] {
        pattern(text);
    }
}

#[test]
fn printable_pattern_refuses_control_characters_only() {
    let re = pattern(PRINTABLE_PATTERN);
    for good in [
        "",
        "workato-prod",
        "svc-crm@acme.com",
        "Intégration — prod ✓",
        "a b",
    ] {
        assert!(re.is_match(good), "{good:?}");
    }
    for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
        let text = format!("prod{c}x");
        assert!(!re.is_match(&text), "{text:?}");
    }
}

#[test]
fn host_pattern_matches_what_the_rules_mean() {
    let re = pattern(HOST_PATTERN);
    for good in [
        "go.trackvia.com",
        "acme.trackvia.com:8443",
        "localhost:1",
        "a",
        "127.0.0.1:443",
    ] {
        assert!(re.is_match(good), "{good}");
    }
    for bad in [
        "https://acme.trackvia.com",
        "acme.trackvia.com/openapi",
        "user@acme.trackvia.com",
        "ACME.trackvia.com",
        "acme.trackvia.com:",
        "acme.trackvia.com:123456",
        "-acme.trackvia.com",
        "acme..trackvia.com",
        "",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
}

#[test]
fn date_pattern_matches_what_the_rule_means() {
    let re = pattern(DATE_PATTERN);
    for good in ["2027-03-31", "2000-01-01", "2028-02-29", "9999-12-31"] {
        assert!(re.is_match(good), "{good}");
    }
    for bad in [
        "2027-13-01",
        "2027-00-01",
        "2027-01-32",
        "2027/01/01",
        "tomorrow",
        "27-01-01",
        "2027-1-1",
        "2027-01-01T00:00:00Z",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
    // Month lengths are beyond a pattern: the CEL rule and parse_spec catch these.
    assert!(re.is_match("2027-02-30"));
}

#[test]
fn duration_pattern_matches_what_the_rules_mean() {
    let re = pattern(DURATION_PATTERN);
    for good in ["0", "1m", "1h", "336h", "1h30m", "1.5h", "90s", "500ms"] {
        assert!(re.is_match(good), "{good}");
        assert!(connection::parse_duration(good).is_ok(), "{good}");
    }
    for bad in ["-1h", "1d", "60", "", "1 h", "1h-5m", "+1h", "1.h", ".5h"] {
        assert!(!re.is_match(bad), "{bad}");
    }
    // The pattern allows sub-minute intervals; the verifyInterval rule refuses them.
    assert!(re.is_match("30s"));
}
