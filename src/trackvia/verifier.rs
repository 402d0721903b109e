//! One verification per distinct credential, shared by every connection that
//! uses it, made by a scheduler task under the [`Budget`]. A reconcile asks and
//! returns at once: it never waits for budget or for TrackVia. When the answer
//! it waits for arrives, its connection is woken through [`Verifier::wakeups`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use jiff::Timestamp;
use parking_lot::Mutex;
use tokio::time::Instant;

#[cfg(doc)]
use super::TrackViaClient;
use super::answers::{AnswerCache, CacheLimits};
use super::budget::{Budget, BudgetLimits, CallerId, Next, Queued};
use super::client::VerifyCall;
use super::{Credentials, VerificationOutcome};

/// How long a transient answer (a failure, a 429) is shared: long enough for
/// the connections that retry together, too short to speak for a later moment.
const TRANSIENT_SHARED_FOR: Duration = Duration::from_secs(60);

/// Least time between two forced checks of one connection.
pub const FORCED_GAP: Duration = Duration::from_secs(60);

/// A verification answer remembered for sharing between connections.
#[derive(Clone, Debug)]
pub struct CachedOutcome {
    /// The answer.
    pub outcome: VerificationOutcome,
    /// When it was obtained (the operator's clock).
    pub at: Timestamp,
    /// How long the HTTP exchange took.
    pub took: Duration,
}

/// What decides whether a remembered answer can be reused.
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    /// Definite answers younger than this are reused.
    pub max_age: Duration,
    /// Ignore remembered answers (a forced check).
    pub force: bool,
    /// The connection's last answer: a shared transient answer must be newer.
    pub last_verified: Option<Timestamp>,
    /// Answers given before this will not do: the token's date, once passed
    /// (what TrackVia said before it says nothing of the token after it).
    pub not_before: Option<Timestamp>,
}

impl Freshness {
    /// Definite answers younger than `max_age` will do; nothing forced, no answer before.
    pub fn within(max_age: Duration) -> Freshness {
        Freshness {
            max_age,
            force: false,
            last_verified: None,
            not_before: None,
        }
    }
}

/// A connection's question.
#[derive(Clone, Debug)]
pub struct VerifyRequest<'a> {
    /// Who asks.
    pub caller: &'a CallerId,
    /// `host[:port]`.
    pub host: &'a str,
    /// The `account-id` header.
    pub account_id: Option<u64>,
    /// The credentials.
    pub creds: &'a Credentials,
    /// Which answers will do.
    pub freshness: Freshness,
    /// The operator's clock now.
    pub now: Timestamp,
}

/// The reply to a question.
#[derive(Clone, Debug)]
pub enum Ask {
    /// An answer that will do.
    Answer(CachedOutcome),
    /// A call is queued or under way; the connection is woken when it ends.
    Pending,
    /// A forced check came too soon after the last one: ask again after this.
    Deferred(Duration),
}

struct Job {
    key: String,
    target: String,
    host: String,
    account_id: Option<u64>,
    creds: Credentials,
}

impl Queued for Job {
    fn target(&self) -> &str {
        &self.target
    }
}

/// A question waiting for an answer newer than `since`.
struct Waiting {
    key: String,
    since: Timestamp,
}

struct State {
    budget: Budget<Job>,
    answers: AnswerCache<CachedOutcome>,
    /// Calls queued or under way, with the connections waiting for them.
    flights: HashMap<String, Vec<CallerId>>,
    /// Connections waiting, by uid.
    waiting: HashMap<String, Waiting>,
}

/// A controller's scope (a namespace, or all) and where its wake-ups go.
type Subscriber = (Option<String>, UnboundedSender<(String, String)>);

type Observer = Box<dyn Fn(&CachedOutcome) + Send + Sync>;
type Clock = Box<dyn Fn() -> Timestamp + Send + Sync>;

/// How old an answer obtained `at` is for a question asked `now`. A pass dates
/// its question when it starts, so an answer that arrived while it read the
/// source Secret is younger than the question: as fresh as can be.
fn answer_age(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO)
}

/// The shared verifier.
pub struct Verifier {
    client: Box<dyn VerifyCall>,
    cache_key: [u8; 32],
    state: Mutex<State>,
    wake_scheduler: tokio::sync::Notify,
    started: AtomicBool,
    calls: AtomicU64,
    subscribers: Mutex<Vec<Subscriber>>,
    hooks: std::sync::OnceLock<(Clock, Observer)>,
}

impl Verifier {
    /// A verifier making its calls through `client` (a [`TrackViaClient`]),
    /// `per_minute` calls a minute.
    pub fn new(client: impl VerifyCall, per_minute: u32) -> Self {
        Verifier::with_limits(client, per_minute, CacheLimits::default())
    }

