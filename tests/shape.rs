//! The code keeps the shape docs/development.md promises: no Rust file over 400 lines and
//! no function over 80, except the tables and the not-yet-split functions that page names
//! (section "Size limits"). A name on that list that no longer needs to be there fails too,
//! so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trackvia_testsupport::tools::repo_root;

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 80;

/// Every `.rs` file under the source folders, relative to the repository.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs: Vec<PathBuf> = ["src", "tests", "testsupport", "examples"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(
                    path.strip_prefix(root)
                        .expect("under the root")
                        .to_path_buf(),
                );
            }
        }
    }
    found.sort();
    found
}

/// The functions of a rustfmt-formatted file longer than the limit, as `path:name` with
/// their length: a function runs from its `fn` line to the `}` at the same indentation.
fn long_functions(path: &Path, text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim_end().ends_with(';') || line.trim_end().ends_with('}') {
            continue;
        }
        let end = lines[i + 1..]
            .iter()
            .position(|l| l.starts_with(indent) && l[indent.len()..].starts_with('}'))
            .map_or(lines.len(), |p| i + 1 + p);
        let length = end - i + 1;
        if length > MAX_FN_LINES {
            long.push((format!("{}:{name}", path.display()), length));
        }
    }
    long
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// The names listed under "Size limits" in docs/development.md: backticked
/// `path` or `path:function` items.
fn allowed() -> BTreeSet<String> {
    let page = std::fs::read_to_string(repo_root().join("docs/development.md"))
        .expect("docs/development.md");
    let start = page
        .find("## Size limits")
        .expect("a \"Size limits\" section");
    let section = &page[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn files_and_functions_stay_small() {
    let root = repo_root();
    let allowed = allowed();
    let mut over = Vec::new();
    let mut seen = BTreeSet::new();
    for path in rust_files(&root) {
        let text = std::fs::read_to_string(root.join(&path)).expect("a readable file");
        let lines = text.lines().count();
        let file = path.display().to_string();
        if lines > MAX_FILE_LINES {
            seen.insert(file.clone());
            if !allowed.contains(&file) {
                over.push(format!("{file}: {lines} lines"));
            }
        }
        for (name, length) in long_functions(&path, &text) {
            seen.insert(name.clone());
            if !allowed.contains(&name) {
                over.push(format!("{name}: {length} lines"));
            }
        }
    }
    assert!(
        over.is_empty(),
        "over {MAX_FILE_LINES} lines a file or {MAX_FN_LINES} a function:\n{}",
        over.join("\n")
    );
    let stale: Vec<_> = allowed.difference(&seen).collect();
    assert!(
        stale.is_empty(),
        "listed in docs/development.md but within the limits now (remove them): {stale:?}"
    );
}

#[test]
fn the_length_of_a_function_is_counted_to_its_closing_brace() {
    let body = |n: usize| "    x();\n".repeat(n);
    let text = format!(
        "pub async fn short() {{\n{}}}\n\nfn long(\n    a: u8,\n) -> u8 {{\n{}}}\n",
        body(10),
        body(80)
    );
    let found = long_functions(Path::new("f.rs"), &text);
    assert_eq!(found, [("f.rs:long".to_string(), 84)]);
    assert_eq!(fn_name("    pub(crate) fn step(&self) {"), Some("step"));
    assert_eq!(fn_name("let f = fn_like;"), None);
}
