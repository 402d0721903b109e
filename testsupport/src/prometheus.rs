//! A real Prometheus server on loopback, for tests that scrape the operator and evaluate the
//! chart's rules: its own configuration, storage and port, stopped when dropped.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{OperatorProcess, free_port};
use crate::tools::tool;

/// How long [`Prometheus::start`] waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A `prometheus` process listening on 127.0.0.1.
pub struct Prometheus {
    process: OperatorProcess,
    base: String,
    http: reqwest::Client,
    // Held for its Drop: the configuration, rule files and storage.
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Writes `config` (prometheus.yml) and `files` (name, content) into a fresh directory,
    /// starts `prometheus` on a free loopback port with its storage there, and waits until
    /// it is ready. Panics with its log when it does not get ready.
    pub async fn start(config: &str, files: &[(&str, String)]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("prometheus-")
            .tempdir()
            .expect("creating a directory for Prometheus");
        let write = |name: &str, content: &str| {
            std::fs::write(dir.path().join(name), content)
                .unwrap_or_else(|e| panic!("writing {name}: {e}"))
        };
        write("prometheus.yml", config);
        for (name, content) in files {
            write(name, content);
        }
        let port = free_port();
        let path = |p: &str| dir.path().join(p).display().to_string();
        let args = vec![
            format!("--config.file={}", path("prometheus.yml")),
            format!("--storage.tsdb.path={}", path("data")),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_string(),
        ];
        let process = OperatorProcess::spawn(&tool("prometheus"), &args, &[]);
        let prometheus = Prometheus {
            process,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            _dir: dir,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/-/ready", self.base);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "Prometheus was not ready within {READY_TIMEOUT:?}; its log:\n{}",
            self.process.logs()
        );
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// GET `/api/v1/{path}` with `params`: the answer's `data`, or the error Prometheus gave.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let mut url =
            url::Url::parse(&format!("{}/api/v1/{path}", self.base)).map_err(|e| e.to_string())?;
        url.query_pairs_mut().extend_pairs(params);
        let answer = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET /api/v1/{path}: {e}"))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("GET /api/v1/{path}: {status}, not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "GET /api/v1/{path} {params:?}: {status} {}: {}",
                body["errorType"], body["error"]
            ));
        }
        Ok(body["data"].clone())
    }

    /// An instant query: its result (a vector's samples, or a scalar as one element).
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                Ok(data["result"].as_array().cloned().unwrap_or_default())
            }
            _ => Ok(vec![data["result"].clone()]),
        }
    }

    /// The active (pending or firing) alerts.
    pub async fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self.api("alerts", &[]).await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// The loaded alerting rules, across groups.
    pub async fn alerting_rules(&self) -> Result<Vec<Value>, String> {
        let data = self.api("rules", &[("type", "alert")]).await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }
}

/// `promtool check rules` of the rule file at `path`: its output. Panics with the output when
/// promtool finds a fault.
pub fn check_rules(path: &Path) -> String {
    crate::tools::run_ok(
        &tool("promtool"),
        &["check".as_ref(), "rules".as_ref(), path.as_os_str()],
    )
}
