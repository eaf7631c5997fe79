//! `keel-projector`: the projector of the worked domain. Flags and `KEEL_*` variables are in
//! [`ProjectorConfig`]; `--help` lists them.

use clap::Parser;
use keel_projector::ProjectorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ProjectorConfig::parse();
    keel_service::telemetry::init_tracing(false, "info");
    keel_projector::run_customer_support(config, keel_service::shutdown_signal()).await
}
