//! `keel-approvals`: the approvals app. Keel's runtimes with the approval desk registered,
//! all in one binary whose subcommand picks the service:
//!
//! - `keel-approvals handler`: the command handler of [`ApprovalDesk`];
//! - `keel-approvals projector`: the projector of [`ApprovalProjections`];
//! - `keel-approvals query`: the query API with [`ApprovalReads`]' routes.
//!
//! Each takes the flags and `KEEL_*` variables of its runtime (`--help` lists them). The app
//! runs as a deployment of its own beside the customer-support app: its own topics
//! (`--commands-topic`, `--events-topic`, ...) and keyspace, and the same tenants file.

use clap::Parser;
use keel_approvals::ApprovalDesk;
use keel_approvals_projections::ApprovalProjections;
use keel_approvals_query::ApprovalReads;

/// The approvals app.
#[derive(Debug, Parser)]
#[command(name = "keel-approvals", about = "Keel's runtimes with the approval desk", version)]
enum App {
    /// The command handler.
    Handler(keel_handler::cli::Cli),
    /// The projector.
    Projector(keel_projector::cli::Cli),
    /// The query API.
    Query(keel_query::Cli),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match App::parse() {
        App::Handler(cli) => cli.run::<ApprovalDesk>().await,
        App::Projector(cli) => cli.run::<ApprovalProjections>().await,
        App::Query(cli) => cli.run::<ApprovalReads>().await,
    }
}
