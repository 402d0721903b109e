//! The error of the `status` commands (show, `verify`) and of what `rotate`
//! shares with them: connecting, reading connections and workloads, asking for a
//! check and encoding, each with the name, flag or list it concerns.

use std::path::PathBuf;

use kube::config::KubeconfigError;

/// Why a `status` command stopped (or, for a list, why part of it is not shown).
/// Its text may carry what the API server wrote: print it only through
/// `safe::for_terminal`, as `command.rs` does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client for kubectl's default configuration, or none from the one read.
    #[error("connecting to Kubernetes: {0}")]
    Connect(#[source] kube::Error),
    /// `--context` names a context the default kubeconfig does not hold.
    #[error("kubeconfig context {context:?}: {source}")]
    Context {
        /// The context asked for.
        context: String,
        /// What the kubeconfig said.
        source: KubeconfigError,
    },
    /// The file of `--kubeconfig` could not be read or used.
    #[error("--kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        source: KubeconfigError,
    },
    /// The CRD is not installed.
    #[error(
        "TrackViaConnections are not served by this cluster: is the CRD installed? \
         (trackvia-operator crd | kubectl apply -f -)"
    )]
    NoCrd,
    /// RBAC refuses reading connections.
    #[error("not allowed to read TrackViaConnections: {0}")]
    ConnectionsForbidden(String),
    /// Reading connections failed otherwise.
    #[error("reading TrackViaConnections: {0}")]
    Connections(#[source] kube::Error),
    /// RBAC refuses listing a kind.
    #[error("not allowed to list {0}")]
    ListForbidden(&'static str),
    /// The cluster does not serve a kind.
    #[error("{0} are not served by this cluster")]
    NotServed(&'static str),
    /// Listing a kind failed otherwise.
    #[error("listing {what}: {source}")]
    List {
        /// The kind, plural.
        what: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// No connection of that name in the namespace.
    #[error("TrackViaConnection {name:?} not found in namespace {namespace:?}")]
    NotFoundIn {
        /// The connection.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// The connection is gone (when annotating it).
    #[error("TrackViaConnection {0:?} not found")]
    NotFound(String),
    /// RBAC refuses the annotation that asks for a check.
    #[error(
        "not allowed to annotate TrackViaConnection {name:?} (patch trackviaconnections): {message}"
    )]
    AnnotateForbidden {
        /// The connection.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// Asking for a check failed otherwise.
    #[error("requesting a check of {name:?}: {source}")]
    RequestCheck {
        /// The connection.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Watching for the answer failed.
    #[error("watching {name:?}: {source}")]
    Watch {
        /// The connection.
        name: String,
        /// The watch's error.
        source: kube::runtime::wait::Error,
    },
    /// The connection was deleted while waiting for the answer.
    #[error("TrackViaConnection {0:?} was deleted")]
    Deleted(String),
    /// The value has no JSON form.
    #[error("encoding JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The value has no YAML form.
    #[error("encoding YAML: {0}")]
    YamlTree(#[source] serde_json::Error),
    /// The YAML text could not be written.
    #[error("encoding YAML: {0}")]
    Yaml(#[source] serde_yaml_ng::Error),
}

impl Error {
    /// A failed read of TrackViaConnections: a missing CRD and RBAC named as such.
    pub fn connections(e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) if s.code == 404 => Error::NoCrd,
            kube::Error::Api(s) if s.code == 403 => Error::ConnectionsForbidden(s.message),
            other => Error::Connections(other),
        }
    }

    /// A failed list of `what` (plural kind): RBAC and an unserved kind named as such.
    pub fn list(what: &'static str, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) if s.code == 403 => Error::ListForbidden(what),
            kube::Error::Api(s) if s.code == 404 => Error::NotServed(what),
            source => Error::List { what, source },
        }
    }

    /// A failed annotation of connection `name`.
    pub fn annotate(name: &str, e: kube::Error) -> Error {
        let name = name.to_string();
        match e {
            kube::Error::Api(s) if s.code == 404 => Error::NotFound(name),
            kube::Error::Api(s) if s.code == 403 => Error::AnnotateForbidden {
                name,
                message: s.message,
            },
            source => Error::RequestCheck { name, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_helpers::api_error as api;

    fn offline() -> kube::Error {
        kube::Error::ReadEvents(std::io::Error::other("connection reset"))
    }

    #[test]
    fn api_errors_read_as_the_command_has_always_printed_them() {
        let cases = [
            (
                Error::connections(api(404, "x")),
                "TrackViaConnections are not served by this cluster: is the CRD installed? \
                 (trackvia-operator crd | kubectl apply -f -)"
                    .to_string(),
            ),
            (
                Error::connections(api(403, "no list")),
                "not allowed to read TrackViaConnections: no list".into(),
            ),
            (
                Error::connections(offline()),
                format!("reading TrackViaConnections: {}", offline()),
            ),
            (
                Error::list("deployments", api(403, "x")),
                "not allowed to list deployments".into(),
            ),
            (
                Error::list("events", api(404, "x")),
                "events are not served by this cluster".into(),
            ),
            (
                Error::list("daemonsets", offline()),
                format!("listing daemonsets: {}", offline()),
            ),
            (
                Error::annotate("crm", api(404, "x")),
                "TrackViaConnection \"crm\" not found".into(),
            ),
            (
                Error::annotate("crm", api(403, "no patch")),
                "not allowed to annotate TrackViaConnection \"crm\" (patch trackviaconnections): \
                 no patch"
                    .into(),
            ),
            (
                Error::annotate("crm", api(500, "x")),
                format!("requesting a check of \"crm\": {}", api(500, "x")),
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        let missing = Error::NotFoundIn {
            name: "crm".into(),
            namespace: "apps".into(),
        };
        assert_eq!(
            missing.to_string(),
            "TrackViaConnection \"crm\" not found in namespace \"apps\""
        );
        assert_eq!(
            Error::Deleted("crm".into()).to_string(),
            "TrackViaConnection \"crm\" was deleted"
        );
    }
}
