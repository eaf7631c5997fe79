//! `keel-projector` of the customer-support app: Keel's projector runtime with the worked
//! domain's projections registered (`keel_support_projections`). Flags and `KEEL_*`
//! variables are in [`keel_projector::cli::Cli`]; `--help` lists them.

use clap::Parser;
use keel_support_projections::SupportProjections;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_projector::cli::Cli::parse().run::<SupportProjections>().await
}
