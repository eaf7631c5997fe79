//! The `keel-projector` binary's code as a binary of this package, so that crash tests can
//! start it as its own process and kill -9 it (Cargo only exposes a package's own binaries
//! to its tests). Same flags and `KEEL_*` variables as `keel-projector`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_projector::cli::Cli::parse()
        .run::<keel_support_projections::SupportProjections>()
        .await
}
