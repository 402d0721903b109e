//! Properties over any spec, stored status, answer and clock.

use super::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x7ac0_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any instant jiff can represent, biased towards the months around the fixtures.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let near = (-400 * 86_400i64..=400 * 86_400).prop_map(|s| t0() + secs(s));
    let anywhere = (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
        .prop_map(|s| Timestamp::from_second(s).expect("in range"));
    prop_oneof![3 => near, 1 => anywhere, 1 => Just(Timestamp::MIN), 1 => Just(Timestamp::MAX)]
}

fn any_time_text() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any_instant().prop_map(|t| Some(fmt_time(t))),
        ".{0,24}".prop_map(Some),
    ]
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
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

fn any_outcome() -> impl Strategy<Value = VerificationOutcome> {
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

fn transient_outcome() -> impl Strategy<Value = VerificationOutcome> {
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

fn any_condition() -> impl Strategy<Value = Condition> {
    let types = prop::sample::select(vec![
        condition::READY,
        condition::VERIFIED,
        condition::SECRET_SYNCED,
        condition::EXPIRING,
        "Other",
    ]);
    let statuses = prop::sample::select(vec!["True", "False", "Unknown", "Maybe"]);
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
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                last_transition_time: time.unwrap_or_default(),
                observed_generation,
            },
        )
}

fn any_fingerprint() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop::sample::select(vec![
        FP.to_string(),
        "fp-other".to_string(),
    ]))
}

prop_compose! {
    fn any_status()(
        observed_generation in proptest::option::of(any::<i64>()),
        conditions in proptest::collection::vec(any_condition(), 0..7),
        times in proptest::collection::vec(any_time_text(), 5),
        last_http_status in proptest::option::of(any::<u16>()),
        consecutive_failures in prop_oneof![0u32..6, any::<u32>()],
        credentials_fingerprint in any_fingerprint(),
        verified_fingerprint in any_fingerprint(),
        published_hash in proptest::option::of("h[12]"),
        verify_requested_at in proptest::option::of("r[12]"),
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
            verified_fingerprint,
            published_hash,
            verify_requested_at,
            pending_restart_since: None,
        }
    }
}

/// Specs as the schema lets them through, and a few it does not.
fn any_spec() -> impl Strategy<Value = Result<ParsedSpec, String>> {
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
        parse_spec(&spec)
    })
}

