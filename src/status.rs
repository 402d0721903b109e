//! The paths the controller and the command line have always used for the
//! connection's status decisions. The decisions live in [`crate::connection`];
//! this module re-exports them, and keeps text errors and text condition
//! statuses where its callers still expect them.

use jiff::Timestamp;

use crate::connection::conditions::Setter;
use crate::connection::{self, ConditionStatus};
pub use crate::connection::{
    Input, Observation, ParsedSpec, SecretOutcome, Settings, Transition, Verification, changed,
    desired_status, finish, fmt_time, next_wakeup, rejection_reason, retry_delay, should_publish,
    transitions, verification_due,
};
use crate::crd::{Condition, TrackViaConnectionSpec};
pub use crate::names::valid_host_port;

/// Parse a duration such as `336h`, `1h30m`, `90s` or `0`
/// (see [`connection::parse_duration`]).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    connection::parse_duration(text).map_err(|e| e.to_string())
}

/// The instant a token dated `date` (YYYY-MM-DD) stops working
/// (see [`connection::token_expiry_instant`]).
pub fn token_expiry_instant(date: &str) -> Result<Timestamp, String> {
    connection::token_expiry_instant(date).map_err(|e| e.to_string())
}

/// Parse and check what the schema cannot (see [`connection::parse_spec`]).
pub fn parse_spec(spec: &TrackViaConnectionSpec) -> Result<ParsedSpec, String> {
    connection::parse_spec(spec).map_err(|e| e.to_string())
}

/// Set a condition whose status is `"True"`, `"False"` or `"Unknown"`
/// (see [`connection::set_condition`]).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = ConditionStatus::of_text(status);
    Setter { generation, now }.on(conditions, type_, status, reason, message);
}
