//! The verifier's memory under a stream of distinct credentials, measured.
//!
//! 100,000 distinct token values go through the real [`Verifier`] (its budget at the
//! operator's default 60 calls a minute, its scheduler, its answer cache with the default
//! bounds) over about a day and a half of a paused clock. TrackVia is a stand-in that
//! answers at once: 200 for one API key, and the real classification of TrackVia's 401 for
//! the others. The process runs nothing else and reads its own RSS; it must stay within
//! 10 MiB of where it started, at every sample; and once the cache is full, its table
//! must not be reallocated again and again (the counting allocator tells how many blocks
//! of a MiB or more were handed out).
//!
//! This test has its own `main` (`harness = false` in Cargo.toml): a process of its own.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use jiff::Timestamp;
use tokio::time::Instant;
use trackvia_operator::trackvia::{
    AnswerAtOnce, Ask, CacheLimits, CallerId, Credentials, VerificationOutcome, Verifier,
    ask_as_a_connection, classify_response_at,
};
use trackvia_testsupport::alloc::{self, Counting};
use trackvia_testsupport::rss_bytes_of;

/// Distinct token values measured.
const TOKENS: usize = 100_000;
/// Distinct token values before the first measurement.
const WARM_UP: usize = 1_000;
/// RSS samples over the measured tokens.
const SAMPLES: usize = 20;
/// Connections asking at once, each with a new token after each answer.
const CONNECTIONS: usize = 32;
/// The operator's default `--rate-limit`.
const PER_MINUTE: u32 = 60;
/// The API key TrackVia accepts; tokens with any other key are refused.
const KNOWN_KEY: &str = "cache-test-key";
/// Most the RSS may rise.
const MAX_RISE: u64 = 10 * 1024 * 1024;
/// Wall-clock bound of the whole run.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Tokens after which the cache is full.
const FULL_AFTER: usize = 20_000;

type Wakeups = UnboundedReceiver<(String, String)>;

/// Counts what it hands out; this test reads only the blocks of a MiB or more, and only
/// the cache's table is that large.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// TrackVia answering at once: 200 for [`KNOWN_KEY`], TrackVia's 401 for any other key.
fn instant_answer(creds: &Credentials) -> VerificationOutcome {
    if creds.api_key == KNOWN_KEY {
        VerificationOutcome::Verified { http_status: 200 }
    } else {
        classify_response_at(
            401,
            None,
            br#"{"error":"invalid_token","error_description":"Invalid access token: not issued for this key"}"#,
            Timestamp::now(),
        )
    }
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let failures = runtime.block_on(measure());
    if failures.is_empty() {
        eprintln!("answer cache: ok");
        ExitCode::SUCCESS
    } else {
        eprintln!("answer cache: FAILED: {}", failures.join("; "));
        ExitCode::FAILURE
    }
}

fn rss() -> u64 {
    rss_bytes_of(std::process::id())
}

fn kib(bytes: u64) -> u64 {
    bytes / 1024
}

