//! The fake TrackVia server behaves like the API described in TRACKVIA_API.md: these tests
//! pin the protocol rules and every configurable behaviour, through a real HTTPS client.
//! This file holds the shared client helpers; the cases are split by concern:
//! - [`answers`]: what each configured behaviour answers;
//! - [`protocol`]: credentials, paths, recording and counting, options;
//! - [`server`]: certificate, port, CA file and shutdown.

mod answers;
mod protocol;
mod server;

use std::time::Duration;

use reqwest::{Certificate, Client, RequestBuilder, Response, StatusCode, redirect};
use trackvia_testsupport::fake::{Behavior, FakeTrackVia};

const KEY: &str = "3scale-key-0123456789abcdef";
const TOKEN: &str = "tok-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A client that trusts only the fake's CA and never follows redirects.
fn client_for(fake: &FakeTrackVia) -> Client {
    client_builder(fake).build().unwrap()
}

fn client_builder(fake: &FakeTrackVia) -> reqwest::ClientBuilder {
    let ca = Certificate::from_pem(fake.ca_pem().as_bytes()).unwrap();
    Client::builder()
        .tls_certs_only([ca])
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(10))
}

fn views_url(fake: &FakeTrackVia, key: &str) -> String {
    format!("{}/openapi/views?user_key={key}", fake.base_url())
}

/// `GET /openapi/views` of `fake` with `key` and the bearer `token`, through `client`.
fn views_request(client: &Client, fake: &FakeTrackVia, key: &str, token: &str) -> RequestBuilder {
    client.get(views_url(fake, key)).bearer_auth(token)
}

/// The error of `GET /openapi/views` of `fake` (with [`KEY`] and [`TOKEN`]) through `client`;
/// panics if an answer arrives.
async fn views_error(client: &Client, fake: &FakeTrackVia) -> reqwest::Error {
    views_request(client, fake, KEY, TOKEN)
        .send()
        .await
        .unwrap_err()
}

/// Asserts that `response` is a 401 whose OAuth-shaped `error_description` starts with
/// `prefix`.
async fn assert_token_error(response: Response, prefix: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = json_body(response).await;
    let description = body["error_description"]
        .as_str()
        .unwrap_or_else(|| panic!("no error_description in {body}"));
    assert!(description.starts_with(prefix), "{description}");
}

async fn get_views(fake: &FakeTrackVia, token: &str) -> Response {
    views_request(&client_for(fake), fake, KEY, token)
        .send()
        .await
        .unwrap()
}

async fn json_body(response: Response) -> serde_json::Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body {text:?} is not JSON: {e}"))
}

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn fake_with(token: &str, b: Behavior) -> FakeTrackVia {
    let fake = FakeTrackVia::start().await;
    fake.set(KEY, token, b);
    fake
}
