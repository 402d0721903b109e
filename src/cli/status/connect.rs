//! The Kubernetes client of the `status` commands: the kubeconfig of
//! `--kubeconfig` (else `KUBECONFIG`, else `~/.kube/config`, else in-cluster) and
//! the context of `--context` (else the current one), as kubectl picks them.

use std::path::Path;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Error;

/// A client for `kubeconfig` and `context`; `None` means kubectl's default.
pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client, Error> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (None, None) => {
            return Client::try_default().await.map_err(Error::Connect);
        }
        (None, Some(context)) => {
            kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|source| Error::Context {
                    context: context.to_string(),
                    source,
                })?
        }
        (Some(path), _) => {
            let bad_file = |source| Error::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(bad_file)?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(bad_file)?
        }
    };
    Client::try_from(config).map_err(Error::Connect)
}

/// [`connect`], and the namespace to work in: `namespace` unless empty, else the
/// kubeconfig context's default namespace.
pub async fn connect_in(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<(Client, String), Error> {
    let client = connect(kubeconfig, context).await?;
    let namespace = namespace
        .filter(|n| !n.is_empty())
        .map_or_else(|| client.default_namespace().to_string(), str::to_string);
    Ok((client, namespace))
}
