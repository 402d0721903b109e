//! A helm release of the chart on a bed: install, upgrade, uninstall (also when dropped).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;

use trackvia_testsupport::command::{Ran, run_blocking, run_tool};
use trackvia_testsupport::tools::{repo_root, tool};

use super::*;

/// A helm release of the chart; uninstalled on drop on the shared bed.
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub kubeconfig: String,
    pub uninstall_on_drop: bool,
}

impl Release {
    /// `helm install` into `namespace`, under the namespace's (unique) name. On the shared bed
    /// the CRD is left out (`crds.enabled=false`; [`Bed::shared`] keeps it current); a private
    /// bed gets the chart's.
    pub async fn install(bed: &Bed, namespace: &str, values: &Value, scratch: &Scratch) -> Release {
        let release = Release {
            name: namespace.to_string(),
            namespace: namespace.to_string(),
            kubeconfig: bed.kubeconfig.clone(),
            uninstall_on_drop: bed.private.is_none(),
        };
        let values = scratch.file("values-install.json", values.to_string().as_bytes());
        let mut args = vec![
            "install".to_string(),
            release.name.clone(),
            repo_root()
                .join("charts/trackvia-operator")
                .display()
                .to_string(),
            "--namespace".into(),
            namespace.into(),
            "--values".into(),
            values.display().to_string(),
            "--timeout".into(),
            "60s".into(),
        ];
        args.extend(bed.crd_values());
        run_tool(tool("helm"), args, bed.helm_env(), HELM_TIMEOUT)
            .await
            .expect_success();
        if bed.private.is_some() {
            wait_crd_served(&bed.client).await;
        }
        release
    }

    /// `helm upgrade` with `values` (replacing, not merging with, the install's).
    pub async fn upgrade(&self, bed: &Bed, values: &Value, scratch: &Scratch) {
        let values = scratch.file("values-upgrade.json", values.to_string().as_bytes());
        run_tool(
            tool("helm"),
            vec![
                "upgrade".into(),
                self.name.clone(),
                repo_root()
                    .join("charts/trackvia-operator")
                    .display()
                    .to_string(),
                "--namespace".into(),
                self.namespace.clone(),
                "--values".into(),
                values.display().to_string(),
                "--timeout".into(),
                "60s".into(),
            ]
            .into_iter()
            .chain(bed.crd_values())
            .collect(),
            bed.helm_env(),
            HELM_TIMEOUT,
        )
        .await
        .expect_success();
    }

    /// The chart's resource name prefix for this release.
    pub fn fullname(&self) -> String {
        if self.name.contains("trackvia-operator") {
            self.name.clone()
        } else {
            format!("{}-trackvia-operator", self.name)
        }
    }

    pub async fn deployment(&self, bed: &Bed) -> Deployment {
        Api::<Deployment>::namespaced(bed.client.clone(), &self.namespace)
            .get(&self.fullname())
            .await
            .unwrap_or_else(|e| panic!("reading the chart's Deployment {}: {e}", self.fullname()))
    }

    /// The release's leader-election Lease as it is now.
    pub async fn lease(&self, bed: &Bed) -> Option<Lease> {
        lease(bed, &self.namespace, &self.fullname()).await
    }

    /// The ServiceAccount the chart's pods run as.
    pub async fn service_account(&self, bed: &Bed) -> String {
        self.deployment(bed)
            .await
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.service_account_name)
            .expect("the chart's pods name a ServiceAccount")
    }

    pub fn uninstall_blocking(&mut self) -> Ran {
        self.uninstall_on_drop = false;
        run_blocking(
            &tool("helm"),
            &[
                "uninstall".into(),
                self.name.clone(),
                "--namespace".into(),
                self.namespace.clone(),
                "--timeout".into(),
                "60s".into(),
            ],
            &[("KUBECONFIG".into(), self.kubeconfig.clone())],
            HELM_TIMEOUT,
        )
    }

    pub async fn uninstall(mut self) {
        if !self.uninstall_on_drop {
            return;
        }
        tokio::task::spawn_blocking(move || self.uninstall_blocking())
            .await
            .expect("helm uninstall ran")
            .expect_success();
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.uninstall_on_drop {
            let ran = self.uninstall_blocking();
            if !ran.succeeded() {
                eprintln!("`{}` failed: {}", ran.command, ran.stderr);
            }
        }
    }
}
