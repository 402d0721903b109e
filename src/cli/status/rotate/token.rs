//! Reading the new auth token: from the terminal without echo, or the first line
//! of standard input when it is not a terminal (a pipe, a file).

use std::io::{BufRead, IsTerminal, Read};

use super::Error;

/// More than any token the operator accepts (8 KiB), so a longer one is refused
/// with the operator's own message rather than cut.
const MAX_INPUT: u64 = 16 * 1024;

/// The token as typed or piped, not yet trimmed.
pub fn read_token() -> Result<String, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password("New auth token (not shown): ").map_err(Error::Terminal);
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(MAX_INPUT)
        .read_line(&mut line)
        .map_err(Error::Stdin)?;
    Ok(line)
}
