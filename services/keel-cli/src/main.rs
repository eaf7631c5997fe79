//! `keel`: the command line of Keel.
//!
//! - `keel dev init` writes a development tenants file (two tenants, their policies and
//!   Ed25519 verification keys) and the matching signing keys, owner-only, under `.local/dev`;
//! - `keel token` signs a credential for an actor of a tenant with a development key;
//! - `keel topics create` creates the command-path topics (the handler also does at start);
//! - `keel command send` encodes a command of the worked domain as an Avro envelope, produces
//!   it keyed by tenant/stream (murmur2, as Java clients do) and, with `--wait`, prints its
//!   result; `keel command wait` waits for the result of a command id.
//!
//! Every flag is also a `KEEL_*` variable where it names shared configuration.

use clap::{Parser, Subcommand};
use keel_cli::{command, dev};

#[derive(Debug, Parser)]
#[command(name = "keel", about = "Keel's command line", version)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Development set-up: tenants, keys, credentials.
    #[command(subcommand)]
    Dev(dev::Dev),
    /// Signs a credential for an actor of a tenant with its development key.
    Token(dev::TokenArgs),
    /// Kafka topics.
    #[command(subcommand)]
    Topics(command::Topics),
    /// Commands: send one, wait for a result.
    #[command(subcommand)]
    Command(command::CommandCli),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Top::Dev(dev) => dev.run(),
        Top::Token(args) => {
            println!("{}", args.issue()?);
            Ok(())
        }
        Top::Topics(topics) => topics.run().await,
        Top::Command(command) => command.run().await,
    }
}
