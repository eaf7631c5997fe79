//! Spans reach an OTLP/HTTP collector when an endpoint is configured, flushed at shutdown.
//! Its own test binary: `telemetry::init` installs the process-wide subscriber.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use keel_service::telemetry::{self, TelemetryArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_configured_collector_on_shutdown() -> anyhow::Result<()> {
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let collector = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(received): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| async move {
                    received.lock().map(|mut r| r.push(body)).ok();
                    ""
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let args = TelemetryArgs {
        log_json: true,
        otlp_endpoint: Some(endpoint),
    };
    let telemetry = telemetry::init("keel-test", &args, "info")?;
    assert!(telemetry.exports());
    tracing::info_span!("command", tenant = "acme", stream = "c-1").in_scope(|| {
        tracing::info!("command accepted");
    });
    assert!(
        received.lock().map(|r| r.is_empty()).unwrap_or(false),
        "batched until flushed"
    );
    // Shutdown blocks until the exporter's thread has sent the batch.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;

    let bodies = received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(bodies.len(), 1, "one batch exported");
    let body = &bodies[0];
    let names_the_span = body.windows(b"command".len()).any(|w| w == b"command");
    let names_the_service = body.windows(b"keel-test".len()).any(|w| w == b"keel-test");
    assert!(names_the_span && names_the_service, "{body:?}");
    Ok(())
}
