//! Reads: the API calls of `status` (connections, workloads, events) and the
//! assembly of the report from them.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::crd::TrackViaConnection;
use crate::kube_helpers::scoped_api as api_for;

use super::*;
use crate::cli::status::encode::{to_json, to_yaml};

/// Every Deployment, StatefulSet and DaemonSet in scope, with the Secrets they use.
pub(crate) async fn list_workloads(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Workload>, Error> {
    let params = ListParams::default();
    let deployments = api_for::<Deployment>(client, namespace)
        .list(&params)
        .await
        .map_err(|e| Error::list("deployments", e))?;
    let stateful_sets = api_for::<StatefulSet>(client, namespace)
        .list(&params)
        .await
        .map_err(|e| Error::list("statefulsets", e))?;
    let daemon_sets = api_for::<DaemonSet>(client, namespace)
        .list(&params)
        .await
        .map_err(|e| Error::list("daemonsets", e))?;
    let mut all: Vec<Workload> = deployments.items.iter().map(from_deployment).collect();
    all.extend(stateful_sets.items.iter().map(from_stateful_set));
    all.extend(daemon_sets.items.iter().map(from_daemon_set));
    Ok(all)
}

pub(crate) async fn list_events(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Event>, Error> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!(
        "involvedObject.kind=TrackViaConnection,involvedObject.name={name}"
    ));
    api.list(&params)
        .await
        .map(|l| l.items)
        .map_err(|e| Error::list("events", e))
}

/// Read what `options` asks for and render it; every warning is escaped for
/// the terminal (the error is escaped where it is printed).
pub async fn run(options: Options, color: bool) -> Result<Report, Error> {
    let mut report = collect(options, color).await?;
    for warning in &mut report.warnings {
        *warning = safe::for_terminal(warning).into_owned();
    }
    Ok(report)
}

pub(crate) async fn collect(options: Options, color: bool) -> Result<Report, Error> {
    let (client, namespace) = connect::connect_in(
        options.kubeconfig.as_deref(),
        options.context.as_deref(),
        options.namespace.as_deref(),
    )
    .await?;
    let all = options.all_namespaces && options.name.is_none();
    let scope = (!all).then_some(namespace.as_str());
    let mut report = Report::default();

    let selected = read_connections(&client, scope, options.name.as_deref(), &namespace).await?;

    let workloads = if selected.is_empty() {
        Some(Vec::new())
    } else {
        match list_workloads(&client, scope).await {
            Ok(w) => Some(w),
            Err(e) => {
                report
                    .warnings
                    .push(format!("consumers are not shown: {e}"));
                None
            }
        }
    };
    let now = Timestamp::now();

    if let Some(name) = &options.name {
        let tvc = &selected[0];
        let events = match list_events(&client, &namespace, name).await {
            Ok(e) => Some(e),
            Err(e) => {
                report.warnings.push(format!("events are not shown: {e}"));
                None
            }
        };
        let d = detail(tvc, workloads.as_deref(), events.as_deref(), now);
        report.output = match options.output {
            OutputFormat::Json => to_json(&d)?,
            OutputFormat::Yaml => to_yaml(&d)?,
            OutputFormat::Table => render_detail(&d, now, color),
        };
        return Ok(report);
    }

    let rows: Vec<ConnectionSummary> = selected
        .iter()
        .map(|t| summarize(t, workloads.as_deref(), now))
        .collect();
    report.output = match options.output {
        OutputFormat::Json => to_json(&ConnectionList { connections: rows })?,
        OutputFormat::Yaml => to_yaml(&ConnectionList { connections: rows })?,
        OutputFormat::Table if rows.is_empty() => {
            report.warnings.push(if all {
                "No TrackViaConnections found.".into()
            } else {
                format!("No TrackViaConnections found in namespace {namespace}.")
            });
            String::new()
        }
        OutputFormat::Table => render_table(&rows, all, now, color),
    };
    Ok(report)
}

/// The connection named, or every connection in scope by namespace and name.
async fn read_connections(
    client: &Client,
    scope: Option<&str>,
    name: Option<&str>,
    namespace: &str,
) -> Result<Vec<TrackViaConnection>, Error> {
    let connections: Api<TrackViaConnection> = api_for(client, scope);
    let selected: Vec<TrackViaConnection> = match name {
        Some(name) => match connections
            .get_opt(name)
            .await
            .map_err(Error::connections)?
        {
            Some(tvc) => vec![tvc],
            None => {
                return Err(Error::NotFoundIn {
                    name: name.to_string(),
                    namespace: namespace.to_string(),
                });
            }
        },
        None => {
            let mut items = connections
                .list(&ListParams::default())
                .await
                .map_err(Error::connections)?
                .items;
            items.sort_by_key(|t| (t.namespace(), t.name_any()));
            items
        }
    };
    Ok(selected)
}
