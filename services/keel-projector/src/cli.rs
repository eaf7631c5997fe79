//! The `keel-projector` command line: the service's configuration and its telemetry, and
//! `rebuild`, which rebuilds the same projections into a new generation.

use keel_projection::Projections;
use keel_service::telemetry::{self, TelemetryArgs};

use crate::ProjectorConfig;
use crate::rebuild::RebuildArgs;

/// Everything `keel-projector` takes, as flags or `KEEL_*` variables (`--help` lists them).
#[derive(Debug, clap::Parser)]
#[command(
    name = "keel-projector",
    about = "Keel's projector",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The service's configuration.
    #[command(flatten)]
    pub config: ProjectorConfig,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Instead of running the projector, something else with its projections.
    #[command(subcommand)]
    pub command: Option<ProjectorCommand>,
}

/// What `keel-projector` does other than projecting.
#[derive(Debug, clap::Subcommand)]
pub enum ProjectorCommand {
    /// Rebuilds every projection from the log's start into a new generation while the
    /// serving one keeps answering, then switches reads to it; prints what it did (JSON).
    Rebuild(RebuildArgs),
}

impl Cli {
    /// Runs the projector of the domain projections `P` until SIGTERM or Ctrl-C, then exports
    /// the spans still buffered (a no-op without an OTLP endpoint); or, given `rebuild`,
    /// rebuilds `P` into a new generation.
    pub async fn run<P: Projections>(self) -> anyhow::Result<()> {
        match self.command {
            Some(ProjectorCommand::Rebuild(args)) => {
                telemetry::init_tracing(self.telemetry.log_json, "info");
                let rebuilt = crate::rebuild::rebuild::<P>(args).await?;
                println!("{}", serde_json::to_string_pretty(&rebuilt)?);
                Ok(())
            }
            None => {
                let telemetry = telemetry::init("keel-projector", &self.telemetry, "info")?;
                let outcome = crate::run_domain::<P>(self.config, keel_service::shutdown_signal()).await;
                telemetry.shutdown();
                outcome
            }
        }
    }
}
