//! The read side of a test: the projector and the query API over a handler harness's
//! topics and keyspace, in-process: the services' own `run`, as their binaries call it.

use std::time::Duration;

use keel_projection::Projections;
use keel_query::ReadSide;
use keel_testkit::TestResult;
use serde_json::Value;

use crate::handler_harness::HandlerHarness;

/// Starts the projector and the query API over the handler's topics and keyspace; returns
/// the API's base URL.
pub async fn start_read_side(harness: &HandlerHarness) -> TestResult<String> {
    start_read_side_with(harness, harness.projector_config(&harness.config.cql.keyspace)).await
}

/// [`start_read_side`] with the projector's configuration given (its ops address, say).
pub async fn start_read_side_with(
    harness: &HandlerHarness,
    config: keel_projector::ProjectorConfig,
) -> TestResult<String> {
    start_read_side_of::<keel_support_projections::SupportProjections, keel_support_query::SupportReads>(
        harness, config,
    )
    .await
}

/// The projector of a domain's projections `P` and the query API with its read side `D`,
/// over the harness's topics and keyspace; returns the API's base URL.
pub async fn start_read_side_of<P: Projections, D: ReadSide>(
    harness: &HandlerHarness,
    config: keel_projector::ProjectorConfig,
) -> TestResult<String> {
    let query = keel_query::QueryConfig {
        cql: keel_cql::CqlArgs::new(harness.config.cql.nodes.clone(), harness.config.cql.keyspace.clone()),
        tenants: harness.config.tenants.clone(),
        projections: Vec::new(),
        keys: config.keys.clone(),
        max_wait_ms: 30_000,
    };
    tokio::spawn(keel_projector::run_domain::<P>(config, std::future::pending::<()>()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let api = tokio::spawn(keel_query::run::<D>(query, listener, std::future::pending::<()>()));
    // The API answers once connected; a failure to start is the test's failure.
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if api.is_finished() {
            return Err(anyhow::anyhow!("the query API stopped: {:?}", api.await));
        }
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow::anyhow!("the query API did not answer within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(base)
}

/// GET `path` with a bearer token: the status and the JSON body.
pub async fn get(base: &str, path: &str, bearer: &str) -> TestResult<(u16, Value)> {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(bearer)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("GET {path}: {status} with a body that is not JSON ({error}): {text:?}"))?;
    Ok((status, body))
}
