//! `keel-query`: parses the configuration ([`QueryConfig`], [`TelemetryArgs`]), starts
//! telemetry and runs the query API until SIGTERM.

use clap::Parser;
use keel_query::QueryConfig;
use keel_service::telemetry::{self, TelemetryArgs};

#[derive(Debug, Parser)]
#[command(name = "keel-query", about = "Keel's query API", version)]
struct Cli {
    #[command(flatten)]
    config: QueryConfig,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init("keel-query", &cli.telemetry, "info")?;
    let outcome = keel_query::run(cli.config, keel_service::shutdown_signal()).await;
    // Export the spans still buffered (a no-op without an OTLP endpoint).
    telemetry.shutdown();
    outcome
}
