//! The projector reading envelopes with the plain test codec, as its own process, so that
//! crash tests can kill -9 it. Same flags and `KEEL_*` variables as `keel-projector`.

use clap::Parser;
use keel_integration_tests::plain_codec::PlainCodec;
use keel_projector::ProjectorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ProjectorConfig::parse();
    keel_service::telemetry::init_tracing(false, "info");
    keel_projector::run(config, PlainCodec, keel_service::shutdown_signal()).await
}
