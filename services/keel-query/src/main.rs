//! `keel-query`: parses the configuration, starts telemetry and runs the query API until
//! SIGTERM.

use clap::Parser;
use keel_query::QueryConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = QueryConfig::parse();
    keel_service::telemetry::init_tracing(config.log_json, "info");
    keel_query::run(config, keel_service::shutdown_signal()).await
}
