//! The figures of `--spread`, and their table: a column per variant.

use super::super::Args;
use serde::Serialize;

/// The figures of one variant.
#[derive(Debug, Default, Serialize)]
pub(crate) struct SpreadRun {
    pub(crate) variant: String,
    pub(crate) extra_args: Vec<String>,
    pub(crate) convergence_seconds: f64,
    pub(crate) source_watches_by_name: u64,
    pub(crate) source_watches_namespace_wide: u64,
    pub(crate) source_watches_of_all: u64,
    pub(crate) operator_sockets: usize,
    pub(crate) operator_peak_rss_mib: f64,
    pub(crate) operator_rss_mib: f64,
    pub(crate) operator_cpu_seconds_convergence: f64,
    pub(crate) apiserver_secret_watches: f64,
    pub(crate) unrelated_updates: usize,
    pub(crate) secret_watch_events_during_updates: u64,
    pub(crate) operator_cpu_seconds_updates: f64,
    pub(crate) restart_initial_sync_seconds: f64,
    pub(crate) restart_peak_rss_mib: f64,
    pub(crate) restart_sockets: usize,
}

/// A row of the table: its title, and its cell for a run.
type Row = (&'static str, fn(&SpreadRun) -> String);

pub(crate) fn print_spread(args: &Args, runs: &[SpreadRun]) {
    println!(
        "\n{} connections over {} namespaces (one source Secret each), {} unrelated Secrets, the operator on all namespaces\n",
        args.connections, args.spread, args.unrelated_secrets
    );
    let rows: [Row; 12] = [
        ("convergence", |r| format!("{:.2} s", r.convergence_seconds)),
        ("source watches: by name / namespace / all", |r| {
            format!(
                "{} / {} / {}",
                r.source_watches_by_name, r.source_watches_namespace_wide, r.source_watches_of_all
            )
        }),
        ("operator sockets", |r| r.operator_sockets.to_string()),
        ("operator peak / steady RSS", |r| {
            format!(
                "{:.1} / {:.1} MiB",
                r.operator_peak_rss_mib, r.operator_rss_mib
            )
        }),
        ("operator CPU in convergence", |r| {
            format!("{:.2} s", r.operator_cpu_seconds_convergence)
        }),
        ("API server: watches of Secrets served", |r| {
            format!("{:.0}", r.apiserver_secret_watches)
        }),
        ("unrelated Secrets updated", |r| {
            r.unrelated_updates.to_string()
        }),
        ("Secret watch events meanwhile", |r| {
            r.secret_watch_events_during_updates.to_string()
        }),
        ("operator CPU meanwhile", |r| {
            format!("{:.2} s", r.operator_cpu_seconds_updates)
        }),
        ("restart: initial sync", |r| {
            format!("{:.2} s", r.restart_initial_sync_seconds)
        }),
        ("restart: peak RSS", |r| {
            format!("{:.1} MiB", r.restart_peak_rss_mib)
        }),
        ("restart: sockets", |r| r.restart_sockets.to_string()),
    ];
    print!("| measure |");
    for r in runs {
        print!(" {} |", r.variant);
    }
    println!("\n| --- |{}", " --- |".repeat(runs.len()));
    for (name, cell) in rows {
        print!("| {name} |");
        for r in runs {
            print!(" {} |", cell(r));
        }
        println!();
    }
}
