//! `keel-projector`: the projector of the worked domain. Flags and `KEEL_*` variables are in
//! [`keel_projector::cli::Cli`]; `--help` lists them.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_projector::cli::Cli::parse().run().await
}
