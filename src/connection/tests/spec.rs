//! The spec parsed once: dates, durations, the host, keys, labels and annotations.

use super::*;

#[test]
fn token_expires_at_is_midnight_utc_of_the_date() {
    assert_eq!(token_expiry_instant(EXPIRES_ON).unwrap(), expiry());
    assert_eq!(
        token_expiry_instant("2028-02-29").unwrap(),
        ts("2028-02-29T00:00:00Z")
    );
    assert_eq!(
        token_expiry_instant("2000-01-01").unwrap(),
        ts("2000-01-01T00:00:00Z")
    );

    let p = parsed();
    assert_eq!(p.token_expires_at, Some(expiry()));
    assert_eq!(p.host, "acme.trackvia.com");
    assert_eq!(p.verify_interval, Some(Duration::from_secs(3600)));

    let s = step(&p, None, unchecked(), t0());
    assert_eq!(s.token_expires_at.as_deref(), Some("2027-03-31T00:00:00Z"));
    assert_eq!(s.expiry_warning_at.as_deref(), Some("2027-03-17T00:00:00Z"));
}

#[test]
fn expiry_warning_at_is_expiry_minus_expiry_warning() {
    assert_eq!(parsed().expiry_warning_at, Some(warning()));
    let custom = parsed_with(json!({ "expiryWarning": "1h30m" }));
    assert_eq!(custom.expiry_warning_at, Some(ts("2027-03-30T22:30:00Z")));
    let seconds = parsed_with(json!({ "expiryWarning": "90s" }));
    assert_eq!(seconds.expiry_warning_at, Some(ts("2027-03-30T23:58:30Z")));
    let zero = parsed_with(json!({ "expiryWarning": "0" }));
    assert_eq!(zero.expiry_warning_at, zero.token_expires_at);
}

#[test]
fn no_expiry_date_means_no_instants() {
    let p = parsed_with(json!({ "tokenExpiresOn": null }));
    assert_eq!(p.token_expires_at, None);
    assert_eq!(p.expiry_warning_at, None);
    let s = step(&p, None, checked(ok(), t0()), t0());
    assert_eq!(s.token_expires_at, None);
    assert_eq!(s.expiry_warning_at, None);
    assert_eq!(
        state(&s, condition::EXPIRING),
        ("False", reason::NO_EXPIRY_DATE)
    );
    assert_eq!(state(&s, condition::READY), ("True", reason::VERIFIED));
}

#[test]
fn malformed_or_impossible_dates_are_rejected() {
    for bad in [
        "2027-02-30",
        "2027-02-29",
        "2027-04-31",
        "2027-13-01",
        "2027-00-10",
        "2027-01-00",
        "2027/01/01",
        "2027-1-1",
        "27-01-01",
        "tomorrow",
        "",
        " 2027-01-01",
        "2027-01-01 ",
        "2027-01-01T00:00:00Z",
        "+002027-01-01",
        "20270101",
    ] {
        assert!(token_expiry_instant(bad).is_err(), "{bad:?} was accepted");
        let err = parse_spec(&spec_with(json!({ "tokenExpiresOn": bad })))
            .expect_err(bad)
            .to_string();
        assert!(err.contains("tokenExpiresOn"), "{bad:?}: {err}");
    }
    // The very last days of the calendar cannot be represented; no panic either way.
    let _ = token_expiry_instant("9999-12-31");
}

