//! `keel-admin`: the admin service. Flags and `KEEL_*` variables are in [`AdminConfig`];
//! `--help` lists them.

use clap::Parser;
use keel_admin::AdminConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = AdminConfig::parse();
    keel_service::telemetry::init_tracing(config.log_json, "info");
    keel_admin::run(config, keel_service::shutdown_signal()).await
}
