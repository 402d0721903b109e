//! Generators of specs, stored statuses, answers and clocks for the properties.

use compact_str::CompactString;

use super::*;

pub(super) fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x7ac0_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any instant jiff can represent, biased towards the months around the fixtures.
pub(super) fn any_instant() -> impl Strategy<Value = Timestamp> {
    let near = (-400 * 86_400i64..=400 * 86_400).prop_map(|s| t0() + secs(s));
    let anywhere = (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
        .prop_map(|s| Timestamp::from_second(s).expect("in range"));
    prop_oneof![3 => near, 1 => anywhere, 1 => Just(Timestamp::MIN), 1 => Just(Timestamp::MAX)]
}

pub(super) fn any_time_text() -> impl Strategy<Value = Option<CompactString>> {
    prop_oneof![
        Just(None),
        any_instant().prop_map(|t| Some(fmt_time(t))),
        ".{0,24}".prop_map(|t: String| Some(t.into())),
    ]
}

pub(super) fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        ".{0,120}".prop_map(String::into_bytes),
        "[a-zA-Z :]{0,40}"
            .prop_map(
                |m| format!(r#"{{"error_description":"Access token expired: {m}"}}"#).into_bytes()
            ),
        "[a-zA-Z ]{0,40}".prop_map(|m| format!(r#"{{"message":"{m}","code":"401"}}"#).into_bytes()),
        Just(b"[]".to_vec()),
        Just(br#"[{"id":1}]"#.to_vec()),
        Just(b"{}".to_vec()),
        Just(b"null".to_vec()),
    ]
}

pub(super) fn any_outcome() -> impl Strategy<Value = VerificationOutcome> {
    let answered = (
        any::<u16>(),
        proptest::option::of("[0-9]{0,7}|.{0,10}"),
        any_body(),
    )
        .prop_map(|(code, retry, body)| classify_response(code, retry.as_deref(), &body));
    let common = (
        prop::sample::select(vec![200u16, 401, 403, 429, 500, 502, 503, 504]),
        any_body(),
    )
        .prop_map(|(code, body)| classify_response(code, Some("30"), &body));
    let accepted = Just(classify_response(200, None, br#"[{"id":1}]"#));
    prop_oneof![answered, common, transient_outcome(), accepted]
}

pub(super) fn transient_outcome() -> impl Strategy<Value = VerificationOutcome> {
    let kinds = prop::sample::select(vec![
        TransientKind::Timeout,
        TransientKind::Dns,
        TransientKind::Tls,
        TransientKind::Connection,
    ]);
    let network = kinds.prop_map(|kind| VerificationOutcome::Transient {
        kind,
        http_status: None,
        retry_after: None,
        detail: format!("{} failure", kind.as_str()),
    });
    let server = (500u16..600, proptest::option::of(0u64..100_000), any_body()).prop_map(
        |(code, retry, body)| {
            classify_response(code, retry.map(|r| r.to_string()).as_deref(), &body)
        },
    );
    let limited = proptest::option::of(0u64..200_000)
        .prop_map(|retry| classify_response(429, retry.map(|r| r.to_string()).as_deref(), b""));
    let odd = prop::sample::select(vec![301u16, 302, 400, 404, 410, 418])
        .prop_map(|code| classify_response(code, None, b"nope"));
    let not_trackvia = Just(classify_response(200, None, b"<html>login</html>"));
    prop_oneof![network, server, limited, odd, not_trackvia]
}

pub(super) fn any_condition() -> impl Strategy<Value = Condition> {
    let types = prop::sample::select(vec![
        condition::READY,
        condition::VERIFIED,
        condition::SECRET_SYNCED,
        condition::EXPIRING,
        "Other",
    ]);
    let statuses = prop::sample::select(vec![
        ConditionStatus::True,
        ConditionStatus::False,
        ConditionStatus::Unknown,
    ]);
    let mut reasons = all_reasons();
    reasons.push("SomethingElse");
    let reasons = prop::sample::select(reasons);
    (
        types,
        statuses,
        reasons,
        ".{0,30}",
        any_time_text(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(type_, status, reason, message, time, observed_generation)| Condition {
                type_: type_.into(),
                status,
                reason: reason.into(),
                message: message.into(),
                last_transition_time: time.unwrap_or_default(),
                observed_generation,
            },
        )
}

pub(super) fn any_fingerprint() -> impl Strategy<Value = Option<CompactString>> {
    proptest::option::of(prop::sample::select(vec![
        CompactString::from(FP),
        CompactString::from("fp-other"),
    ]))
}

prop_compose! {
    pub(super) fn any_status()(
        observed_generation in proptest::option::of(any::<i64>()),
        conditions in proptest::collection::vec(any_condition(), 0..7),
        times in proptest::collection::vec(any_time_text(), 5),
        last_http_status in proptest::option::of(any::<u16>()),
        consecutive_failures in prop_oneof![0u32..6, any::<u32>()],
        credentials_fingerprint in any_fingerprint(),
        credentials_version in proptest::option::of("[0-9]{1,3}".prop_map(CompactString::from)),
        verified_fingerprint in any_fingerprint(),
        published_hash in proptest::option::of("h[12]".prop_map(CompactString::from)),
        published_version in proptest::option::of("[0-9]{1,3}/[0-9a-f]{16}".prop_map(CompactString::from)),
        verify_requested_at in proptest::option::of("r[12]".prop_map(CompactString::from)),
    ) -> TrackViaConnectionStatus {
        TrackViaConnectionStatus {
            observed_generation,
            conditions,
            token_expires_at: times[0].clone(),
            expiry_warning_at: times[1].clone(),
            last_verified_time: times[2].clone(),
            last_successful_verification_time: times[3].clone(),
            next_verification_time: times[4].clone(),
            last_http_status,
            consecutive_failures,
            failing_since: None,
            secret_name: Some(SECRET.into()),
            credentials_fingerprint,
            credentials_version,
            verified_fingerprint,
            published_hash,
            published_version,
            verify_requested_at,
            pending_restart_since: None,
        }
    }
}

/// Specs as the schema lets them through, and a few it does not.
pub(super) fn any_spec() -> impl Strategy<Value = Result<ParsedSpec, String>> {
    let date = prop_oneof![
        Just(None),
        (0u32..=9999, 1u32..=12, 1u32..=31)
            .prop_map(|(y, m, d)| Some(format!("{y:04}-{m:02}-{d:02}"))),
        Just(Some(EXPIRES_ON.to_string())),
        ".{0,12}".prop_map(Some),
    ];
    let duration = prop_oneof![
        prop::sample::select(vec![
            "0", "1m", "90s", "1h", "336h", "1h30m", "8784h", "-1h", "soon"
        ])
        .prop_map(str::to_string),
        (0u64..100_000_000).prop_map(|h| format!("{h}h")),
        "[0-9]{1,31}(ms|s|m|h)",
        "-?[0-9]{1,3}(h|m)[-+]?[0-9]{1,3}(s|m)",
    ];
    (date, duration.clone(), duration).prop_map(|(date, warning, interval)| {
        let spec = spec_with(json!({
            "tokenExpiresOn": date,
            "expiryWarning": warning,
            "verifyInterval": interval,
        }));
        parse_spec(&spec).map_err(|e| e.to_string())
    })
}

pub(super) fn any_secret_outcome() -> impl Strategy<Value = SecretOutcome> {
    prop_oneof![
        ("h[123]", proptest::option::of("[0-9]{1,3}/[0-9a-f]{16}")).prop_map(
            |(hash, published)| {
                SecretOutcome::Synced {
                    hash,
                    published: published.map(Into::into),
                }
            }
        ),
        Just(SecretOutcome::NotPublished),
        Just(SecretOutcome::Conflict(
            "Secret crm-trackvia is not managed by trackvia-operator".into()
        )),
        Just(SecretOutcome::Error("patch failed".into())),
    ]
}