async fn measure() -> Vec<String> {
    let wall = std::time::Instant::now();
    let verifier = Arc::new(Verifier::new(AnswerAtOnce::new(instant_answer), PER_MINUTE));
    // The operator's clock follows the paused one.
    let (origin, epoch) = (Instant::now(), Timestamp::now());
    let clock = move || {
        epoch
            .checked_add(origin.elapsed())
            .expect("a clock within range")
    };
    verifier.start(clock, |_| {});
    let mut wakeups = verifier.wakeups(None);
    let rss_start = rss();
    let mut answered = drive(&verifier, &mut wakeups, clock, 0, WARM_UP).await;
    let rss_warm = rss();
    let mut peak = rss_warm;
    let mut most_remembered = 0;
    let mut samples = Vec::new();
    let mut large_when_full = None;
    let step = TOKENS / SAMPLES;
    for s in 0..SAMPLES {
        let from = WARM_UP + s * step;
        answered += drive(&verifier, &mut wakeups, clock, from, from + step).await;
        let now = rss();
        samples.push(kib(now).to_string());
        peak = peak.max(now);
        most_remembered = most_remembered.max(verifier.remembered());
        if large_when_full.is_none() && from + step >= FULL_AFTER {
            large_when_full = Some(alloc::counts().large_blocks);
        }
        if wall.elapsed() > DEADLINE {
            return vec![format!(
                "stopped after {DEADLINE:?}, at token {}",
                from + step
            )];
        }
    }
    let rss_end = rss();
    let reallocations = alloc::counts().large_blocks - large_when_full.unwrap_or(0);
    eprintln!(
        "{TOKENS} distinct tokens (after {WARM_UP} to warm up) over {:.1} h of the operator's \
         clock in {:.1} s: {} calls, at most {most_remembered} answers remembered; RSS at start \
         {} KiB, after warm-up {} KiB, peak {} KiB, at the end {} KiB (every {} tokens: {} KiB); {reallocations} blocks over 1 MiB allocated once full",
        origin.elapsed().as_secs_f64() / 3600.0,
        wall.elapsed().as_secs_f64(),
        verifier.calls(),
        kib(rss_start),
        kib(rss_warm),
        kib(peak),
        kib(rss_end),
        step,
        samples.join(", "),
    );
    let mut failures = Vec::new();
    if answered != WARM_UP + TOKENS {
        failures.push(format!(
            "{answered} definite answers, not {}",
            WARM_UP + TOKENS
        ));
    }
    if verifier.calls() != (WARM_UP + TOKENS) as u64 {
        failures.push(format!("{} calls to TrackVia", verifier.calls()));
    }
    let cap = CacheLimits::default().max_entries;
    if most_remembered > cap {
        failures.push(format!("{most_remembered} answers remembered, over {cap}"));
    }
    // Evicted answers leave tombstones that may have the table grow once.
    if reallocations > 1 {
        failures.push(format!(
            "{reallocations} blocks over 1 MiB allocated after the cache was full"
        ));
    }
    let rise = peak.max(rss_end).saturating_sub(rss_start);
    if rise >= MAX_RISE {
        failures.push(format!("RSS rose by {} KiB", kib(rise)));
    }
    failures
}

/// The credentials of token number `i`: every fourth one with a key TrackVia refuses, so
/// that refusals (with their message) are remembered as well as acceptances.
fn credentials(i: usize) -> Credentials {
    let api_key = if i % 4 == 3 {
        "cache-test-other-key"
    } else {
        KNOWN_KEY
    };
    Credentials {
        api_key: api_key.into(),
        auth_token: format!("token-{i:08}-{:016x}", rand::random::<u64>()),
    }
}

/// Feed tokens `from..to` through the verifier from [`CONNECTIONS`] connections: each asks
/// with a new token, is woken when the answer arrives, reads it and asks with the next one.
/// Returns the definite answers read (acceptances and refusals).
async fn drive(
    verifier: &Verifier,
    wakeups: &mut Wakeups,
    clock: impl Fn() -> Timestamp,
    from: usize,
    to: usize,
) -> usize {
    let callers: Vec<CallerId> = (0..CONNECTIONS)
        .map(|c| CallerId {
            namespace: format!("ns-{}", c % 4),
            name: format!("conn-{c}"),
            uid: format!("uid-{c}"),
        })
        .collect();
    let ask = |caller: &CallerId, creds: &Credentials| {
        ask_as_a_connection(verifier, caller, creds, clock())
    };
    let mut waiting: Vec<Option<Credentials>> = vec![None; CONNECTIONS];
    let mut next = from;
    let mut answered = 0;
    let mut ask_next = |c: usize, waiting: &mut Vec<Option<Credentials>>| {
        if next < to {
            let creds = credentials(next);
            next += 1;
            match ask(&callers[c], &creds) {
                Ask::Pending => waiting[c] = Some(creds),
                other => panic!("a new token was answered without a call: {other:?}"),
            }
        }
    };
    for c in 0..CONNECTIONS {
        ask_next(c, &mut waiting);
    }
    while waiting.iter().any(Option::is_some) {
        // The clock is paused: this bound passes only when nothing else can happen.
        let (_, name) = tokio::time::timeout(Duration::from_secs(3600), wakeups.next())
            .await
            .expect("an answer within an hour of the operator's clock")
            .expect("the verifier's wake-ups");
        let c: usize = name
            .strip_prefix("conn-")
            .and_then(|n| n.parse().ok())
            .expect("a connection of this test");
        let Some(creds) = waiting[c].take() else {
            continue;
        };
        match ask(&callers[c], &creds) {
            Ask::Answer(a) => match a.outcome {
                VerificationOutcome::Verified { .. } | VerificationOutcome::Rejected { .. } => {
                    answered += 1;
                }
                VerificationOutcome::Transient { .. } => {
                    panic!("a transient answer: {}", a.outcome.label())
                }
            },
            Ask::Pending => {
                waiting[c] = Some(creds);
                continue;
            }
            Ask::Deferred(_) => panic!("no check was forced"),
        }
        ask_next(c, &mut waiting);
    }
    answered
}
