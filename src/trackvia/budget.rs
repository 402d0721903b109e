//! The budget of TrackVia calls, as a pure state machine over an injected
//! clock: at most `per_minute` calls in any sliding minute for the whole
//! process, a quarter of them at once and the rest spread over the minute (so
//! a burst from one namespace leaves calls for the others within seconds),
//! granted in turn to the namespaces that wait (one call per
//! namespace per turn, so one busy namespace cannot starve another), a pause
//! of every call to a host and account after a 429, and at most one forced
//! check per connection per `forced_gap`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The connection a call is made for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallerId {
    /// Its namespace (the unit of fairness).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (the unit of the forced-check limit).
    pub uid: String,
}

/// The knobs of the budget.
#[derive(Clone, Copy, Debug)]
pub struct BudgetLimits {
    /// Calls in any sliding minute (at least one).
    pub per_minute: u32,
    /// Each call counts as leaving its slot up to this much later: a call that
    /// takes time to connect still arrives inside the minute it was counted in.
    pub slack: Duration,
    /// Least time between two forced checks of one connection.
    pub forced_gap: Duration,
    /// Pause after a 429 without `Retry-After`.
    pub default_pause: Duration,
}

/// One call waiting for its turn.
pub trait Queued {
    /// The host and account it goes to (`host|account`).
    fn target(&self) -> &str;
}

/// What the scheduler should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<J> {
    /// Make this call now (it is counted).
    Call(J),
    /// Nothing can go before this instant.
    WaitUntil(Instant),
    /// Nothing waits.
    Idle,
}

/// The state of the budget.
#[derive(Debug)]
pub struct Budget<J> {
    limits: BudgetLimits,
    /// Instants the calls of the last minute were granted at.
    window: VecDeque<Instant>,
    /// Calls waiting, per namespace, first come first served within one.
    queues: BTreeMap<String, VecDeque<J>>,
    /// The namespace served last; the next turn goes to the one after it.
    last_served: Option<String>,
    /// Targets paused by a 429, until when.
    paused: HashMap<String, Instant>,
    /// Last forced check per connection uid.
    forced: HashMap<String, Instant>,
    /// Calls that may go at once (a token bucket of `per_minute / 4`)…
    tokens: f64,
    /// …as of this instant.
    refilled: Option<Instant>,
}

impl<J: Queued> Budget<J> {
    /// An empty budget.
    pub fn new(limits: BudgetLimits) -> Self {
        Budget {
            limits: BudgetLimits {
                per_minute: limits.per_minute.max(1),
                ..limits
            },
            window: VecDeque::new(),
            queues: BTreeMap::new(),
            last_served: None,
            paused: HashMap::new(),
            forced: HashMap::new(),
            tokens: Self::burst(limits.per_minute.max(1)),
            refilled: None,
        }
    }

    /// Calls that may go at once.
    fn burst(per_minute: u32) -> f64 {
        f64::from((per_minute / 4).max(1))
    }

    /// Calls a second after the burst: the rest of the minute's budget, spread
    /// so that the burst and a window's worth of refill never exceed it.
    fn refill_rate(&self) -> f64 {
        let per_minute = self.limits.per_minute;
        let window = 60.0 + self.limits.slack.as_secs_f64();
        (f64::from(per_minute) - Self::burst(per_minute)).max(0.5) / window
    }

    /// Queue a call for `namespace`.
    pub fn enqueue(&mut self, namespace: &str, job: J) {
        self.queues
            .entry(namespace.to_string())
            .or_default()
            .push_back(job);
    }

