//! Wall-clock helpers for tests that compare times the operator or Prometheus report, or
//! bound how long a step took.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Now, in Unix seconds with millisecond precision.
pub fn now_seconds() -> f64 {
    Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// An RFC 3339 time in Unix seconds; panics on anything else.
pub fn rfc3339_seconds(text: &str) -> f64 {
    let t: Timestamp = text
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 time: {e}"));
    t.as_millisecond() as f64 / 1000.0
}

/// The date `days` from today (UTC), as YYYY-MM-DD.
pub fn days_from_today(days: i64) -> String {
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    today
        .checked_add(jiff::Span::new().days(days))
        .expect("a date")
        .to_string()
}

/// Asserts that less than `limit` has passed since `started`.
pub fn assert_within(started: Instant, limit: Duration) {
    let took = started.elapsed();
    assert!(took < limit, "took {took:?}, more than {limit:?}");
}
