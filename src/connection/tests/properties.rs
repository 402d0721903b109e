//! Properties over any spec, stored status, answer and clock.

use compact_str::CompactString;

use super::*;

use super::strategies::*;

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
        verify_requested in proptest::option::of("r[123]".prop_map(CompactString::from)),
        secret in any_secret_outcome(),
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
        let answered = if due && !awaiting { answer(outcome, at) } else { None };
        let observation = observation_of(which, fingerprint, answered, awaiting);
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
        let done = finish(next.clone(), &secret, generation, now);
        let _ = next_wakeup(&done, now);
        let _ = transitions(old, &done);
        let _ = changed(old, &done);
        let run = Run { base: &base, next: &next, done: &done, secret: &secret };
        generations_and_expiry_hold(&run, awaiting)?;
        let quiet = nothing_new_is_a_fixed_point(&run, &observation)?;
        an_idle_clock_writes_nothing(&run, &quiet, idle)?;
    }
}

/// One case of [`status_computation_is_total_and_settles`]: its input, the status
/// decided, and that status after the Secret step.
struct Run<'a> {
    base: &'a Input<'a>,
    next: &'a TrackViaConnectionStatus,
    done: &'a TrackViaConnectionStatus,
    secret: &'a SecretOutcome,
}

/// The observation of case `which`: one of the four without a check, else the
/// credentials with their answer (if any).
fn observation_of(
    which: u8,
    fingerprint: &str,
    verification: Option<Verification>,
    awaiting: bool,
) -> Observation {
    match which {
        0 => Observation::InvalidSpec("bad".into()),
        1 => Observation::HostNotAllowed("no".into()),
        2 => Observation::CredentialsNotFound("missing".into()),
        3 => Observation::CredentialsUnreadable("forbidden (403)".into()),
        _ => Observation::Credentials {
            fingerprint: fingerprint.to_string(),
            verification,
            awaiting,
        },
    }
}

/// Generations are recorded, and a token past its date is never Ready.
fn generations_and_expiry_hold(r: &Run<'_>, awaiting: bool) -> Result<(), TestCaseError> {
    // Verified keeps its generation when nothing was asked; the others are always rewritten.
    for type_ in [
        condition::READY,
        condition::SECRET_SYNCED,
        condition::EXPIRING,
    ] {
        prop_assert_eq!(
            cond(r.done, type_).observed_generation,
            r.base.generation,
            "{}",
            type_
        );
    }
    let stale = cond(r.next, condition::EXPIRING).reason == reason::EXPIRY_DATE_STALE;
    if !stale
        && r.base
            .spec
            .is_some_and(|p| p.token_expires_at.is_some_and(|e| r.base.now >= e))
    {
        prop_assert_eq!(cond(r.next, condition::READY).status.as_str(), "False");
        // Only credentials still waiting for a real answer, or whose
        // check is asked for and not answered yet, are retried.
        if !awaiting
            && !r
                .next
                .condition(condition::VERIFIED)
                .is_some_and(awaits_answer)
        {
            prop_assert_eq!(r.next.next_verification_time.as_deref(), None);
        }
        // A check asked for and not answered yet keeps its place.
        if awaiting {
            let before = r.base.old.and_then(|o| o.next_verification_time.as_deref());
            prop_assert_eq!(r.next.next_verification_time.as_deref(), before);
        }
    }
    if stale {
        prop_assert!(r.next.verified_fingerprint.is_some());
        prop_assert_eq!(
            &r.next.verified_fingerprint,
            &r.next.credentials_fingerprint
        );
    }
    Ok(())
}

/// Recomputing with nothing new gives the same status; returns that observation.
fn nothing_new_is_a_fixed_point(
    r: &Run<'_>,
    observation: &Observation,
) -> Result<Observation, TestCaseError> {
    // Nothing new: the same status again, with and without the Secret step.
    // (An answer still not in is nothing new either.)
    let quiet = match observation {
        Observation::Credentials { awaiting: true, .. } => observation.clone(),
        Observation::Credentials { fingerprint, .. } => unchecked_fp(fingerprint),
        other => other.clone(),
    };
    let again = desired_status(&Input {
        old: Some(r.next),
        observation: &quiet,
        ..r.base.clone()
    });
    prop_assert_eq!(&again, r.next);
    let again_done = finish(
        desired_status(&Input {
            old: Some(r.done),
            observation: &quiet,
            ..r.base.clone()
        }),
        r.secret,
        r.base.generation,
        r.base.now,
    );
    prop_assert!(
        !changed(Some(r.done), &again_done),
        "{:#?}\n{:#?}",
        r.done,
        again_done
    );
    Ok(quiet)
}

/// An idle clock: no pass before the next check or wake-up changes anything.
fn an_idle_clock_writes_nothing(
    r: &Run<'_>,
    quiet: &Observation,
    idle: i64,
) -> Result<(), TestCaseError> {
    // An idle clock: no check due and no instant the status waits for
    // crossed. A stuck connection (a Secret that cannot be written, a
    // refusal, a missing Secret…) writes nothing in that time.
    let Ok(later) = r.base.now.checked_add(secs(idle)) else {
        return Ok(());
    };
    let quiet_fp = match quiet {
        Observation::Credentials { fingerprint, .. } => Some(fingerprint.as_str()),
        _ => None,
    };
    let due_later = r.base.spec.zip(quiet_fp).is_some_and(|(p, fp)| {
        verification_due(
            p,
            r.base.generation,
            Some(r.done),
            fp,
            r.base.verify_requested,
            later,
        )
        .0
    });
    if due_later || quiet_until(r.done, r.base.now).is_some_and(|until| later >= until) {
        return Ok(());
    }
    let idle_pass = finish(
        desired_status(&Input {
            old: Some(r.done),
            observation: quiet,
            now: later,
            ..r.base.clone()
        }),
        r.secret,
        r.base.generation,
        later,
    );
    prop_assert!(
        !changed(Some(r.done), &idle_pass),
        "{} s later:\n{:#?}\n{:#?}",
        idle,
        r.done,
        idle_pass
    );
    prop_assert!(transitions(Some(r.done), &idle_pass).is_empty());
    Ok(())
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