fn any_secret_outcome() -> impl Strategy<Value = SecretOutcome> {
    prop_oneof![
        "h[123]".prop_map(|hash| SecretOutcome::Synced { hash }),
        Just(SecretOutcome::NotPublished),
        Just(SecretOutcome::Conflict(
            "Secret crm-trackvia is not managed by trackvia-operator".into()
        )),
        Just(SecretOutcome::Error("patch failed".into())),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Only a 200 with a JSON list is ever "Verified", and only that can make a new
    /// connection Ready.
    #[test]
    fn only_a_200_with_a_list_verifies(
        code in any::<u16>(),
        retry_after in proptest::option::of(".{0,10}"),
        body in any_body(),
    ) {
        let outcome = classify_response(code, retry_after.as_deref(), &body);
        let is_list = serde_json::from_slice::<Vec<serde_json::Value>>(&body).is_ok();
        let verified = matches!(outcome, VerificationOutcome::Verified { .. });
        prop_assert_eq!(verified, code == 200 && is_list, "{} {:?}", code, outcome);
        prop_assert_eq!(outcome.http_status(), Some(code));

        let s = step(&parsed(), None, checked(outcome, t0()), t0());
        if code != 200 {
            prop_assert_ne!(cond(&s, condition::VERIFIED).status.as_str(), "True");
            prop_assert_ne!(cond(&s, condition::READY).status.as_str(), "True");
            prop_assert_eq!(s.verified_fingerprint, None);
            prop_assert_eq!(s.last_successful_verification_time, None);
        }
    }

    /// However transient failures arrive, Ready True holds for the whole grace window.
    #[test]
    fn transient_failures_within_the_grace_window_keep_ready_true(
        failures in proptest::collection::vec((transient_outcome(), 0i64..300), 1..40),
        jitter in 0.0f64..1.0,
    ) {
        let p = parsed();
        let verified = verified_at(t0());
        let first = t0() + SignedDuration::from_hours(1);
        let mut status = verified.clone();
        let mut offset = 0;
        for (i, (outcome, gap)) in failures.into_iter().enumerate() {
            if i > 0 {
                offset += gap;
            }
            if offset >= 15 * 60 {
                break;
            }
            let now = first + secs(offset);
            let observation = checked(outcome, now);
            status = desired_status(&Input { jitter, ..input(&p, Some(&status), &observation, now) });
            prop_assert_eq!(state(&status, condition::READY), ("True", reason::VERIFIED));
            prop_assert_eq!(ltt(&status, condition::READY), t0());
            prop_assert_eq!(cond(&status, condition::VERIFIED).status.as_str(), "Unknown");
            prop_assert_eq!(status.consecutive_failures, i as u32 + 1);
            prop_assert!(should_publish(Publish::Verified, &status));
            prop_assert!(transitions(Some(&verified), &status).is_empty());
            let next = ts(status.next_verification_time.as_deref().expect("a retry is scheduled"));
            prop_assert!(next > now && next <= now + SignedDuration::from_hours(1), "{} -> {}", now, next);
        }
    }

    /// The computation never panics, whatever the clock and the stored status say,
    /// and recomputing its own output with nothing new is a fixed point.
    #[test]
    fn status_computation_is_total_and_settles(
        spec in any_spec(),
        old in proptest::option::of(any_status()),
        now in any_instant(),
        at in any_instant(),
        // Most answers arrive just before the pass, some at any time.
        age in proptest::option::of(0i64..600),
        outcome in any_outcome(),
        which in 0u8..7,
        idle in 1i64..7200,
        fingerprint in prop::sample::select(vec![FP, "fp-other"]),
        generation in proptest::option::of(-2i64..4),
        jitter in any::<f64>(),
        verify_requested in proptest::option::of("r[123]"),
        secret in any_secret_outcome(),
        publish in prop::sample::select(vec![Publish::Verified, Publish::Always]),
    ) {
        let spec = spec.ok();
        let old = old.as_ref();
        let at = age.and_then(|a| now.checked_sub(secs(a)).ok()).unwrap_or(at);
        // A check happens only when it is due, as in the controller.
        let (due, forced) = spec.as_ref().map_or((false, false), |p| {
            verification_due(p, generation, old, fingerprint, verify_requested.as_deref(), now)
        });
        // A due check whose answer is not in yet (queued, under way, deferred).
        let awaiting = which == 6 && due;
        if awaiting && old.is_none() {
            // The controller writes no status for a new connection until its answer.
            return Ok(());
        }
        // A forced check still waiting is recorded as done only with its answer.
        let verify_requested = match (awaiting && forced, old) {
            (true, Some(o)) => o.verify_requested_at.clone(),
            _ => verify_requested,
        };
        let observation = match which {
            0 => Observation::InvalidSpec("bad".into()),
            1 => Observation::HostNotAllowed("no".into()),
            2 => Observation::CredentialsNotFound("missing".into()),
            3 => Observation::CredentialsUnreadable("forbidden (403)".into()),
            _ => Observation::Credentials {
                fingerprint: fingerprint.to_string(),
                verification: if due && !awaiting { answer(outcome, at) } else { None },
                awaiting,
            },
        };
        let base = Input {
            spec: spec.as_ref(),
            generation,
            old,
            observation: &observation,
            jitter,
            verify_requested: verify_requested.as_deref(),
            secret_name: SECRET,
            now,
            settings: Settings::default(),
        };
        let next = desired_status(&base);
        let _ = should_publish(Publish::Verified, &next);
        let _ = should_publish(Publish::Always, &next);
        let done = finish(next.clone(), &secret, publish, generation, now);
        let _ = next_wakeup(&done, now);
        let _ = transitions(old, &done);
        let _ = changed(old, &done);
        // Verified keeps its generation when nothing was asked; the others are always rewritten.
        for type_ in [condition::READY, condition::SECRET_SYNCED, condition::EXPIRING] {
            prop_assert_eq!(cond(&done, type_).observed_generation, generation, "{}", type_);
        }
        let stale = cond(&next, condition::EXPIRING).reason == reason::EXPIRY_DATE_STALE;
        if !stale && spec.as_ref().is_some_and(|p| p.token_expires_at.is_some_and(|e| now >= e)) {
            prop_assert_eq!(cond(&next, condition::READY).status.as_str(), "False");
            // Only credentials still waiting for a real answer, or whose
            // check is asked for and not answered yet, are retried.
            if !awaiting && !next.condition(condition::VERIFIED).is_some_and(awaits_answer) {
                prop_assert_eq!(next.next_verification_time.as_deref(), None);
            }
        }
        if stale {
            prop_assert!(next.verified_fingerprint.is_some());
            prop_assert_eq!(&next.verified_fingerprint, &next.credentials_fingerprint);
        }

        // Nothing new: the same status again, with and without the Secret step.
        // (An answer still not in is nothing new either.)
        let quiet = match &observation {
            Observation::Credentials { awaiting: true, .. } => observation.clone(),
            Observation::Credentials { fingerprint, .. } => unchecked_fp(fingerprint),
            other => other.clone(),
        };
        let again = desired_status(&Input { old: Some(&next), observation: &quiet, ..base.clone() });
        prop_assert_eq!(&again, &next);
        let again_done = finish(
            desired_status(&Input { old: Some(&done), observation: &quiet, ..base.clone() }),
            &secret,
            publish,
            generation,
            now,
        );
        prop_assert!(!changed(Some(&done), &again_done), "{:#?}\n{:#?}", done, again_done);

        // An idle clock: no check due and no instant the status waits for
        // crossed. A stuck connection (a Secret that cannot be written, a
        // refusal, a missing Secret…) writes nothing in that time.
        let Ok(later) = now.checked_add(secs(idle)) else { return Ok(()) };
        let quiet_fp = match &quiet {
            Observation::Credentials { fingerprint, .. } => Some(fingerprint.as_str()),
            _ => None,
        };
        let due_later = spec.as_ref().zip(quiet_fp).is_some_and(|(p, fp)| {
            verification_due(p, generation, Some(&done), fp, verify_requested.as_deref(), later).0
        });
        if due_later || quiet_until(&done, now).is_some_and(|until| later >= until) {
            return Ok(());
        }
        let idle_pass = finish(
            desired_status(&Input { old: Some(&done), observation: &quiet, now: later, ..base.clone() }),
            &secret,
            publish,
            generation,
            later,
        );
        prop_assert!(!changed(Some(&done), &idle_pass), "{} s later:\n{:#?}\n{:#?}", idle, done, idle_pass);
        prop_assert!(transitions(Some(&done), &idle_pass).is_empty());
    }
}

/// The first instant after `now` at which time alone may change `status`: its
/// next wake-up, or the end of the grace period of an outage.
fn quiet_until(status: &TrackViaConnectionStatus, now: Timestamp) -> Option<Timestamp> {
    let wake = next_wakeup(status, now).map(|d| add(now, d));
    let grace_end = status
        .condition(condition::VERIFIED)
        .filter(|v| v.reason == reason::TRANSIENT_FAILURE || v.reason == reason::RATE_LIMITED)
        .and_then(|v| {
            status
                .failing_since
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .or_else(|| v.last_transition_time.parse().ok())
        })
        .map(|since| add(since, Settings::default().failure_grace));
    [wake, grace_end].into_iter().flatten().min()
}
