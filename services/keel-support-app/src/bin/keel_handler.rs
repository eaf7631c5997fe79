//! `keel-handler` of the customer-support app: Keel's command handler runtime with the worked
//! domain registered. Flags and `KEEL_*` variables are in [`keel_handler::cli::Cli`];
//! `--help` lists them.

use clap::Parser;
use keel_customer_support::Customer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_handler::cli::Cli::parse().run::<Customer>().await
}