#[test]
fn parse_spec_normalises_and_checks_the_host() {
    let p = parsed_with(json!({ "host": " ACME.TrackVia.com:8443 " }));
    assert_eq!(p.host, "acme.trackvia.com:8443");
    assert_eq!(
        parsed_with(json!({ "host": "localhost:1" })).host,
        "localhost:1"
    );
    assert_eq!(
        parse_spec(&spec_with(json!({ "host": null })))
            .unwrap()
            .host,
        "go.trackvia.com"
    );
    for bad in [
        "https://acme.trackvia.com",
        "acme.trackvia.com/openapi",
        "user@acme.trackvia.com",
        "acme.trackvia.com:",
        "acme.trackvia.com:0",
        "acme.trackvia.com:65536",
        "acme.trackvia.com:http",
        "",
        "   ",
    ] {
        assert!(
            parse_spec(&spec_with(json!({ "host": bad }))).is_err(),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn parse_spec_checks_durations() {
    let interval = |text: &str| {
        parse_spec(&spec_with(json!({ "verifyInterval": text }))).map(|p| p.verify_interval)
    };
    assert_eq!(interval("0"), Ok(None));
    assert_eq!(interval("0s"), Ok(None));
    assert_eq!(interval("1m"), Ok(Some(Duration::from_secs(60))));
    assert_eq!(interval("1h30m"), Ok(Some(Duration::from_secs(5400))));
    // Absurdly long intervals are capped at a year.
    assert_eq!(
        interval("100000h"),
        Ok(Some(Duration::from_secs(366 * 24 * 3600)))
    );
    assert!(interval("30s").unwrap_err().to_string().contains("minimum"));
    assert!(interval("59s").is_err());
    assert!(interval("-1h").is_err());
    assert!(interval("often").is_err());

    let warning = |text: &str| {
        parse_spec(&spec_with(json!({ "expiryWarning": text }))).map(|p| p.expiry_warning_at)
    };
    assert!(
        warning("-1h")
            .unwrap_err()
            .to_string()
            .contains("expiryWarning")
    );
    assert!(warning("soon").is_err());
    // A warning reaching before the start of time is refused, not a panic.
    assert!(warning("99999999999h").is_err());
}

#[test]
fn parse_duration_refuses_what_would_overflow() {
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("336h"), Ok(Duration::from_secs(336 * 3600)));
    assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration("999999999999s"),
        Ok(Duration::from_secs(999_999_999_999))
    );
    // Each of these passes the schema's pattern and length (or comes from a
    // cluster without CEL) and used to panic inside the parser.
    for huge in [
        "9999999999999999999999999999999h",
        "99999999999999999999s",
        "1000000000000h",
        "1h-2m",
        "1h+2m",
        "",
        &"1h".repeat(40),
    ] {
        assert!(parse_duration(huge).is_err(), "{huge:?}");
        let spec = spec_with(json!({ "verifyInterval": huge }));
        assert!(parse_spec(&spec).is_err(), "{huge:?}");
        let spec = spec_with(json!({ "expiryWarning": huge }));
        assert!(parse_spec(&spec).is_err(), "{huge:?}");
    }
}

#[test]
fn duplicate_target_keys_are_an_invalid_spec() {
    let spec =
        spec_with(serde_json::json!({"target": {"keys": {"apiKey": "same", "authToken": "same"}}}));
    let err = parse_spec(&spec)
        .expect_err("duplicate keys accepted")
        .to_string();
    assert!(err.contains("target.keys"), "{err}");
}

#[test]
fn target_labels_may_not_claim_the_managed_by_label() {
    let spec = spec_with(
        serde_json::json!({"target": {"labels": {"app.kubernetes.io/managed-by": "me"}}}),
    );
    assert!(
        parse_spec(&spec)
            .expect_err("accepted")
            .to_string()
            .contains("managed-by")
    );
}

#[test]
fn hosts_must_be_plain_dns_names_with_a_valid_port() {
    for good in [
        "go.trackvia.com",
        "acme.trackvia.com:443",
        "localhost:8443",
        "a-b.c",
    ] {
        assert!(valid_host_port(good), "{good}");
    }
    for bad in [
        "evil.example#.trackvia.com",
        "evil.example?.trackvia.com",
        "evil.example\\.trackvia.com",
        "evil.example:8443#.trackvia.com:443",
        "user@acme.trackvia.com",
        "acme.trackvia.com/openapi",
        "https://acme.trackvia.com",
        "acme..trackvia.com",
        "-acme.trackvia.com",
        "acme.trackvia.com:0",
        "acme.trackvia.com:65536",
        "acme.trackvia.com:",
        "ACME.trackvia.com",
        "[::1]:443",
        "",
    ] {
        assert!(!valid_host_port(bad), "{bad}");
        let spec = spec_with(serde_json::json!({"host": bad}));
        if bad.chars().any(|c| c.is_ascii_uppercase()) {
            continue; // parse_spec lower-cases first
        }
        assert!(parse_spec(&spec).is_err(), "parse_spec accepted {bad}");
    }
}

#[test]
fn invalid_secret_keys_labels_and_annotations_are_an_invalid_spec() {
    for target in [
        serde_json::json!({"keys": {"host": ".."}}),
        serde_json::json!({"keys": {"apiKey": "a b"}}),
        serde_json::json!({"labels": {"bad key!": "x"}}),
        serde_json::json!({"labels": {"team": "not a value"}}),
        serde_json::json!({"annotations": {"/nope": "x"}}),
    ] {
        let spec = spec_with(serde_json::json!({"target": target}));
        assert!(parse_spec(&spec).is_err(), "accepted {target}");
    }
    let ok = spec_with(
        serde_json::json!({"target": {"labels": {"example.com/team": "crm"}, "annotations": {"note": "any text at all"}}}),
    );
    assert!(parse_spec(&ok).is_ok());
}
