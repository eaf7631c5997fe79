//! `keel-handler`: the command handler of the worked domain. Flags and `KEEL_*` variables are in
//! [`keel_handler::cli::Cli`]; `--help` lists them.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_handler::cli::Cli::parse().run().await
}
