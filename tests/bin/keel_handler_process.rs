//! The customer-support app's `keel-handler` binary as a binary of this package, so that crash and scale
//! tests can start it as its own process and kill -9 it (Cargo only exposes a package's own
//! binaries to its tests). Same flags and `KEEL_*` variables as `keel-handler`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_handler::cli::Cli::parse()
        .run::<keel_customer_support::Customer>()
        .await
}
