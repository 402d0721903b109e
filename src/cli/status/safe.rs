//! Text from user-written fields (names of tokens and users, messages of
//! conditions and events) made safe for a terminal: control characters and
//! bidirectional overrides are shown escaped, never sent to the terminal.

use std::borrow::Cow;
use std::fmt::Write;

/// Would this character act on the terminal or reorder what is shown?
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character escaped (`\n`, `\t`, `\r`, `\u{1b}`…).
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text with the control characters serde_json leaves as they are (DEL,
/// C1) and bidirectional overrides written as `\uXXXX` escapes. Outside
/// strings, JSON holds none of them but the newlines of pretty-printing.
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c != '\n' && unsafe_char(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_other_text_kept() {
        assert_eq!(for_terminal("crm-prod é ✓"), "crm-prod é ✓");
        assert_eq!(
            for_terminal("a\u{1b}[2J\u{7}b\nc\td\re\u{9b}f\u{7f}"),
            "a\\u{1b}[2J\\u{7}b\\nc\\td\\re\\u{9b}f\\u{7f}"
        );
        assert_eq!(for_terminal("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(
                !for_terminal(&format!("<{c}>")).contains(c),
                "{:x}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn json_stays_valid_and_loses_its_control_characters() {
        let value = serde_json::json!({"m": "a\u{1b}b\u{7f}c\u{9b}d\u{202e}e\n"});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = json_for_terminal(&text);
        assert!(!safe.chars().any(|c| c != '\n' && unsafe_char(c)), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    /// The whole table and detail views, with hostile text in every
    /// user-written field, print no control character but newlines.
    #[test]
    fn rendered_views_carry_no_control_characters_from_user_fields() {
        use super::super::{detail, render_detail, render_table, summarize};
        use crate::crd::TrackViaConnection;
        use k8s_openapi::api::core::v1::Event;

        let hostile = "x\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}\r\n";
        let tvc: TrackViaConnection = serde_json::from_value(serde_json::json!({
            "apiVersion": "trackvia.io/v1alpha1",
            "kind": "TrackViaConnection",
            "metadata": {"name": "crm", "namespace": "apps", "uid": "u-1",
                         "labels": {"team": "crm"}, "annotations": {"note": hostile}},
            "spec": {
                "host": "acme.trackvia.com",
                "credentialsSecretRef": {"name": "api-user"},
                "tokenName": hostile,
                "apiUser": hostile,
                "target": {"labels": {"team": "crm"}, "annotations": {"note": hostile}},
            },
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": hostile, "message": hostile,
                 "lastTransitionTime": "2030-01-01T00:00:00Z"},
            ]},
        }))
        .unwrap();
        let event: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "crm.1", "namespace": "apps"},
            "involvedObject": {"kind": "TrackViaConnection", "name": "crm", "uid": "u-1"},
            "reason": hostile, "message": hostile, "type": hostile,
            "eventTime": "2030-01-01T12:00:00.000000Z",
        }))
        .unwrap();
        let now: jiff::Timestamp = "2030-01-03T00:00:00Z".parse().unwrap();
        let d = detail(&tvc, Some(&[]), Some(&[event]), now);
        let table = render_table(&[summarize(&tvc, Some(&[]), now)], true, now, false);
        for (what, text) in [("detail", render_detail(&d, now, false)), ("table", table)] {
            assert!(
                !text.chars().any(|c| c != '\n' && unsafe_char(c)),
                "{what}: {text:?}"
            );
            assert!(text.contains("\\u{1b}]0;owned"), "{what}: {text}");
        }
        // With colour on, the only escape sequences are the operator's own.
        let coloured = render_detail(&d, now, true);
        let escapes = coloured.matches('\u{1b}').count();
        let own = coloured.matches("\u{1b}[0m").count() * 2;
        assert_eq!(escapes, own, "{coloured:?}");
    }
}
