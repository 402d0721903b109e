//! The fake TrackVia server behaves like the API described in TRACKVIA_API.md: these tests
//! pin the protocol rules and every configurable behaviour, through a real HTTPS client.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use reqwest::{Certificate, Client, Response, StatusCode, redirect};
use trackvia_testsupport::fake::{Behavior, FakeOptions, FakeTrackVia, TokenSource};

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

async fn get_views(fake: &FakeTrackVia, token: &str) -> Response {
    client_for(fake)
        .get(views_url(fake, KEY))
        .bearer_auth(token)
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

#[tokio::test]
async fn valid_views_with_bearer_token() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("application/json"));
    let body = json_body(response).await;
    assert_eq!(
        body,
        serde_json::json!([{"id": 52, "name": "Default TEST TABLE View",
                            "applicationName": "TEST APP", "default": true}])
    );
    let recorded = fake.last_request().unwrap();
    assert_eq!(recorded.token_source, Some(TokenSource::BearerHeader));
    assert_eq!(recorded.status, Some(200));
}

#[tokio::test]
async fn valid_apps_with_access_token_query_parameter() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let url = format!(
        "{}/openapi/apps?user_key={KEY}&access_token={TOKEN}",
        fake.base_url()
    );
    let response = client_for(&fake).get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await,
        serde_json::json!([{"id": 1, "name": "CRM"}])
    );
    let recorded = fake.last_request().unwrap();
    assert_eq!(recorded.token.as_deref(), Some(TOKEN));
    assert_eq!(recorded.token_source, Some(TokenSource::QueryParameter));
}

#[tokio::test]
async fn bearer_header_wins_over_query_parameter() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    fake.set(KEY, "other-token", Behavior::Expired);
    let url = format!("{}&access_token=other-token", views_url(&fake, KEY));
    let response = client_for(&fake)
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn accept_header_is_not_required() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let response = client_for(&fake)
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("application/json"));
}

#[tokio::test]
async fn valid_empty_answers_an_empty_array() {
    let fake = fake_with(TOKEN, Behavior::ValidEmpty).await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await, serde_json::json!([]));
}

#[tokio::test]
async fn token_errors_use_the_oauth_shape_and_never_echo_credentials() {
    let cases = [
        (Behavior::Expired, "Access token expired"),
        (Behavior::Revoked, "Invalid access token"),
        (Behavior::Deactivated, "Invalid access token"),
        (Behavior::UnknownToken, "Invalid access token"),
    ];
    for (behavior, prefix) in cases {
        let fake = fake_with(TOKEN, behavior.clone()).await;
        let response = get_views(&fake, TOKEN).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{behavior:?}");
        assert!(content_type(&response).starts_with("application/json"));
        let text = response.text().await.unwrap();
        assert!(!text.contains(TOKEN) && !text.contains(KEY), "{text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], "invalid_token", "{behavior:?}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(prefix),
            "{behavior:?}: {description}"
        );
    }
}

#[tokio::test]
async fn inactive_user_and_forbidden_use_the_trackvia_shape() {
    let cases = [
        (Behavior::InactiveUser, StatusCode::UNAUTHORIZED, "401"),
        (Behavior::Forbidden, StatusCode::FORBIDDEN, "403"),
    ];
    for (behavior, status, code) in cases {
        let fake = fake_with(TOKEN, behavior.clone()).await;
        let response = get_views(&fake, TOKEN).await;
        assert_eq!(response.status(), status, "{behavior:?}");
        let body = json_body(response).await;
        assert_eq!(body["code"], code, "code is a string: {body}");
        assert_eq!(body["name"], "accessDenied");
        assert_eq!(body["errors"], serde_json::json!([]));
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn rate_limited_with_and_without_retry_after() {
    let fake = fake_with(
        TOKEN,
        Behavior::RateLimited {
            retry_after: Some(17),
        },
    )
    .await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "17");

    fake.set(KEY, TOKEN, Behavior::RateLimited { retry_after: None });
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn server_error_is_500() {
    let fake = fake_with(TOKEN, Behavior::ServerError).await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_body(response).await["code"], "500");
}

#[tokio::test]
async fn status_answers_anything() {
    let fake = fake_with(
        TOKEN,
        Behavior::Status {
            code: 410,
            body: "<html>gone</html>".to_string(),
            content_type: Some("text/html".to_string()),
        },
    )
    .await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(content_type(&response), "text/html");
    assert_eq!(response.text().await.unwrap(), "<html>gone</html>");

    fake.set(
        KEY,
        TOKEN,
        Behavior::Status {
            code: 404,
            body: String::new(),
            content_type: None,
        },
    );
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get("content-type").is_none());
}

