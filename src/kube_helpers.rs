//! Small helpers over the Kubernetes client that every layer may use: the
//! backoff of watches, an API scoped to one namespace or all, and the short
//! text of a client error. A leaf: it depends on no module of this crate.

use std::time::Duration;

use kube::api::Api;
use kube::{Client, Resource};

/// An API of one namespace, or of all (`None`).
pub fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A Kubernetes error as text: the API's status message and code, never a
/// request body.
pub fn short_kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Backoff of a watch after an error: from 250 ms doubling to at most 4 s, so
/// watches resume within seconds of the API server coming back.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff {
            next: Duration::from_millis(250),
            first: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    }
}

impl WatchBackoff {
    /// The same delay after every error.
    pub fn constant(delay: Duration) -> Self {
        WatchBackoff {
            next: delay,
            first: delay,
            max: delay,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (current * 2).min(self.max);
        Some(current)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// An error answer of the API server with `code` and `message`, for tests.
#[cfg(test)]
pub(crate) fn api_error(code: u16, message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure(message, "Reason")
            .with_code(code)
            .boxed(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::utils::Backoff;

    #[test]
    fn the_watch_backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = WatchBackoff::default();
        let first: Vec<_> = b.by_ref().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(first, vec![250, 500, 1000, 2000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
        let mut c = WatchBackoff::constant(Duration::from_millis(100));
        assert_eq!(c.nth(5), Some(Duration::from_millis(100)));
    }

    #[test]
    fn a_kube_error_reads_as_its_status_message_and_code() {
        let e = api_error(403, "secrets \"x\" is forbidden");
        assert_eq!(short_kube_error(&e), "secrets \"x\" is forbidden (403)");
    }
}
