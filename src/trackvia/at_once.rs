//! [`AnswerAtOnce`]: a [`VerifyCall`] with no network, answering each call at once with what
//! a function of the credentials says. It stands in for TrackVia where the verifier itself is
//! what is measured or tested; [`ask_as_a_connection`] asks it the way a connection
//! checked hourly does.

use std::time::Duration;

use futures::future::BoxFuture;

use jiff::Timestamp;

use super::client::VerifyCall;
use super::{Ask, CallerId, Credentials, Freshness, VerificationOutcome, Verifier, VerifyRequest};

/// A [`VerifyCall`] answering every call at once with `answer(credentials)`.
#[derive(Clone)]
pub struct AnswerAtOnce<F> {
    answer: F,
}

impl<F> AnswerAtOnce<F>
where
    F: Fn(&Credentials) -> VerificationOutcome + Send + Sync + 'static,
{
    /// A stand-in whose answer to `creds` is `answer(creds)`.
    pub fn new(answer: F) -> Self {
        AnswerAtOnce { answer }
    }
}

impl<F> VerifyCall for AnswerAtOnce<F>
where
    F: Fn(&Credentials) -> VerificationOutcome + Send + Sync + 'static,
{
    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn verify<'a>(
        &'a self,
        _host: &'a str,
        _account_id: Option<u64>,
        creds: &'a Credentials,
    ) -> BoxFuture<'a, VerificationOutcome> {
        let outcome = (self.answer)(creds);
        Box::pin(async move { outcome })
    }
}

/// Asks `verifier` about `creds` for `caller` as a connection checked every hour
/// would: host `trackvia.example`, no account id, answers up to an hour old.
pub fn ask_as_a_connection(
    verifier: &Verifier,
    caller: &CallerId,
    creds: &Credentials,
    now: Timestamp,
) -> Ask {
    verifier.ask(&VerifyRequest {
        caller,
        host: "trackvia.example",
        account_id: None,
        creds,
        freshness: Freshness::within(Duration::from_secs(3600)),
        now,
    })
}
