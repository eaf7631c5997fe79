//! The command handler with the plain test codec, as its own process, so that crash tests
//! can kill -9 it. Same flags and `KEEL_*` variables as `keel-handler`.

use clap::Parser;
use keel_customer_support::Customer;
use keel_handler::HandlerConfig;
use keel_integration_tests::plain_codec::PlainCodec;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = HandlerConfig::parse();
    keel_service::telemetry::init_tracing(config.log_json, "info");
    keel_handler::run::<Customer, _>(config, PlainCodec, keel_service::shutdown_signal()).await
}
