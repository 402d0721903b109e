//! The streaming check agrees with a JSON parser, however the body is cut.

use super::*;
use proptest::prelude::*;

#[test]
fn lists_of_views_are_counted() {
    let body = br#" [{"id":52,"name":"Default TEST TABLE View","applicationName":"TEST APP","default":true},
        {"id":-1.5e3,"name":"caf\u00e9 \ud83d\ude00 \"q\"","x":[null,false,[],{}]}] "#;
    assert_eq!(ViewList::check(body), Ok(2));
    assert_eq!(ViewList::check(b"[]"), Ok(0));
    assert_eq!(ViewList::check("[\"é€😀\"]".as_bytes()), Ok(1));
}

#[test]
fn anything_else_is_refused() {
    for body in [
        &b""[..],
        b"{\"views\":[]}",
        b"<html>",
        b"[",
        b"[1,]",
        b"[01]",
        b"[1.]",
        b"[tru]",
        b"[\"a\x01\"]",
        b"[] x",
        b"[\"\\ud800\"]",
        b"[\"\\udc00\"]",
        b"[\"\xc0\xaf\"]",
        b"[\"\xed\xa0\x80\"]",
        b"[{\"a\"}]",
        b"[{1:2}]",
        b"[}",
    ] {
        assert!(
            ViewList::check(body).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(
        ViewList::check(deep.as_bytes()),
        Err(ViewListError::TooDeep)
    );
    // Refused at the first wrong byte, without reading the rest.
    assert_eq!(
        ViewList::check(b"[1,2}xxxxxxxx"),
        Err(ViewListError::Syntax { at: 4 })
    );
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// What serde_json says about a body's syntax: the length of the list, or not a list. The
/// body must be UTF-8; items are skipped unconverted (`IgnoredAny`), so a number too large
/// for an f64, which is valid JSON, counts as the syntax it is.
fn reference(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(text)
        .ok()
        .map(|v| v.len() as u64)
}

proptest! {
    #[test]
    fn agrees_with_serde_json_however_the_body_is_cut(
        items in prop::collection::vec(json_value(), 0..8),
        pretty in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        flip in any::<Option<(prop::sample::Index, u8)>>(),
    ) {
        let mut body = if pretty {
            serde_json::to_vec_pretty(&items)
        } else {
            serde_json::to_vec(&items)
        }
        .unwrap();
        if let Some((at, byte)) = flip {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut list = ViewList::new();
        let mut from = 0;
        let mut fed = Ok(());
        for cut in cuts.into_iter().chain([body.len()]) {
            fed = fed.and_then(|()| list.feed(&body[from..cut]));
            from = cut;
        }
        let ours = fed.and_then(|()| list.finish()).ok();
        prop_assert_eq!(ours, reference(&body));
    }
}
