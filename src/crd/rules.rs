//! Schema rules shared by several spec fields: the free-text fields shown to
//! people and the duration fields. Each is a schemars transform, so a field
//! names its rule once (`#[schemars(transform = …)]`) and the rule's text is
//! written once.

use schemars::Schema;
use serde_json::json;

use super::names::{DURATION_PATTERN, PRINTABLE_PATTERN};

/// Free text shown to people (`tokenName`, `apiUser`): at most 256
/// characters and no control characters, which could act on a terminal.
pub fn printable_text(field: &'static str) -> impl FnMut(&mut Schema) {
    move |schema: &mut Schema| {
        schema.insert("maxLength".into(), json!(256));
        schema.insert("pattern".into(), json!(PRINTABLE_PATTERN));
        schema.insert(
            "x-kubernetes-validations".into(),
            json!([{
                "rule": "!self.matches('[\\\\x00-\\\\x1F\\\\x7F-\\\\x9F]')",
                "message": format!("{field} must not contain control characters"),
            }]),
        );
    }
}

/// A duration such as `336h` or `0`; `bound` is the CEL condition the
/// parsed duration must meet and `message` what the API server answers when
/// the value does not.
pub fn duration(bound: &'static str, message: &'static str) -> impl FnMut(&mut Schema) {
    move |schema: &mut Schema| {
        schema.insert("pattern".into(), json!(DURATION_PATTERN));
        schema.insert("maxLength".into(), json!(32));
        schema.insert(
            "x-kubernetes-validations".into(),
            json!([{
                // The same durations as DURATION_PATTERN, written for CEL.
                "rule": format!(
                    "self == '0' || (self.matches('^([0-9]+(\\\\.[0-9]+)?(ms|s|m|h))+$') && {bound})"
                ),
                "message": message,
            }]),
        );
    }
}
