//! The command line's error: what stops a command before or while it runs, with the
//! flag or step it concerns in its text.

use crate::leader::LeaderError;
use crate::supervisor::SignalsError;
use crate::trackvia::ClientError;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value or a start-up step failed; the text names which.
    #[error("{0}")]
    Message(String),
    /// The signal handlers could not be installed.
    #[error(transparent)]
    Signals(#[from] SignalsError),
    /// A Kubernetes client or leader election failed.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The TrackVia client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Message(message)
    }
}
