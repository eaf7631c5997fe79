//! The `keel-projector` binary's code as a binary of this package, so that crash tests can
//! start it as its own process and kill -9 it (Cargo only exposes a package's own binaries
//! to its tests). Same flags and `KEEL_*` variables as `keel-projector`.

use clap::Parser;
use keel_projector::ProjectorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ProjectorConfig::parse();
    keel_service::telemetry::init_tracing(false, "info");
    keel_projector::run_customer_support(config, keel_service::shutdown_signal()).await
}
