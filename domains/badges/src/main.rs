//! `keel-badges`: the badges app. Keel's runtimes with the badge domain registered, in one
//! binary whose subcommand picks the service:
//!
//! - `keel-badges handler`: the command handler of [`Badge`];
//! - `keel-badges projector`: the projector of [`BadgeProjections`] (and `projector rebuild`:
//!   the projections rebuilt into a new generation, without downtime);
//! - `keel-badges query`: the query API with [`BadgeReads`]' route;
//!
//! Each takes the flags and `KEEL_*` variables of its runtime (`--help` lists them); as a
//! deployment of its own it gets its own topics, keyspace and KMS file
//! (docs/your-domain.md, step 7).

use clap::Parser;
use keel_badges::{Badge, BadgeProjections, BadgeReads};

/// The badges app.
#[derive(Debug, Parser)]
#[command(name = "keel-badges", about = "Keel's runtimes with the visitor badges", version)]
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
        App::Handler(cli) => cli.run::<Badge>().await,
        App::Projector(cli) => cli.run::<BadgeProjections>().await,
        App::Query(cli) => cli.run::<BadgeReads>().await,
    }
}
