//! The protocol rules of the fake TrackVia server: where the key, token and account come
//! from, which paths are served, what is recorded and counted, and the options that change
//! the answer to unknown credentials.

use std::time::SystemTime;

use reqwest::StatusCode;
use trackvia_testsupport::fake::{Behavior, FakeOptions, FakeTrackVia};

use super::{
    KEY, TOKEN, assert_token_error, client_for, content_type, fake_with, get_views, json_body,
    views_request, views_url,
};

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
    let response = views_request(&client_for(&fake), &fake, KEY, TOKEN)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("application/json"));
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
    assert_token_error(response, "Invalid access token").await;

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
        let mut request = views_request(&client, &fake, KEY, token);
        if let Some(account) = account {
            request = request.header("account-id", account);
        }
        request.send()
    };

    assert_eq!(get(TOKEN, None).await.unwrap().status(), StatusCode::OK);
    let expired = get(TOKEN, Some("42")).await.unwrap();
    assert_token_error(expired, "Access token expired").await;

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
        let request = views_request(&client, &fake, KEY, token);
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
    assert_token_error(response, "Invalid access token").await;

    let response = views_request(&client, &fake, "unknown-key", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = views_request(&client, &fake, KEY, TOKEN)
        .header("api-version", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GONE);

    fake.set(KEY, TOKEN, Behavior::Valid);
    let response = views_request(&client, &fake, KEY, TOKEN)
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