#[tokio::test]
async fn slow_answers_after_the_delay_or_trips_a_client_timeout() {
    let fake = fake_with(TOKEN, Behavior::Slow(Duration::from_millis(300))).await;
    let started = std::time::Instant::now();
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    fake.set(KEY, TOKEN, Behavior::Slow(Duration::from_secs(5)));
    let impatient = client_builder(&fake)
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let error = impatient
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn close_connection_is_a_connection_error_and_is_recorded() {
    let fake = fake_with(TOKEN, Behavior::CloseConnection).await;
    let error = client_for(&fake)
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, None);
    assert_eq!(fake.calls_for(KEY, TOKEN), 1);
}

#[tokio::test]
async fn redirect_is_answered_as_configured() {
    let fake = fake_with(
        TOKEN,
        Behavior::Redirect {
            location: "https://evil.example/openapi/views".to_string(),
            status: 302,
        },
    )
    .await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://evil.example/openapi/views"
    );

    fake.set(
        KEY,
        TOKEN,
        Behavior::Redirect {
            location: "/openapi/apps".to_string(),
            status: 308,
        },
    );
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
}

#[tokio::test]
async fn huge_body_is_chunked_and_exactly_sized() {
    let size = 5 * 1024 * 1024 + 3;
    let fake = fake_with(TOKEN, Behavior::HugeBody { bytes: size }).await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), size);
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed, serde_json::json!([]));
}

#[tokio::test]
async fn many_views_stream_as_one_json_array_of_about_five_megabytes() {
    let fake = fake_with(TOKEN, Behavior::ManyViews { count: 50_000 }).await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let body = response.bytes().await.unwrap();
    assert!(
        (5_000_000..6_000_000).contains(&body.len()),
        "{} bytes",
        body.len()
    );
    let views: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(views.len(), 50_000);
    assert_eq!(views[49_999]["id"], 49_999);
    let empty = fake_with(TOKEN, Behavior::ManyViews { count: 0 }).await;
    let body = get_views(&empty, TOKEN).await.bytes().await.unwrap();
    assert_eq!(&body[..], b"[]");
}

#[tokio::test]
async fn a_not_json_body_is_exactly_sized_html() {
    let fake = fake_with(TOKEN, Behavior::NotJsonBody { bytes: 1_000_003 }).await;
    let body = get_views(&fake, TOKEN).await.bytes().await.unwrap();
    assert_eq!(body.len(), 1_000_003);
    assert!(body.starts_with(b"<html>"));
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
}

#[tokio::test]
async fn the_gateway_refuses_a_bad_key_with_a_plain_text_403() {
    let fake = fake_with(TOKEN, Behavior::KeyNotAccepted).await;
    let response = get_views(&fake, TOKEN).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(content_type(&response).starts_with("text/plain"));
    assert_eq!(response.text().await.unwrap(), "Authentication failed");
}

#[tokio::test]
async fn unknown_or_missing_user_key_is_a_plain_text_401() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let client = client_for(&fake);
    for url in [
        views_url(&fake, "not-a-known-key"),
        format!("{}/openapi/views", fake.base_url()),
        format!("{}/openapi/views?user_key=", fake.base_url()),
    ] {
        let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{url}");
        assert!(content_type(&response).starts_with("text/plain"), "{url}");
        let text = response.text().await.unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
        assert!(!text.contains(TOKEN) && !text.contains("not-a-known-key"));
    }
}

#[tokio::test]
async fn known_key_without_configured_token_is_invalid_token() {
    let fake = FakeTrackVia::start().await;
    fake.add_api_key(KEY);
    let response = get_views(&fake, "never-issued").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = json_body(response).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Invalid access token")
    );

    // The token of another key does not carry over.
    fake.set("another-key", "its-token", Behavior::Valid);
    let response = get_views(&fake, "its-token").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_token_is_401() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let response = client_for(&fake)
        .get(views_url(&fake, KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(response).await["error"], "unauthorized");
}

