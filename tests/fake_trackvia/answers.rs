//! What the fake TrackVia server answers for each configured behaviour: status, headers and
//! body of every [`Behavior`], through a real HTTPS client.

use std::time::Duration;

use reqwest::StatusCode;
use trackvia_testsupport::fake::{Behavior, TokenSource};

use super::{
    KEY, TOKEN, client_builder, client_for, content_type, fake_with, get_views, json_body,
    views_error,
};

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
    let error = views_error(&impatient, &fake).await;
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn close_connection_is_a_connection_error_and_is_recorded() {
    let fake = fake_with(TOKEN, Behavior::CloseConnection).await;
    let error = views_error(&client_for(&fake), &fake).await;
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
