//! The headings and links of a Markdown file, read with a CommonMark parser so that code
//! blocks and code spans are never mistaken for either.

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// GitHub's anchor for a heading's text: lower case, punctuation other than `-` and `_`
/// dropped, spaces turned into `-`.
pub fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of every heading of `text`, as GitHub makes them (a repeated heading gets
/// `-1`, `-2`, ... appended).
pub fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(text) {
        match (event, heading.as_mut()) {
            (Event::Start(Tag::Heading { .. }), _) => heading = Some(String::new()),
            (Event::Text(t) | Event::Code(t), Some(h)) => h.push_str(&t),
            (Event::End(TagEnd::Heading(_)), Some(h)) => {
                let base = github_anchor(h);
                let repeats = out
                    .iter()
                    .filter(|a| {
                        **a == base
                            || a.strip_prefix(&format!("{base}-"))
                                .is_some_and(|n| n.parse::<u32>().is_ok())
                    })
                    .count();
                out.push(if repeats == 0 {
                    base
                } else {
                    format!("{base}-{repeats}")
                });
                heading = None;
            }
            _ => {}
        }
    }
    out
}

/// The destination of every link and image of `text`, in order.
pub fn links(text: &str) -> Vec<String> {
    Parser::new(text)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_github() {
        let text = "# A `b` (c)\n\n```sh\n# not a heading\n```\n\n## A b c\n## What TrackVia's API answers\n";
        assert_eq!(
            anchors(text),
            ["a-b-c", "a-b-c-1", "what-trackvias-api-answers"]
        );
    }

    #[test]
    fn links_skip_code() {
        let text = "[x](a.md#b) `[y](c.md)` ![i](img.png)\n\n```\n[z](d.md)\n```\n";
        assert_eq!(links(text), ["a.md#b", "img.png"]);
    }
}
