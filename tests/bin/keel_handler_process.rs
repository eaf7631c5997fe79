//! The `keel-handler` binary's code as a binary of this package, so that crash and scale
//! tests can start it as its own process and kill -9 it (Cargo only exposes a package's own
//! binaries to its tests). Same flags and `KEEL_*` variables as `keel-handler`.

use clap::Parser;
use keel_handler::HandlerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = HandlerConfig::parse();
    keel_service::telemetry::init_tracing(config.log_json, "info");
    keel_handler::run_customer_support(config, keel_service::shutdown_signal()).await
}
