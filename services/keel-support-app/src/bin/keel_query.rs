//! `keel-query` of the customer-support app: Keel's query runtime with the worked domain's
//! read routes registered (`keel_support_query`). Flags and `KEEL_*` variables are in
//! [`keel_query::Cli`]; `--help` lists them.

use clap::Parser;
use keel_support_query::SupportReads;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel_query::Cli::parse().run::<SupportReads>().await
}
