//! JSON and YAML text of what the `status` command shows, safe for a terminal.

use serde::Serialize;
use serde_json::Value;

use super::{Error, safe};

/// JSON text of a value, pretty-printed, with a final newline.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|s| {
            let mut s = safe::json_for_terminal(&s);
            s.push('\n');
            s
        })
        .map_err(Error::Json)
}

/// YAML text of a value with the same field names as the JSON. A string holding
/// a control character or a bidirectional override shows it escaped (`\n`,
/// `\u{1b}`), as the table does; the JSON keeps the exact text.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, Error> {
    let mut tree = serde_json::to_value(value).map_err(Error::YamlTree)?;
    escape_strings(&mut tree);
    serde_yaml_ng::to_string(&tree).map_err(Error::Yaml)
}

fn escape_strings(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(escaped) = safe::for_terminal(s) {
                *s = escaped;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(escape_strings),
        Value::Object(map) => map.values_mut().for_each(escape_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_keeps_the_json_names_and_escapes_control_characters() {
        let value = json!({
            "connections": [{"name": "crm", "message": "a\u{1b}[2Jb\nc", "ready": null,
                             "expiresInSeconds": -5, "user": "x\u{202e}y"}],
        });
        let text = to_yaml(&value).unwrap();
        assert_eq!(
            text,
            "connections:\n- expiresInSeconds: -5\n  message: a\\u{1b}[2Jb\\nc\n  name: crm\n  ready: null\n  user: x\\u{202e}y\n"
        );
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["connections"][0]["name"], "crm");
        assert_eq!(back["connections"][0]["ready"], Value::Null);
    }
}
