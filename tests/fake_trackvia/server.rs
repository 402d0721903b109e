//! The fake TrackVia server as a server: its certificate (who trusts it, which names it
//! covers), its port and CA file, and shutting it down.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use trackvia_testsupport::fake::{Behavior, FakeOptions, FakeTrackVia};

use super::{KEY, TOKEN, client_builder, client_for, fake_with, views_error, views_url};

#[tokio::test]
async fn clients_that_do_not_trust_the_ca_fail_the_handshake() {
    let fake = fake_with(TOKEN, Behavior::Valid).await;

    // The platform's roots only.
    let system_roots = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let error = views_error(&system_roots, &fake).await;
    assert!(error.is_connect(), "{error:?}");

    // Another fake's CA.
    let other = FakeTrackVia::start().await;
    let error = views_error(&client_for(&other), &fake).await;
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
