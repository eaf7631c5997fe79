//! The operations endpoints: `/healthz`, `/readyz`, `/metrics`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::TcpListener;

/// Named readiness checks a service updates as it runs: ready when every check passes.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<BTreeMap<String, Check>>>,
}

/// The state of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Whether it passes.
    pub ready: bool,
    /// Why not, or what it found.
    pub detail: String,
}

impl Readiness {
    /// Readiness with no checks yet (ready until a check is registered).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets check `name`.
    pub fn set(&self, name: &str, ready: bool, detail: impl Into<String>) {
        let mut checks = self.checks.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        checks.insert(
            name.to_owned(),
            Check {
                ready,
                detail: detail.into(),
            },
        );
    }

    /// Whether every check passes, and all of them.
    pub fn report(&self) -> (bool, BTreeMap<String, Check>) {
        let checks = self
            .checks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (checks.values().all(|check| check.ready), checks)
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// The ops endpoints as a router, for a service that serves them beside its own routes.
pub fn ops_router(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { readiness, metrics })
}

/// Serves the ops endpoints on `listener` until `shutdown` resolves.
pub async fn serve_ops(
    listener: TcpListener,
    readiness: Readiness,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, ops_router(readiness, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let (ready, checks) = state.readiness.report();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({ "ready": ready, "checks": checks })))
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(readiness: Readiness) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = crate::telemetry::metrics_handle();
        tokio::spawn(serve_ops(listener, readiness, handle, async {
            let _ = stopped.await;
        }));
        Ok((base, stop))
    }

    #[tokio::test]
    async fn readyz_fails_until_every_check_passes() -> anyhow::Result<()> {
        let readiness = Readiness::new();
        readiness.set("kafka", true, "assigned 3 partitions");
        readiness.set("cql", false, "connecting");
        let (base, _stop) = start(readiness.clone()).await?;

        assert_eq!(reqwest::get(format!("{base}/healthz")).await?.status(), 200);
        let not_ready = reqwest::get(format!("{base}/readyz")).await?;
        assert_eq!(not_ready.status(), 503);
        let body: serde_json::Value = not_ready.json().await?;
        assert_eq!(body["checks"]["cql"]["detail"], "connecting");

        readiness.set("cql", true, "connected");
        assert_eq!(reqwest::get(format!("{base}/readyz")).await?.status(), 200);
        Ok(())
    }

    #[tokio::test]
    async fn metrics_render_what_the_facade_recorded() -> anyhow::Result<()> {
        let (base, _stop) = start(Readiness::new()).await?;
        metrics::counter!("keel_ops_test_total", "reason" => "check").increment(3);
        let text = reqwest::get(format!("{base}/metrics")).await?.text().await?;
        assert!(text.contains("keel_ops_test_total{reason=\"check\"} 3"), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn histograms_render_buckets_the_dashboard_can_aggregate() -> anyhow::Result<()> {
        let (base, _stop) = start(Readiness::new()).await?;
        metrics::histogram!("keel_ops_test_seconds").record(0.003);
        let text = reqwest::get(format!("{base}/metrics")).await?.text().await?;
        assert!(text.contains("keel_ops_test_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("keel_ops_test_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        Ok(())
    }
}
