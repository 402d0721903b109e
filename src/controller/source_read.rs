//! When a failure to read a connection's source Secret is reported in its
//! status: at once when the API server refused the read (403 from a missing
//! RBAC rule, or another 4xx but 404, which is "not found"), after a minute for
//! failures it may recover from by itself (5xx, 429, no answer).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a failure the API server may recover from lasts before it is reported.
pub const REPORT_AFTER: Duration = Duration::from_secs(60);

/// How often an unreadable source Secret is read again: fixing RBAC changes
/// nothing the operator watches.
pub const RETRY_EVERY: Duration = Duration::from_secs(60);

/// Is a read failure with this HTTP status (none: no answer), going on for
/// `failing_for`, to be reported as `CredentialsUnreadable`?
pub fn lasting(code: Option<u16>, failing_for: Duration) -> bool {
    match code {
        Some(code) if (400..500).contains(&code) && code != 429 => true,
        _ => failing_for >= REPORT_AFTER,
    }
}

/// Since when each source Secret (namespace, name) has failed to be read.
#[derive(Debug, Default)]
pub struct ReadFailures {
    since: Mutex<HashMap<(String, String), Instant>>,
}

impl ReadFailures {
    /// Record a failure of `key` at `now`; how long reads have been failing.
    pub fn failed(&self, key: &(String, String), now: Instant) -> Duration {
        let mut since = self.since.lock();
        if since.len() >= 50_000 && !since.contains_key(key) {
            since.clear();
        }
        now.saturating_duration_since(*since.entry(key.clone()).or_insert(now))
    }

    /// A read of `key` succeeded (or found nothing).
    pub fn succeeded(&self, key: &(String, String)) {
        self.since.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_reported_at_once_and_outages_after_a_minute() {
        for code in [400, 401, 403, 422] {
            assert!(lasting(Some(code), Duration::ZERO), "{code}");
        }
        for code in [Some(429), Some(500), Some(503), None] {
            assert!(!lasting(code, Duration::from_secs(59)), "{code:?}");
            assert!(lasting(code, REPORT_AFTER), "{code:?}");
        }
    }

    #[test]
    fn failures_count_from_the_first_one_until_a_success() {
        let failures = ReadFailures::default();
        let key = ("ns".to_string(), "src".to_string());
        let t0 = Instant::now();
        assert_eq!(failures.failed(&key, t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(70);
        assert_eq!(failures.failed(&key, later), Duration::from_secs(70));
        failures.succeeded(&key);
        assert_eq!(failures.failed(&key, later), Duration::ZERO);
    }
}
