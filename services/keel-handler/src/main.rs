//! `keel-handler`: the command handler of the worked domain. Flags and `KEEL_*` variables
//! are in [`HandlerConfig`]; `--help` lists them.

use clap::Parser;
use keel_handler::HandlerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = HandlerConfig::parse();
    keel_service::telemetry::init_tracing(config.log_json, "info");
    keel_handler::run_customer_support(config, keel_service::shutdown_signal()).await
}
