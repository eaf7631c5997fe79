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
    /// Runs the service of the worked domain until SIGTERM or Ctrl-C, then exports the spans
    /// still buffered (a no-op without an OTLP endpoint).
    pub async fn run(self) -> anyhow::Result<()> {
        let telemetry = telemetry::init("keel-handler", &self.telemetry, "info")?;
        let outcome = crate::run_customer_support(self.config, keel_service::shutdown_signal()).await;
        telemetry.shutdown();
        outcome
    }
}
