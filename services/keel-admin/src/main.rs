//! `keel-admin`: the admin service. Flags and `KEEL_*` variables are in [`AdminConfig`] and
//! [`TelemetryArgs`]; `--help` lists them.

use clap::Parser;
use keel_admin::AdminConfig;
use keel_service::telemetry::{self, TelemetryArgs};

#[derive(Debug, Parser)]
#[command(
    name = "keel-admin",
    about = "Keel's admin service: erasure by crypto-shredding",
    version
)]
struct Cli {
    #[command(flatten)]
    config: AdminConfig,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init("keel-admin", &cli.telemetry, "info")?;
    let outcome = keel_admin::run(cli.config, keel_service::shutdown_signal()).await;
    // Export the spans still buffered (a no-op without an OTLP endpoint).
    telemetry.shutdown();
    outcome
}
