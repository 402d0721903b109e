//! `trackvia-operator probe URL`: one HTTP GET, for checks run from the operator's own image
//! (the chart's `helm test`), which has no shell and no curl.

use std::time::Duration;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Only plain `http://` addresses are probed: the operator serves its endpoints without TLS.
    #[error("{0} is not an http:// address")]
    NotHttp(String),
    /// No answer: connection refused, DNS, timeout.
    #[error("no answer from {url}: {reason}")]
    NoAnswer { url: String, reason: String },
    /// An answer other than 2xx.
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
}

/// GETs `url` within `timeout`; Ok when it answers 2xx.
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let parsed = url::Url::parse(url).map_err(|_| ProbeError::NotHttp(url.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(ProbeError::NotHttp(url.to_string()));
    }
    let no_answer = |e: reqwest::Error| ProbeError::NoAnswer {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(no_answer)?;
    let status = client.get(parsed).send().await.map_err(no_answer)?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        })
    }
}
