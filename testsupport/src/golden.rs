//! Golden files: output a user sees (rendered chart, metric families) kept under
//! `tests/golden/` and compared byte for byte. `UPDATE_GOLDEN=1` rewrites them instead of
//! comparing; review the change with `git diff tests/golden` before committing it.

use std::path::PathBuf;

use similar::TextDiff;

/// The variable that turns comparison into rewriting.
pub const UPDATE_VAR: &str = "UPDATE_GOLDEN";

/// `tests/golden/<name>` in the repository.
pub fn path(name: &str) -> PathBuf {
    crate::tools::repo_root().join("tests/golden").join(name)
}

/// Compares `actual` with golden file `name`; panics with a unified diff when they differ or
/// the file is missing. With `UPDATE_GOLDEN=1` the file is written instead.
pub fn check(name: &str, actual: &str) {
    let file = path(name);
    if std::env::var_os(UPDATE_VAR).is_some_and(|v| v == "1") {
        std::fs::create_dir_all(file.parent().expect("golden files live in a directory"))
            .expect("creating tests/golden");
        std::fs::write(&file, actual).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; create it with {UPDATE_VAR}=1 and review it",
            file.display()
        )
    });
    if expected != actual {
        let diff = TextDiff::from_lines(expected.as_str(), actual);
        panic!(
            "{} differs from the output (- golden, + now); if the change is meant, rerun with \
             {UPDATE_VAR}=1 and review `git diff tests/golden`:\n{}",
            file.display(),
            diff.unified_diff()
                .context_radius(3)
                .header(&format!("golden/{name}"), "now")
        );
    }
}
