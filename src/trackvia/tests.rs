//! Tests of credentials and of the classifier.

use std::time::Duration;

use super::classify::scrub_outcome;
use super::*;

fn creds() -> Credentials {
    Credentials {
        api_key: "key-123456".into(),
        auth_token: "tok-abcdef".into(),
    }
}

#[test]
fn debug_of_credentials_is_redacted() {
    let text = format!("{:?}", creds());
    assert!(
        !text.contains("key-123456") && !text.contains("tok-abcdef"),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
}

#[test]
fn fingerprint_is_stable_keyed_and_short() {
    let a = creds().fingerprint(b"uid-1");
    assert_eq!(a, creds().fingerprint(b"uid-1"));
    assert_ne!(a, creds().fingerprint(b"uid-2"));
    assert_eq!(a.len(), 16);
    let other = Credentials {
        auth_token: "tok-other".into(),
        ..creds()
    };
    assert_ne!(a, other.fingerprint(b"uid-1"));
}

#[test]
fn classify_200_json_list_is_verified() {
    let body = br#"[{"id":52,"name":"Default TEST TABLE View","applicationName":"TEST APP","default":true}]"#;
    assert_eq!(
        classify_response(200, None, body),
        VerificationOutcome::Verified { http_status: 200 }
    );
    assert_eq!(
        classify_response(200, None, b"[]"),
        VerificationOutcome::Verified { http_status: 200 }
    );
}

#[test]
fn classify_200_not_json_is_not_verified() {
    let out = classify_response(200, None, b"<html>login</html>");
    assert!(
        matches!(
            out,
            VerificationOutcome::Transient {
                kind: TransientKind::UnexpectedResponse,
                ..
            }
        ),
        "{out:?}"
    );
}

#[test]
fn classify_401_shapes() {
    let expired =
        br#"{"error":"invalid_token","error_description":"Access token expired: 2027-01-01"}"#;
    assert!(matches!(
        classify_response(401, None, expired),
        VerificationOutcome::Rejected {
            rejection: Rejection::Expired,
            http_status: 401,
            ..
        }
    ));
    let invalid = br#"{"error":"invalid_token","error_description":"Invalid access token: x"}"#;
    assert!(matches!(
        classify_response(401, None, invalid),
        VerificationOutcome::Rejected {
            rejection: Rejection::Unauthorized,
            ..
        }
    ));
    let trackvia = br#"{"errors":[],"message":"Inactive user","name":"accessDenied","code":"401"}"#;
    match classify_response(401, None, trackvia) {
        VerificationOutcome::Rejected {
            rejection: Rejection::Unauthorized,
            detail,
            ..
        } => assert_eq!(detail, "Inactive user"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify_response(401, None, b"Authentication failed"),
        VerificationOutcome::Rejected {
            rejection: Rejection::Unauthorized,
            ..
        }
    ));
}

#[test]
fn classify_403_429_5xx_and_others() {
    assert!(matches!(
        classify_response(403, None, b"{}"),
        VerificationOutcome::Rejected {
            rejection: Rejection::Forbidden,
            http_status: 403,
            ..
        }
    ));
    match classify_response(429, Some("30"), b"") {
        VerificationOutcome::Transient {
            kind: TransientKind::RateLimited,
            retry_after,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify_response(429, None, b""),
        VerificationOutcome::Transient {
            kind: TransientKind::RateLimited,
            retry_after: None,
            ..
        }
    ));
    assert!(matches!(
        classify_response(503, None, b"oops"),
        VerificationOutcome::Transient {
            kind: TransientKind::ServerError,
            http_status: Some(503),
            ..
        }
    ));
    for code in [301, 302, 404, 410] {
        assert!(matches!(
            classify_response(code, None, b""),
            VerificationOutcome::Transient {
                kind: TransientKind::UnexpectedResponse,
                ..
            }
        ));
    }
}

#[test]
fn body_message_is_short_and_printable() {
    let long = "x".repeat(5000);
    assert!(body_message(long.as_bytes()).chars().count() <= MAX_DETAIL + 1);
    assert_eq!(body_message(b"a\nb\tc\x1b"), "a b c");
}

#[test]
fn a_secret_cut_by_the_message_limit_is_still_scrubbed() {
    let c = creds();
    let body = format!(
        r#"{{"error_description":"{}{}"}}"#,
        "A".repeat(MAX_DETAIL - 5),
        c.auth_token
    );
    let scrubbed = c.scrub(&body).into_bytes();
    let out = scrub_outcome(classify_response(401, None, &scrubbed), &c);
    let text = format!("{out:?}");
    assert!(!text.contains("tok-a"), "{text}");
}

#[test]
fn scrub_removes_secrets_from_details() {
    let body = br#"{"error_description":"Invalid access token: tok-abcdef"}"#;
    let out = scrub_outcome(classify_response(401, None, body), &creds());
    let text = format!("{out:?}");
    assert!(!text.contains("tok-abcdef"), "{text}");
}

#[test]
fn allowed_hosts_patterns() {
    let allow = AllowedHosts::parse("*.trackvia.com, localhost:8443, 127.0.0.1:*").unwrap();
    assert!(allow.allows("go.trackvia.com"));
    assert!(allow.allows("acme.trackvia.com:443"));
    assert!(!allow.allows("trackvia.com"));
    assert!(!allow.allows("eviltrackvia.com"));
    assert!(!allow.allows("acme.trackvia.com:8443"));
    assert!(!allow.allows("trackvia.com.evil.net"));
    assert!(allow.allows("localhost:8443"));
    assert!(!allow.allows("localhost"));
    assert!(allow.allows("127.0.0.1:1234"));
    assert!(!allow.allows("10.0.0.1"));
    assert!(AllowedHosts::parse("").is_err());
    assert!(AllowedHosts::parse("a:b").is_err());
}

#[test]
fn a_403_saying_the_key_failed_authentication_is_a_bad_key() {
    for body in [
        &b"Authentication failed"[..],
        br#"{"errors":[],"message":"Authentication failed","name":"accessDenied","code":"403"}"#,
        b"Authentication parameters missing",
    ] {
        match classify_response(403, None, body) {
            VerificationOutcome::Rejected {
                rejection: Rejection::Unauthorized,
                http_status: 403,
                detail,
            } => assert!(detail.contains("API key"), "{detail}"),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
    assert!(matches!(
        classify_response(
            403,
            None,
            br#"{"errors":[],"message":"Access is denied","code":"403"}"#
        ),
        VerificationOutcome::Rejected {
            rejection: Rejection::Forbidden,
            ..
        }
    ));
}

#[test]
fn messages_inside_errors_are_shown_and_an_expiry_there_is_expired() {
    let body = br#"{"errors":["Access token expired: 2027-01-01"],"message":"Unauthorized","name":"accessDenied","code":"401"}"#;
    match classify_response(401, None, body) {
        VerificationOutcome::Rejected {
            rejection: Rejection::Expired,
            detail,
            ..
        } => assert_eq!(detail, "Unauthorized; Access token expired: 2027-01-01"),
        other => panic!("{other:?}"),
    }
    let body = br#"{"errors":[{"message":"The API user is inactive"}],"message":"","code":"401"}"#;
    assert_eq!(body_message(body), "The API user is inactive");
    let body = br#"{"errors":[{"error_description":"Access token expired"}]}"#;
    assert!(matches!(
        classify_response(401, None, body),
        VerificationOutcome::Rejected {
            rejection: Rejection::Expired,
            ..
        }
    ));
}

#[test]
fn retry_after_in_seconds_or_as_an_http_date() {
    let now: jiff::Timestamp = "2026-12-01T08:00:00Z".parse().unwrap();
    assert_eq!(
        parse_retry_after_at("30", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after_at("Tue, 01 Dec 2026 08:01:30 GMT", now),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        parse_retry_after_at("Tue, 01 Dec 2026 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after_at("99999999", now),
        Some(Duration::from_secs(24 * 3600))
    );
    assert_eq!(parse_retry_after_at("soon", now), None);
    match classify_response_at(429, Some("Tue, 01 Dec 2026 08:00:45 GMT"), b"", now) {
        VerificationOutcome::Transient { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(45)))
        }
        other => panic!("{other:?}"),
    }
}
