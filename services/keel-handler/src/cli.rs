//! The `keel-handler` command line: the service's configuration and its telemetry.

use keel_service::telemetry::{self, TelemetryArgs};

use crate::HandlerConfig;

/// Everything `keel-handler` takes, as flags or `KEEL_*` variables (`--help` lists them).
#[derive(Debug, clap::Parser)]
#[command(name = "keel-handler", about = "Keel's command handler", version)]
pub struct Cli {
    /// The service's configuration.
    #[command(flatten)]
    pub config: HandlerConfig,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Cli {
    /// Runs the handler of domain `D` until SIGTERM or Ctrl-C, then exports the spans still
    /// buffered (a no-op without an OTLP endpoint).
    pub async fn run<D>(self) -> anyhow::Result<()>
    where
        D: keel_domain::Aggregate + keel_domain::WireSchemas,
        D::Command: serde::de::DeserializeOwned,
        D::Event: serde::Serialize + serde::de::DeserializeOwned,
    {
        let telemetry = telemetry::init("keel-handler", &self.telemetry, "info")?;
        let outcome = crate::run_domain::<D>(self.config, keel_service::shutdown_signal()).await;
        telemetry.shutdown();
        outcome
    }
}
