//! The `keel-projector` command line: the service's configuration and its telemetry.

use keel_service::telemetry::{self, TelemetryArgs};

use crate::ProjectorConfig;

/// Everything `keel-projector` takes, as flags or `KEEL_*` variables (`--help` lists them).
#[derive(Debug, clap::Parser)]
#[command(name = "keel-projector", about = "Keel's projector", version)]
pub struct Cli {
    /// The service's configuration.
    #[command(flatten)]
    pub config: ProjectorConfig,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Cli {
    /// Runs the projector of the domain projections `P` until SIGTERM or Ctrl-C, then exports
    /// the spans still buffered (a no-op without an OTLP endpoint).
    pub async fn run<P: keel_projection::Projections>(self) -> anyhow::Result<()> {
        let telemetry = telemetry::init("keel-projector", &self.telemetry, "info")?;
        let outcome = crate::run_domain::<P>(self.config, keel_service::shutdown_signal()).await;
        telemetry.shutdown();
        outcome
    }
}
