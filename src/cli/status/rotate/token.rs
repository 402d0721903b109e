//! Reading the new auth token: from the terminal without echo, or the first line
//! of standard input when it is not a terminal (a pipe, a file).

use std::io::{BufRead, IsTerminal, Read};

/// More than any token the operator accepts (8 KiB), so a longer one is refused
/// with the operator's own message rather than cut.
const MAX_INPUT: u64 = 16 * 1024;

/// The token as typed or piped, not yet trimmed.
pub fn read_token() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password("New auth token (not shown): ")
            .map_err(|e| format!("reading the token from the terminal: {e}"));
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(MAX_INPUT)
        .read_line(&mut line)
        .map_err(|e| format!("reading the token from standard input: {e}"))?;
    Ok(line)
}
