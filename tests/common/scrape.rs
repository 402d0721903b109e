//! Scraping the operator's `/metrics` in OpenMetrics form, once or until a condition holds.

use std::time::Duration;

use trackvia_testsupport::metrics::Scrape;

use super::Harness;

pub async fn scrape(h: &Harness) -> Scrape {
    let text = h.metrics().await;
    assert!(
        text.trim_end().ends_with("# EOF"),
        "not OpenMetrics:\n{text}"
    );
    Scrape::parse(&text)
}

/// Scrape until `pred` holds (the per-connection series follow the reflector store,
/// which lags the API server by a moment).
pub async fn scrape_until(h: &Harness, what: &str, pred: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(h).await;
        if pred(&s) {
            return s;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "metrics never showed {what}; last scrape:\n{}",
                h.metrics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
