//! The objects a run creates (source and unrelated Secrets, connections, the CRD) and
//! small helpers for bounded batches.

use super::*;

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

pub(crate) fn random_word(prefix: &str, len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let tail: String = (0..len)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
        })
        .collect();
    format!("{prefix}{tail}")
}

pub(crate) fn source_secret(name: &str, key: &str, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("apiKey".to_string(), ByteString(key.as_bytes().to_vec())),
            (
                "authToken".to_string(),
                ByteString(token.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// An unrelated Secret of about 1.5 KiB, like a small TLS or application Secret.
pub(crate) fn unrelated_secret(i: usize) -> Secret {
    let blob = |n: usize| ByteString(random_word("", n).into_bytes());
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("unrelated-{i}")),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                format!("other-app-{}", i % 50),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), blob(1024)),
            ("tls.key".to_string(), blob(256)),
            ("password".to_string(), blob(32)),
        ])),
        ..Secret::default()
    }
}

pub(crate) fn connection_body(
    name: &str,
    source: &str,
    host: &str,
    interval: &str,
) -> serde_json::Value {
    json!({
        "apiVersion": "trackvia.io/v1alpha1",
        "kind": "TrackViaConnection",
        "metadata": {"name": name},
        "spec": {
            "host": host,
            "credentialsSecretRef": {"name": source},
            "tokenExpiresOn": "2099-12-31",
            "verifyInterval": interval,
        },
    })
}

/// Create or replace the CRD (server-side apply of it is refused by Kubernetes 1.20) and wait
/// until the resource is served. Returns when the CRD was created.
pub(crate) async fn install_crd(
    client: &Client,
    timeout: Duration,
) -> BenchResult<jiff::Timestamp> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = TrackViaConnection::crd();
    let name = crd.name_any();
    let deadline = Instant::now() + timeout;
    loop {
        let result = match api.get_opt(&name).await.map_err(|e| e.to_string())? {
            None => api.create(&PostParams::default(), &crd).await.map(|_| ()),
            Some(existing) => {
                let mut replacement = crd.clone();
                replacement.metadata.resource_version = existing.resource_version();
                api.replace(&name, &PostParams::default(), &replacement)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => break,
            Err(kube::Error::Api(e)) if e.code == 409 && Instant::now() < deadline => continue,
            Err(e) => return Err(format!("installing the CRD: {e}")),
        }
    }
    let connections: Api<TrackViaConnection> = Api::all(client.clone());
    loop {
        let current = api.get(&name).await.ok();
        let created = current
            .as_ref()
            .and_then(|c| c.metadata.creation_timestamp.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now);
        let established = current.as_ref().is_some_and(crd_established);
        if established
            && connections
                .list(&ListParams::default().limit(1))
                .await
                .is_ok()
        {
            return Ok(created);
        }
        if Instant::now() >= deadline {
            return Err("the CRD was not served in time".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Longest a batch of the benchmark's own writes may take.
pub(crate) const BATCH_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Run `f` over `0..n` with at most `concurrency` at once; the first error wins.
pub(crate) async fn for_each_bounded<F, Fut>(n: usize, concurrency: usize, f: F) -> BenchResult<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>>,
{
    each_bounded(stream::iter(0..n), n, concurrency, f).await
}

/// Run `f` over the `n` items `items` yields, as they come, with at most `concurrency` at
/// once and within [`BATCH_LIMIT`]; the first error wins.
pub(crate) async fn each_bounded<S, F, Fut>(
    items: S,
    n: usize,
    concurrency: usize,
    f: F,
) -> BenchResult<()>
where
    S: futures::Stream,
    F: Fn(S::Item) -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>>,
{
    let batch = items
        .map(f)
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>();
    match tokio::time::timeout(BATCH_LIMIT, batch).await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(format!(
            "{n} writes did not finish within {} s",
            BATCH_LIMIT.as_secs()
        )),
    }
}

pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(crate) fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub(crate) fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
