//! `keel`: the command line of Keel.
//!
//! - `keel dev init` writes a development tenants file (two tenants, their policies and
//!   Ed25519 verification keys) and the matching signing keys, owner-only, under `.local/dev`;
//! - `keel token` signs a credential for an actor of a tenant with a development key;
//! - `keel topics create` creates the command-path topics (the handler also does at start);
//! - `keel command send` encodes a command of any domain whose schemas are under `--schemas`
//!   (the JSON payload checked against its schema) as an Avro envelope, produces it keyed by
//!   tenant/stream (murmur2, as Java clients do) and, with `--wait`, prints its result;
//!   `keel command wait` waits for the result of a command id;
//! - `keel admin erase` erases a data subject (the admin service destroys its keys and signs
//!   a certificate); `keel admin certificate` prints the certificate and
//!   `keel admin verify-certificate` checks it with the service's public key;
//! - `keel projections serving` says which generation of the projections serves (an app's
//!   projector rebuilds them: `keel-projector rebuild`);
//! - `keel demo` runs the README's scenario against running services (`make demo`).
//!
//! Every flag is also a `KEEL_*` variable where it names shared configuration.

use clap::{Parser, Subcommand};
use keel_cli::{admin, command, demo, dev};

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
    /// Projections: which generation serves.
    #[command(subcommand)]
    Projections(Projections),
    /// Erasure: erase a subject, print and verify certificates.
    #[command(subcommand)]
    Admin(admin::Admin),
    /// Runs the demo scenario against running services, narrated; fails with the step.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum Projections {
    /// Print the keyspace whose projections serve reads.
    Serving {
        /// Where the control keyspace is.
        #[command(flatten)]
        cql: keel_cql::CqlArgs,
    },
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
        Top::Admin(admin) => admin.run().await,
        Top::Demo(args) => demo::run(args).await,
        Top::Projections(Projections::Serving { cql }) => {
            let session = cql.connect().await.map_err(anyhow::Error::msg)?;
            let generations = keel_checkpoints::Generations::new(std::sync::Arc::new(session), &cql.keyspace).await?;
            println!("{}", generations.serving().await?);
            Ok(())
        }
    }
}