#[tokio::test]
async fn account_id_header_selects_the_account() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    fake.set_for_account(KEY, TOKEN, 42, Behavior::Expired);
    fake.set_for_account(KEY, "sandbox-token", 7, Behavior::ValidEmpty);
    let client = client_for(&fake);
    let get = |token: &'static str, account: Option<&'static str>| {
        let mut request = client.get(views_url(&fake, KEY)).bearer_auth(token);
        if let Some(account) = account {
            request = request.header("account-id", account);
        }
        request.send()
    };

    assert_eq!(get(TOKEN, None).await.unwrap().status(), StatusCode::OK);
    let expired = get(TOKEN, Some("42")).await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let description = json_body(expired).await["error_description"].clone();
    assert!(
        description
            .as_str()
            .unwrap()
            .starts_with("Access token expired")
    );

    // Sandbox and production credentials are separate.
    assert_eq!(
        get(TOKEN, Some("7")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get("sandbox-token", None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let sandbox = get("sandbox-token", Some("7")).await.unwrap();
    assert_eq!(sandbox.status(), StatusCode::OK);
    assert_eq!(json_body(sandbox).await, serde_json::json!([]));

    assert_eq!(
        get(TOKEN, Some("not-a-number")).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    let accounts: Vec<Option<u64>> = fake.requests().iter().map(|r| r.account_id).collect();
    assert_eq!(
        accounts,
        [None, Some(42), Some(7), None, Some(7), None],
        "recorded accounts"
    );
}

#[tokio::test]
async fn only_get_views_and_apps_are_served() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let client = client_for(&fake);
    let base = fake.base_url();
    let requests = [
        client.get(format!("{base}/openapi/users?user_key={KEY}")),
        client.get(format!("{base}/openapi/views/52?user_key={KEY}")),
        client.get(format!("{base}/openapi/views/?user_key={KEY}")),
        client.get(format!("{base}/?user_key={KEY}")),
        client.post(format!("{base}/openapi/views?user_key={KEY}")),
        client.delete(format!("{base}/openapi/apps?user_key={KEY}")),
    ];
    for request in requests {
        let response = request.bearer_auth(TOKEN).send().await.unwrap();
        let url = response.url().clone();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}");
        let body = json_body(response).await;
        assert_eq!(body["code"], "404", "{url}");
    }
}

#[tokio::test]
async fn requests_are_recorded_in_full() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let before = SystemTime::now();
    let response = client_for(&fake)
        .get(format!(
            "{}&extra=a%20b&extra=second",
            views_url(&fake, KEY)
        ))
        .bearer_auth(TOKEN)
        .header("account-id", "12")
        .header("x-request-marker", "marker-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/openapi/views");
    assert_eq!(
        r.query,
        [
            ("user_key".to_string(), KEY.to_string()),
            ("extra".to_string(), "a b".to_string()),
            ("extra".to_string(), "second".to_string()),
        ]
    );
    assert_eq!(r.query_param("extra"), Some("a b"));
    assert_eq!(
        r.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.header("x-request-marker"), Some("marker-1"));
    assert!(r.headers.iter().any(|(n, _)| n == "host"));
    assert!(r.received_at >= before && r.received_at <= SystemTime::now());
    assert_eq!(r.api_key.as_deref(), Some(KEY));
    assert_eq!(r.token.as_deref(), Some(TOKEN));
    assert_eq!(r.account_id, Some(12));
    assert_eq!(r.status, Some(401));

    fake.clear_requests();
    assert_eq!(fake.total_calls(), 0);
    assert_eq!(fake.calls_for(KEY, TOKEN), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_per_credential_are_exact_under_concurrency() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    fake.set(KEY, "second-token", Behavior::Expired);
    let client = client_for(&fake);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let token = if i % 3 == 0 { "second-token" } else { TOKEN };
        let request = client.get(views_url(&fake, KEY)).bearer_auth(token);
        tasks.spawn(async move { request.send().await.unwrap().status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| s.is_success()).count(), 40);
    assert_eq!(fake.calls_for(KEY, TOKEN), 40);
    assert_eq!(fake.calls_for(KEY, "second-token"), 20);
    assert_eq!(fake.calls_for(KEY, "never-used"), 0);
    assert_eq!(fake.total_calls(), 60);
}

#[tokio::test]
async fn clients_that_do_not_trust_the_ca_fail_the_handshake() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;

    // The platform's roots only.
    let system_roots = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let error = system_roots
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");

    // Another fake's CA.
    let other = FakeTrackVia::start().await;
    let error = client_for(&other)
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");

    assert_eq!(fake.total_calls(), 0, "no request got past TLS");
}