    /// A verifier making its calls through `client`, with the answer cache
    /// bounded by `cache`.
    pub fn with_limits(client: impl VerifyCall, per_minute: u32, cache: CacheLimits) -> Self {
        let mut cache_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut cache_key);
        let limits = BudgetLimits {
            per_minute,
            slack: client.timeout(),
            forced_gap: FORCED_GAP,
            default_pause: Duration::from_secs(60),
        };
        Verifier {
            client: Box::new(client),
            cache_key,
            state: Mutex::new(State {
                budget: Budget::new(limits),
                answers: AnswerCache::new(cache),
                flights: HashMap::new(),
                waiting: HashMap::new(),
            }),
            wake_scheduler: tokio::sync::Notify::new(),
            started: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
            hooks: std::sync::OnceLock::new(),
        }
    }

    /// Start the scheduler task (once): `clock` dates the answers, `observe`
    /// sees each call's answer.
    pub fn start(
        self: &Arc<Self>,
        clock: impl Fn() -> Timestamp + Send + Sync + 'static,
        observe: impl Fn(&CachedOutcome) + Send + Sync + 'static,
    ) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.hooks.set((Box::new(clock), Box::new(observe)));
        tokio::spawn(self.clone().schedule());
    }

    /// The connections (namespace, name) to reconcile because an answer they
    /// wait for arrived; only those of `scope` (a namespace, or all).
    pub fn wakeups(&self, scope: Option<&str>) -> UnboundedReceiver<(String, String)> {
        let (tx, rx) = unbounded();
        self.subscribers
            .lock()
            .push((scope.map(str::to_string), tx));
        rx
    }

    /// Calls made to TrackVia so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Answers held for sharing.
    pub fn remembered(&self) -> usize {
        self.state.lock().answers.len()
    }

    fn now(&self) -> Timestamp {
        self.hooks
            .get()
            .map(|(clock, _)| clock())
            .unwrap_or_else(Timestamp::now)
    }

    /// Ask for an answer; never waits.
    pub fn ask(&self, req: &VerifyRequest<'_>) -> Ask {
        let key = format!(
            "{}|{}|{}",
            req.creds.fingerprint(&self.cache_key),
            req.host.to_ascii_lowercase(),
            req.account_id.unwrap_or(0)
        );
        let instant = Instant::now();
        let uid = &req.caller.uid;
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(w) = state.waiting.get(uid)
            && w.key == key
        {
            if let Some(answer) = state.answers.get(&key, instant)
                && answer.at >= w.since
            {
                let answer = answer.clone();
                state.waiting.remove(uid);
                return Ask::Answer(answer);
            }
            if let Some(waiters) = state.flights.get_mut(&key) {
                if !waiters.contains(req.caller) {
                    waiters.push(req.caller.clone());
                }
                return Ask::Pending;
            }
        }
        let f = req.freshness;
        if f.force {
            if let Err(wait) = state.budget.take_forced(uid, instant) {
                return Ask::Deferred(wait);
            }
        } else if let Some(answer) = state.answers.get(&key, instant) {
            let age = answer_age(req.now, answer.at);
            let in_time = f.not_before.is_none_or(|at| answer.at >= at);
            let reusable = in_time
                && match answer.outcome {
                    VerificationOutcome::Transient { .. } => {
                        age < TRANSIENT_SHARED_FOR.min(f.max_age)
                        // Statuses keep whole seconds: a connection's own answer is not news to it.
                        && f.last_verified
                            .is_none_or(|last| answer.at.as_second() > last.as_second())
                    }
                    _ => age < f.max_age,
                };
            if reusable {
                return Ask::Answer(answer.clone());
            }
        }
        state.waiting.insert(
            uid.clone(),
            Waiting {
                key: key.clone(),
                since: req.now,
            },
        );
        let waiters = state.flights.entry(key.clone()).or_default();
        let new_flight = waiters.is_empty();
        waiters.push(req.caller.clone());
        if new_flight {
            let job = Job {
                target: format!(
                    "{}|{}",
                    req.host.to_ascii_lowercase(),
                    req.account_id.unwrap_or(0)
                ),
                key,
                host: req.host.to_string(),
                account_id: req.account_id,
                creds: req.creds.clone(),
            };
            state.budget.enqueue(&req.caller.namespace, job);
            self.wake_scheduler.notify_one();
        }
        Ask::Pending
    }

    /// Grant calls as the budget allows, each in its own task.
    async fn schedule(self: Arc<Self>) {
        loop {
            let next = self.state.lock().budget.next(Instant::now());
            match next {
                Next::Call(job) => {
                    tokio::spawn(self.clone().call(job));
                }
                Next::WaitUntil(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake_scheduler.notified() => {}
                    }
                }
                Next::Idle => self.wake_scheduler.notified().await,
            }
        }
    }

    async fn call(self: Arc<Self>, job: Job) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = self
            .client
            .verify(&job.host, job.account_id, &job.creds)
            .await;
        let answer = CachedOutcome {
            outcome,
            at: self.now(),
            took: started.elapsed(),
        };
        if let Some((_, observe)) = self.hooks.get() {
            observe(&answer);
        }
        let waiters = {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            if let VerificationOutcome::Transient {
                kind: super::TransientKind::RateLimited,
                retry_after,
                ..
            } = &answer.outcome
            {
                state
                    .budget
                    .pause(&job.target, *retry_after, Instant::now());
            }
            state.answers.put(job.key.clone(), answer, Instant::now());
            // Questions of connections that never came back are dropped with the flight's end.
            let waiters = state.flights.remove(&job.key).unwrap_or_default();
            if state.waiting.len() > 10_000 {
                let flights = &state.flights;
                state.waiting.retain(|_, w| flights.contains_key(&w.key));
            }
            waiters
        };
        self.wake_scheduler.notify_one();
        let subscribers = self.subscribers.lock();
        for caller in waiters {
            for (scope, tx) in subscribers.iter() {
                if scope.as_deref().is_none_or(|s| s == caller.namespace) {
                    let _ = tx.unbounded_send((caller.namespace.clone(), caller.name.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
