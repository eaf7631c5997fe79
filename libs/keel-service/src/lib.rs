//! What every Keel service shares.
//!
//! - [`telemetry`]: `tracing` to stderr, human-readable or JSON, filtered by `RUST_LOG`-style
//!   directives; spans with W3C trace context, exported over OTLP only when an endpoint is
//!   configured ([`telemetry::TelemetryArgs`]); a process-wide Prometheus recorder for the
//!   `metrics` facade.
//! - [`ops`]: the operations endpoints every service serves on its ops address:
//!   `/healthz` (the process runs), `/readyz` (every readiness check passes, with details),
//!   `/metrics` (Prometheus text).
//! - [`shutdown_signal`]: resolves on SIGTERM or Ctrl-C, for `run(config, shutdown)`.

pub mod ops;
pub mod telemetry;

pub use ops::{Readiness, ops_router, serve_ops};

/// The wall clock in microseconds since the Unix epoch (0 for a clock set before it), as
/// events, checkpoints and certificates record time.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
}

/// Wait before the next retry after `failures` failures in a row: 100 ms doubling, at most
/// `max`.
pub fn backoff(failures: u32, max: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(max)
}

/// Resolves when the process is asked to stop (SIGTERM, or Ctrl-C in a terminal).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