#[tokio::test]
async fn certificate_covers_localhost_the_loopback_ip_and_extra_names_only() {
    let fake = FakeTrackVia::start_with(FakeOptions {
        extra_sans: vec!["trackvia.test".to_string()],
        ..FakeOptions::default()
    })
    .await;
    fake.set(KEY, TOKEN, Behavior::Valid);
    let loopback = SocketAddr::from(([127, 0, 0, 1], fake.port()));
    let client = client_builder(&fake)
        .resolve("trackvia.test", loopback)
        .resolve("not-in-cert.test", loopback)
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1", "trackvia.test"] {
        let url = format!(
            "https://{host}:{}/openapi/views?user_key={KEY}",
            fake.port()
        );
        let response = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    let url = format!(
        "https://not-in-cert.test:{}/openapi/views?user_key={KEY}",
        fake.port()
    );
    let error = client.get(url).bearer_auth(TOKEN).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn fixed_port_and_ca_path_are_honoured() {
    let port = trackvia_testsupport::free_port();
    let dir =
        std::env::temp_dir().join(format!("fake-trackvia-test-{}-{port}", std::process::id()));
    let ca_path = dir.join("nested/ca.pem");
    let fake = FakeTrackVia::start_with(FakeOptions {
        port,
        ca_path: Some(ca_path.clone()),
        ..FakeOptions::default()
    })
    .await;
    assert_eq!(fake.port(), port);
    assert_eq!(fake.host(), format!("localhost:{port}"));
    assert_eq!(fake.base_url(), format!("https://localhost:{port}"));
    assert_eq!(fake.ca_file(), ca_path);
    let on_disk = std::fs::read_to_string(&ca_path).unwrap();
    assert_eq!(on_disk, fake.ca_pem());
    assert!(on_disk.starts_with("-----BEGIN CERTIFICATE-----"));
    fake.shutdown().await;
    assert!(ca_path.exists(), "a given CA path belongs to the caller");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn default_ca_file_lives_as_long_as_the_server() {
    let fake = FakeTrackVia::start().await;
    let ca_file = fake.ca_file();
    assert_eq!(std::fs::read_to_string(&ca_file).unwrap(), fake.ca_pem());
    let clone = fake.clone();
    drop(fake);
    assert!(ca_file.exists(), "a clone still holds the server");
    drop(clone);
    assert!(!ca_file.exists());
}

#[tokio::test]
async fn options_make_unknown_behaviour_configurable() {
    let fake = FakeTrackVia::start_with(FakeOptions {
        default_behavior: Some(Behavior::Revoked),
        unknown_key_behavior: Some(Behavior::Status {
            code: 403,
            body: "Authentication parameters missing".to_string(),
            content_type: Some("text/plain".to_string()),
        }),
        api_version: Some("2".to_string()),
        ..FakeOptions::default()
    })
    .await;
    fake.add_api_key(KEY);
    let client = client_for(&fake);

    let response = get_views(&fake, "whatever").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let description = json_body(response).await["error_description"].clone();
    assert!(
        description
            .as_str()
            .unwrap()
            .starts_with("Invalid access token")
    );

    let response = client
        .get(views_url(&fake, "unknown-key"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = client
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .header("api-version", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GONE);

    fake.set(KEY, TOKEN, Behavior::Valid);
    let response = client
        .get(views_url(&fake, KEY))
        .bearer_auth(TOKEN)
        .header("api-version", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    fake.forget(KEY, TOKEN);
    fake.set_default_behavior(None);
    assert_eq!(
        get_views(&fake, TOKEN).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;
    let client = client_for(&fake);
    let url = views_url(&fake, KEY);
    assert!(client.get(&url).bearer_auth(TOKEN).send().await.is_ok());
    let clone = fake.clone();
    fake.shutdown().await;
    let error = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect() || error.is_request(), "{error:?}");
    assert_eq!(clone.total_calls(), 1);
}
