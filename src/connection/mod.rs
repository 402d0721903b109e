//! A connection's domain, pure: the spec parsed and checked once (`spec`),
//! conditions with typed statuses and parsed instants (`conditions`), the
//! status decision split by concern (`status` drives `verification`,
//! `readiness` and `expiry`; `publish` fills in `SecretSynced`), the timing
//! of checks and wake-ups (`schedule`) and the events between two statuses
//! (`events`). No IO here; `now` is always an argument.

pub mod conditions;
pub mod events;
mod expiry;
pub mod publish;
mod readiness;
pub mod schedule;
pub mod spec;
pub mod status;
mod verification;

#[cfg(test)]
mod tests;

pub use conditions::{ConditionExt, ConditionStatus, Instants, fmt_time, set_condition};
pub use events::{Transition, changed, transitions};
pub use publish::{SecretOutcome, finish, should_publish};
pub use schedule::{next_wakeup, retry_delay, verification_due};
pub use spec::{
    DurationError, ParsedSpec, SpecError, parse_duration, parse_spec, token_expiry_instant,
};
pub use status::{Input, Observation, Settings, Verification, desired_status};
pub use verification::rejection_reason;
