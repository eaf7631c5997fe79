//! The read side of a test: the projector and the query API over a handler harness's
//! topics and keyspace, in-process, as their binaries run them.

use std::sync::Arc;
use std::time::Duration;

use keel_checkpoints::Generations;
use keel_projection::Projections;
use keel_query::{AppState, ReadModels, ReadSide, router};
use keel_testkit::TestResult;
use serde_json::Value;

use crate::handler_harness::HandlerHarness;

/// Starts the projector and the query API over the handler's topics and keyspace; returns
/// the API's base URL.
pub async fn start_read_side(harness: &HandlerHarness) -> TestResult<String> {
    start_read_side_with(harness, harness.projector_config(&harness.config.keyspace)).await
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
    let keys = config.keys.clone();
    tokio::spawn(keel_projector::run_domain::<P>(config, std::future::pending::<()>()));

    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&harness.config.cql_nodes)
        .build()
        .await?;
    // The handler, starting in its own task, may not have created the keyspace yet.
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
        harness.config.keyspace
    );
    session.query_unpaged(create, &[]).await?;
    session.use_keyspace(&harness.config.keyspace, true).await?;
    let session = Arc::new(session);
    let tenants = keel_auth::TenantsFile::load(&harness.config.tenants).map_err(anyhow::Error::msg)?;
    let nodes = &harness.config.cql_nodes;
    let keys = Arc::new(keel_vault_cql::service_key_ring(&keys, nodes, Arc::clone(&session)).await?);
    let keyspace = &harness.config.keyspace;
    let models = ReadModels::<_, D>::connect(keyspace, Arc::clone(&session), Arc::clone(&keys)).await?;
    let state = Arc::new(
        AppState::new(
            tenants.authenticator().map_err(anyhow::Error::msg)?,
            models,
            keel_projector::projection_names::<P>()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Duration::from_secs(30),
        )
        .with_erasures(keel_erasure::ErasureStore::new(Arc::clone(&session)).await?),
    );
    let generations = Generations::new(session, keyspace).await?;
    tokio::spawn(keel_query::follow_generations(
        Arc::clone(&state),
        generations,
        nodes.clone(),
        keys,
        keel_service::Readiness::new(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
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