    /// Calls waiting.
    pub fn waiting(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Pause every call to `target` until `until` (a 429 answered it).
    pub fn pause(&mut self, target: &str, retry_after: Option<Duration>, now: Instant) {
        let until = now + retry_after.unwrap_or(self.limits.default_pause);
        let entry = self.paused.entry(target.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// When `target` may be called again, if it is paused.
    pub fn paused_until(&self, target: &str, now: Instant) -> Option<Instant> {
        self.paused.get(target).copied().filter(|t| *t > now)
    }

    /// May connection `uid` have a forced check now? `Err(wait)` when its last
    /// one was less than `forced_gap` ago. `Ok` records this one.
    pub fn take_forced(&mut self, uid: &str, now: Instant) -> Result<(), Duration> {
        let gap = self.limits.forced_gap;
        self.forced
            .retain(|_, at| now.saturating_duration_since(*at) < gap);
        if let Some(at) = self.forced.get(uid) {
            return Err(gap.saturating_sub(now.saturating_duration_since(*at)));
        }
        self.forced.insert(uid.to_string(), now);
        Ok(())
    }

    /// The next call to make, or how long to wait. Namespaces take turns; a
    /// namespace whose calls all go to paused targets is passed over.
    pub fn next(&mut self, now: Instant) -> Next<J> {
        self.paused.retain(|_, until| *until > now);
        let window = Duration::from_secs(60) + self.limits.slack;
        while self
            .window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.window.pop_front();
        }
        self.queues.retain(|_, q| !q.is_empty());
        if self.queues.is_empty() {
            return Next::Idle;
        }
        if self.window.len() >= self.limits.per_minute as usize {
            return match self.window.front() {
                Some(oldest) => Next::WaitUntil(*oldest + window),
                None => Next::Idle,
            };
        }
        let rate = self.refill_rate();
        let elapsed = self
            .refilled
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.tokens = (self.tokens + elapsed * rate).min(Self::burst(self.limits.per_minute));
        self.refilled = Some(now);
        if self.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
            return Next::WaitUntil(now + wait.max(Duration::from_millis(1)));
        }
        // Namespaces after the one served last, then from the start.
        let order: Vec<String> = {
            let after = self.last_served.as_deref().unwrap_or("");
            let (before, rest): (Vec<&String>, Vec<&String>) = self
                .queues
                .keys()
                .partition(|ns| self.last_served.is_some() && ns.as_str() <= after);
            rest.into_iter().chain(before).cloned().collect()
        };
        for ns in order {
            let Some(queue) = self.queues.get_mut(&ns) else {
                continue;
            };
            let paused = &self.paused;
            if let Some(i) = queue.iter().position(|j| !paused.contains_key(j.target()))
                && let Some(job) = queue.remove(i)
            {
                self.window.push_back(now);
                self.tokens -= 1.0;
                self.last_served = Some(ns);
                return Next::Call(job);
            }
        }
        // Everything waiting goes to paused targets.
        match self.paused.values().min() {
            Some(until) => Next::WaitUntil(*until),
            None => Next::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Job(&'static str, u32);

    impl Queued for Job {
        fn target(&self) -> &str {
            self.0
        }
    }

    fn limits(per_minute: u32) -> BudgetLimits {
        BudgetLimits {
            per_minute,
            slack: Duration::ZERO,
            forced_gap: Duration::from_secs(60),
            default_pause: Duration::from_secs(60),
        }
    }

    /// Run the budget until `until`, granting every call at once: (job, when).
    fn drain(budget: &mut Budget<Job>, start: Instant, until: Duration) -> Vec<(u32, Duration)> {
        let mut now = start;
        let mut granted = Vec::new();
        loop {
            match budget.next(now) {
                Next::Call(j) => granted.push((j.1, now - start)),
                Next::WaitUntil(t) if t - start <= until => now = t,
                _ => return granted,
            }
        }
    }

    #[test]
    fn a_busy_namespace_does_not_starve_another() {
        let start = Instant::now();
        let mut budget = Budget::new(limits(60));
        for i in 0..40 {
            budget.enqueue("busy", Job("go|0", i));
        }
        // The burst goes at once; the rest is spread over the minute.
        let burst = drain(&mut budget, start, Duration::ZERO);
        assert_eq!(burst.len(), 15);
        // A call of another namespace, queued behind 25 others, goes within two seconds.
        let now = start + Duration::from_millis(100);
        budget.enqueue("quiet", Job("go|0", 100));
        let next = drain(&mut budget, now, Duration::from_secs(2));
        assert_eq!(next.first().map(|g| g.0), Some(100), "{next:?}");
        // Turns alternate while both wait.
        budget.enqueue("quiet", Job("go|0", 101));
        budget.enqueue("quiet", Job("go|0", 102));
        let order: Vec<u32> = drain(&mut budget, now, Duration::from_secs(10))
            .iter()
            .map(|g| g.0)
            .collect();
        assert_eq!(order[..4], [15, 101, 16, 102], "{order:?}");
    }

    #[test]
    fn never_more_than_the_budget_in_any_minute() {
        for per_minute in [1, 2, 5, 20, 60, 1200] {
            let start = Instant::now();
            let mut budget = Budget::new(BudgetLimits {
                slack: Duration::from_secs(2),
                ..limits(per_minute)
            });
            for i in 0..(per_minute * 3) {
                budget.enqueue("a", Job("go|0", i));
            }
            let granted = drain(&mut budget, start, Duration::from_secs(600));
            assert_eq!(granted.len() as u32, per_minute * 3);
            for (k, (_, at)) in granted.iter().enumerate() {
                let in_window = granted
                    .iter()
                    .filter(|(_, t)| *t >= *at && *t < *at + Duration::from_secs(62))
                    .count();
                assert!(
                    in_window <= per_minute as usize,
                    "{per_minute}/min: {in_window} calls in the minute after call {k}"
                );
            }
        }
    }

    #[test]
    fn a_429_pauses_its_host_and_account_only_and_calls_resume() {
        let now = Instant::now();
        let mut budget = Budget::new(limits(400));
        budget.pause("go|7", Some(Duration::from_secs(30)), now);
        budget.enqueue("a", Job("go|7", 1));
        budget.enqueue("a", Job("go|8", 2));
        budget.enqueue("b", Job("go|7", 3));
        assert_eq!(budget.next(now), Next::Call(Job("go|8", 2)));
        assert_eq!(
            budget.next(now),
            Next::WaitUntil(now + Duration::from_secs(30))
        );
        let later = now + Duration::from_secs(30);
        assert_eq!(budget.paused_until("go|7", later), None);
        let mut rest = vec![budget.next(later), budget.next(later)];
        rest.sort_by_key(|n| format!("{n:?}"));
        assert_eq!(
            rest,
            [Next::Call(Job("go|7", 1)), Next::Call(Job("go|7", 3))]
        );
        // Without Retry-After the default pause applies; a longer pause is kept.
        budget.pause("go|9", None, now);
        budget.pause("go|9", Some(Duration::from_secs(5)), now);
        assert_eq!(
            budget.paused_until("go|9", now),
            Some(now + Duration::from_secs(60))
        );
    }

    #[test]
    fn forced_checks_are_one_a_minute_per_connection() {
        let now = Instant::now();
        let mut budget: Budget<Job> = Budget::new(limits(100));
        assert_eq!(budget.take_forced("uid-1", now), Ok(()));
        assert_eq!(budget.take_forced("uid-2", now), Ok(()));
        assert_eq!(
            budget.take_forced("uid-1", now + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        assert_eq!(
            budget.take_forced("uid-1", now + Duration::from_secs(60)),
            Ok(())
        );
    }
}
