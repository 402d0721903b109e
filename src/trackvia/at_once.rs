//! [`AnswerAtOnce`]: a [`VerifyCall`] with no network, answering each call at once with what
//! a function of the credentials says. It stands in for TrackVia where the verifier itself is
//! what is measured or tested.

use std::time::Duration;

use futures::future::BoxFuture;

use super::client::VerifyCall;
use super::{Credentials, VerificationOutcome};

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
