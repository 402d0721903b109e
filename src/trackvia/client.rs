//! The verification call: `GET https://{host}/openapi/views` with the
//! credentials. A 200 is checked as it streams in (see `views`); any other
//! answer's body is read up to [`MAX_BODY`] for its message.

use std::time::Duration;

use futures::future::BoxFuture;

use super::classify::{classify_transport_error, classify_views, scrub_outcome};
use super::hosts::split_host_port;
use super::views::ViewList;
use super::{Credentials, TransientKind, VerificationOutcome, classify_response_at};

/// The verification call as the verifier makes it: [`TrackViaClient`] in the
/// operator, or anything that answers the same way (a measurement of the
/// verifier's memory answers at once, without a network).
pub trait VerifyCall: Send + Sync + 'static {
    /// The longest one call may take.
    fn timeout(&self) -> Duration;

    /// Ask TrackVia whether `creds` are accepted.
    fn verify<'a>(
        &'a self,
        host: &'a str,
        account_id: Option<u64>,
        creds: &'a Credentials,
    ) -> BoxFuture<'a, VerificationOutcome>;
}

impl VerifyCall for TrackViaClient {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn verify<'a>(
        &'a self,
        host: &'a str,
        account_id: Option<u64>,
        creds: &'a Credentials,
    ) -> BoxFuture<'a, VerificationOutcome> {
        Box::pin(TrackViaClient::verify(self, host, account_id, creds))
    }
}

/// Client for the verification call.
#[derive(Clone)]
pub struct TrackViaClient {
    http: reqwest::Client,
    timeout: Duration,
}

/// A client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA bundle is not PEM.
    #[error("extra CA bundle: {0}")]
    CaBundle(#[source] reqwest::Error),
    /// The extra CA bundle holds nothing.
    #[error("extra CA bundle holds no certificate")]
    EmptyCaBundle,
    /// The HTTP client refused its settings.
    #[error("HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Largest error body read from TrackVia.
pub const MAX_BODY: usize = 64 * 1024;

impl TrackViaClient {
    /// Build a client trusting the system roots plus `extra_ca_pem`; redirects
    /// are never followed (they would carry the key and token elsewhere).
    pub fn new(extra_ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // HTTPS_PROXY / NO_PROXY from the environment are honoured (egress proxies).
            .user_agent(concat!("trackvia-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(ClientError::CaBundle)?;
            if certs.is_empty() {
                return Err(ClientError::EmptyCaBundle);
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(ClientError::Build)?;
        Ok(TrackViaClient { http, timeout })
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET https://{host}/openapi/views` with the credentials, classified.
    pub async fn verify(
        &self,
        host: &str,
        account_id: Option<u64>,
        creds: &Credentials,
    ) -> VerificationOutcome {
        let url = match url::Url::parse_with_params(
            &format!("https://{host}/openapi/views"),
            [("user_key", creds.api_key.as_str())],
        ) {
            Ok(u) => u,
            Err(_) => {
                return VerificationOutcome::Transient {
                    kind: TransientKind::Connection,
                    http_status: None,
                    retry_after: None,
                    detail: format!("cannot build a URL for host {host:?}"),
                };
            }
        };
        // The credentials go only to the host and port the allow list approved.
        let expected = split_host_port(host);
        let actual = url
            .host_str()
            .map(|h| h.to_ascii_lowercase())
            .zip(url.port_or_known_default());
        if expected.is_none() || expected != actual {
            return VerificationOutcome::Transient {
                kind: TransientKind::Connection,
                http_status: None,
                retry_after: None,
                detail: format!("host {host:?} is not a plain host[:port]; no request was made"),
            };
        }
        let mut request = self.http.get(url).bearer_auth(&creds.auth_token);
        if let Some(id) = account_id {
            request = request.header("account-id", id.to_string());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return scrub_outcome(classify_transport_error(&e), creds),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status == 200 {
            return match check_views(response).await {
                Ok(is_list) => classify_views(is_list),
                Err(e) => scrub_outcome(classify_transport_error(&e), creds),
            };
        }
        let body = match read_capped(response).await {
            Ok(b) => b,
            Err(e) => return scrub_outcome(classify_transport_error(&e), creds),
        };
        // Scrub the whole body first: a secret cut in half by the message's
        // length limit would not be recognised afterwards.
        let body = creds.scrub(&String::from_utf8_lossy(&body)).into_bytes();
        scrub_outcome(
            classify_response_at(
                status,
                retry_after.as_deref(),
                &body,
                jiff::Timestamp::now(),
            ),
            creds,
        )
    }
}

/// Read a 200's body through the streaming check, keeping no part of it.
/// `Ok(false)` as soon as it cannot be a JSON list.
async fn check_views(mut response: reqwest::Response) -> Result<bool, reqwest::Error> {
    let mut list = ViewList::new();
    while let Some(chunk) = response.chunk().await? {
        if list.feed(&chunk).is_err() {
            return Ok(false);
        }
    }
    Ok(list.finish().is_ok())
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}
