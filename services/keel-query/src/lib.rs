//! Keel's query API.
//!
//! HTTP/JSON, read-only, over the projections the projector keeps in the CQL store. Every
//! route is under `/v1/tenants/{tenant}/` and needs a bearer token of that tenant (the same
//! JWTs as commands, `keel-auth`): a token of another tenant does not verify, and the answer
//! does not say whether anything exists there. Every answer carries its freshness and
//! honours read-your-writes (`fresh.rs`). Errors map to statuses and machine-readable codes
//! in one table (`error.rs`). `/openapi.json` describes the API; `/healthz`, `/readyz` and
//! `/metrics` are served beside it.
//!
//! Routes: a stream's audit trail, an actor's activity trail, each projection's freshness,
//! and the worked domain's ([`customers`]): profiles, subscriptions, refunds with totals,
//! emails and referrals with personal fields opened on read (or the erased marker), chain
//! verification, and a stream's state as of a version or a time. Erasure certificates are
//! served from the admin service's store.

pub mod customers;
mod error;
pub mod fresh;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use keel_auth::{Actor, ActorKind, Authenticator, Principal, TenantsFile};
use keel_checkpoints::{Checkpoints, CqlCheckpoints, Generations};
use keel_erasure::ErasureStore;
use keel_service::{Readiness, ops_router, telemetry};
use keel_trails::{ACTIVITY, AUDIT, ActivityEntry, AuditEntry, Trails};
use keel_vault_cql::ServiceKeyRing;
use scylla::client::session::Session;
use serde::Serialize;
use std::sync::RwLock;

pub use error::ApiError;
use fresh::{Consistency, Fresh, wait_for};

/// The OpenAPI description, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Configuration of the query API.
#[derive(Debug, Clone, Parser)]
#[command(name = "keel-query", about = "Keel's query API", version)]
pub struct QueryConfig {
    /// Address to serve the API (and /healthz, /readyz, /metrics) on.
    #[arg(long, env = "KEEL_QUERY_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// CQL contact points, comma-separated.
    #[arg(
        long,
        env = "KEEL_CQL_NODES",
        default_value = "127.0.0.1:9042",
        value_delimiter = ','
    )]
    pub cql_nodes: Vec<String>,
    /// Keyspace of the projections.
    #[arg(long, env = "KEEL_KEYSPACE", default_value = "keel")]
    pub keyspace: String,
    /// Tenants file (credential keys per tenant).
    #[arg(long, env = "KEEL_TENANTS")]
    pub tenants: PathBuf,
    /// The projections this API serves, with their table version (e.g. `customer_profiles.v1`).
    #[arg(
        long,
        env = "KEEL_QUERY_PROJECTIONS",
        value_delimiter = ',',
        default_value = "audit_trail.v1,actor_activity.v1,customer_profiles.v1,subscriptions.v1,refunds.v1,emails.v1,referrals.v1,stream_events.v1"
    )]
    pub projections: Vec<String>,
    /// Where the keys that open personal fields are.
    #[command(flatten)]
    pub keys: keel_vault_cql::KeyArgs,
    /// Longest read-your-writes wait a client may ask for, in ms.
    #[arg(long, env = "KEEL_QUERY_MAX_WAIT_MS", default_value_t = 5_000)]
    pub max_wait_ms: u64,
}

/// One generation of the projections: the tables of one keyspace.
pub struct ReadModels<C> {
    /// The keyspace.
    pub generation: String,
    /// Projection checkpoints, for freshness.
    pub checkpoints: C,
    /// The audit and activity trails.
    pub trails: Trails,
    /// The domain's projections and the codec that opens them.
    pub support: customers::Support,
}

impl ReadModels<CqlCheckpoints> {
    /// The read models of `generation` (a keyspace on `session`), opened with `keys`.
    pub async fn connect(generation: &str, session: Arc<Session>, keys: Arc<ServiceKeyRing>) -> anyhow::Result<Self> {
        Ok(Self {
            generation: generation.to_owned(),
            trails: Trails::new(Arc::clone(&session)).await?,
            support: customers::Support::new(Arc::clone(&session), keys).await?,
            checkpoints: CqlCheckpoints::new(session).await?,
        })
    }
}

/// What every request handler shares.
pub struct AppState<C> {
    /// Verifies bearer tokens per tenant.
    pub authenticator: Authenticator,
    /// The serving generation's read models; a rebuild's switch-over replaces them.
    pub models: RwLock<Arc<ReadModels<C>>>,
    /// The projections served.
    pub projections: Vec<String>,
    /// The longest read-your-writes wait.
    pub max_wait: Duration,
    /// Erasure certificates, kept by the admin service in the control keyspace.
    pub erasures: Option<ErasureStore>,
}

impl<C> AppState<C> {
    /// State serving `models`.
    pub fn new(
        authenticator: Authenticator,
        models: ReadModels<C>,
        projections: Vec<String>,
        max_wait: Duration,
    ) -> Self {
        Self {
            authenticator,
            models: RwLock::new(Arc::new(models)),
            projections,
            max_wait,
            erasures: None,
        }
    }

    /// Serves erasure certificates from `store` too.
    #[must_use]
    pub fn with_erasures(mut self, store: ErasureStore) -> Self {
        self.erasures = Some(store);
        self
    }

    /// The serving generation's read models.
    pub fn models(&self) -> Arc<ReadModels<C>> {
        Arc::clone(&self.models.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Serves `models` from now on.
    pub fn switch(&self, models: ReadModels<C>) {
        *self.models.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(models);
    }

    /// The principal of the request's bearer token, if it verifies for `tenant`.
    fn principal(&self, tenant: &str, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        self.authenticator.verify(tenant, token, now).map_err(|refusal| {
            tracing::info!(tenant, reason = refusal.code(), "query refused: credential");
            ApiError::Unauthorized
        })
    }
}

#[derive(Debug, Serialize)]
struct ProjectionFreshness {
    projection: String,
}

async fn freshness<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, projection)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<ProjectionFreshness>>, ApiError> {
    let started = std::time::Instant::now();
    state.principal(&tenant, &headers)?;
    if !state.projections.contains(&projection) {
        return Err(ApiError::NotFound);
    }
    let models = state.models();
    let (freshness, stale) = wait_for(&models.checkpoints, &projection, &consistency, state.max_wait).await?;
    metrics::histogram!("keel_query_seconds", "route" => "freshness").record(started.elapsed().as_secs_f64());
    Ok(Json(Fresh {
        data: ProjectionFreshness { projection },
        freshness,
        stale,
        generation: models.generation.clone(),
    }))
}

/// Query parameters, whose rejection is an [`ApiError`] like every other error (axum's own
/// is plain text).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(params)| Self(params))
            .map_err(|rejection| ApiError::BadParameter {
                name: "query",
                reason: rejection.body_text(),
            })
    }
}

/// An id from the path, in the grammar every entry point enforces (`keel-ids`); a stream
/// may be a system stream (`keel.erasure:<subject>`).
pub(crate) fn path_id(name: &'static str, value: &str) -> Result<(), ApiError> {
    if name == "stream" {
        keel_ids::check_stream(name, value)?;
    } else {
        keel_ids::check(name, value)?;
    }
    Ok(())
}

/// What a request whose handler panicked is answered: a 500 with the `internal` code, like
/// any other internal error, instead of a dropped connection. The panic is logged.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into());
    metrics::counter!("keel_query_panics_total").increment(1);
    ApiError::Internal(format!("a request handler panicked: {what}")).into_response()
}

/// A stream's audit trail: who did what, in what order, on whose behalf, allowed by which
/// rule, with the chain hashes that prove it.
async fn audit<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, stream)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<AuditEntry>>>, ApiError> {
    let started = std::time::Instant::now();
    state.principal(&tenant, &headers)?;
    path_id("stream", &stream)?;
    let models = state.models();
    let (freshness, stale) = wait_for(&models.checkpoints, AUDIT, &consistency, state.max_wait).await?;
    let entries = models
        .trails
        .audit(&tenant, &stream)
        .await
        .map_err(|error| ApiError::Internal(format!("{error:#}")))?;
    if entries.is_empty() {
        return Err(ApiError::NotFound);
    }
    metrics::histogram!("keel_query_seconds", "route" => "audit").record(started.elapsed().as_secs_f64());
    Ok(Json(Fresh {
        data: entries,
        freshness,
        stale,
        generation: models.generation.clone(),
    }))
}

/// Everything an actor did in the tenant, across streams, in time order.
async fn activity<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<ActivityEntry>>>, ApiError> {
    let started = std::time::Instant::now();
    state.principal(&tenant, &headers)?;
    path_id("actor_id", &id)?;
    let kind: ActorKind =
        serde_json::from_value(serde_json::Value::String(kind)).map_err(|_| ApiError::BadParameter {
            name: "actor_kind",
            reason: "expected human, agent, service or system".into(),
        })?;
    let models = state.models();
    let (freshness, stale) = wait_for(&models.checkpoints, ACTIVITY, &consistency, state.max_wait).await?;
    let actor = Actor { kind, id };
    let entries = models
        .trails
        .activity(&tenant, &actor)
        .await
        .map_err(|error| ApiError::Internal(format!("{error:#}")))?;
    if entries.is_empty() {
        return Err(ApiError::NotFound);
    }
    metrics::histogram!("keel_query_seconds", "route" => "activity").record(started.elapsed().as_secs_f64());
    Ok(Json(Fresh {
        data: entries,
        freshness,
        stale,
        generation: models.generation.clone(),
    }))
}

/// The signed certificate of a subject's erasure, as the admin service issued it (check it
/// with `keel admin verify-certificate`). It comes from the admin service's own store, not a
/// projection: it exists once the erasure's transaction committed.
async fn certificate<C>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, subject)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.principal(&tenant, &headers)?;
    // `*` names the erasure of the whole tenant; any other subject is an id.
    if subject != keel_erasure::WHOLE_TENANT {
        path_id("subject", &subject)?;
    }
    let store = state.erasures.as_ref().ok_or(ApiError::NotFound)?;
    let document = store
        .certificate(&tenant, &subject)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let value = serde_json::from_str(&document).map_err(|error| ApiError::Internal(error.to_string()))?;
    Ok(Json(value))
}

/// The API's routes over `state`.
pub fn router<C: Checkpoints>(state: Arc<AppState<C>>) -> Router {
    let routes = Router::new()
        .route(
            "/v1/tenants/{tenant}/projections/{projection}/freshness",
            get(freshness::<C>),
        )
        .route("/v1/tenants/{tenant}/streams/{stream}/audit", get(audit::<C>))
        .route("/v1/tenants/{tenant}/actors/{kind}/{id}/activity", get(activity::<C>))
        .route(
            "/v1/tenants/{tenant}/customers/{customer}",
            get(customers::profile::<C>),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{customer}/subscriptions",
            get(customers::subscriptions::<C>),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{customer}/refunds",
            get(customers::refunds::<C>),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{customer}/emails",
            get(customers::emails::<C>),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{customer}/referrals",
            get(customers::referrals::<C>),
        )
        .route(
            "/v1/tenants/{tenant}/streams/{stream}/verify",
            get(customers::verify::<C>),
        )
        .route(
            "/v1/tenants/{tenant}/streams/{stream}/state",
            get(customers::state_as_of::<C>),
        )
        .route("/v1/tenants/{tenant}/erasures/{subject}", get(certificate::<C>))
        .route(
            "/openapi.json",
            get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .with_state(state);
    contained(routes)
}

/// `router` with panics contained: a handler that panics answers 500 `internal`.
fn contained(router: Router) -> Router {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

/// Follows the serving generation (a rebuild's switch-over swaps the read models within a
/// second) and keeps `/readyz` saying whether the projector's progress is known: every
/// projection served has a checkpoint in the serving generation.
pub async fn follow_generations(
    state: Arc<AppState<CqlCheckpoints>>,
    generations: Generations,
    nodes: Vec<String>,
    keys: Arc<ServiceKeyRing>,
    readiness: Readiness,
) {
    loop {
        match generations.serving().await {
            Ok(serving) if serving != state.models().generation => {
                let session = keel_cql::connect(&nodes, &serving).await.map_err(anyhow::Error::msg);
                match async { ReadModels::connect(&serving, Arc::new(session?), Arc::clone(&keys)).await }.await {
                    Ok(models) => {
                        tracing::info!(
                            from = state.models().generation,
                            to = serving,
                            "switching to the new generation"
                        );
                        state.switch(models);
                    }
                    Err(error) => tracing::warn!(%error, generation = serving, "cannot serve the new generation yet"),
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading the serving generation failed"),
        }
        let models = state.models();
        let mut unknown = Vec::new();
        let mut store_error = None;
        for projection in &state.projections {
            match models
                .checkpoints
                .freshness(projection, keel_service::now_micros())
                .await
            {
                Ok(freshness) if !freshness.partitions.is_empty() => {}
                Ok(_) => unknown.push(projection.clone()),
                Err(error) => {
                    store_error = Some(error.to_string());
                    unknown.push(projection.clone());
                }
            }
        }
        match store_error {
            Some(error) => readiness.set("cql", false, error),
            None => readiness.set("cql", true, "connected"),
        }
        match unknown.as_slice() {
            [] => readiness.set("projector", true, format!("progress known in {}", models.generation)),
            _ => readiness.set("projector", false, format!("no checkpoint yet: {}", unknown.join(", "))),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs the query API until `shutdown` resolves.
pub async fn run(
    config: QueryConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    let tenants = TenantsFile::load(&config.tenants).map_err(anyhow::Error::msg)?;
    let authenticator = tenants.authenticator().map_err(anyhow::Error::msg)?;
    let session = keel_cql::connect(&config.cql_nodes, &config.keyspace)
        .await
        .map_err(anyhow::Error::msg)?;
    let control = Arc::new(session);
    let keys = Arc::new(keel_vault_cql::service_key_ring(&config.keys, &config.cql_nodes, Arc::clone(&control)).await?);
    let generations = Generations::new(Arc::clone(&control), &config.keyspace).await?;
    let erasures = ErasureStore::new(Arc::clone(&control)).await?;
    let serving = generations.serving().await?;
    let session = if serving == config.keyspace {
        control
    } else {
        Arc::new(
            keel_cql::connect(&config.cql_nodes, &serving)
                .await
                .map_err(anyhow::Error::msg)?,
        )
    };
    let models = ReadModels::connect(&serving, session, Arc::clone(&keys)).await?;
    readiness.set("cql", true, "connected");
    let state = Arc::new(
        AppState::new(
            authenticator,
            models,
            config.projections.clone(),
            Duration::from_millis(config.max_wait_ms),
        )
        .with_erasures(erasures),
    );
    tokio::spawn(follow_generations(
        Arc::clone(&state),
        generations,
        config.cql_nodes.clone(),
        keys,
        readiness.clone(),
    ));
    let app = router(state).merge(ops_router(readiness, telemetry::metrics_handle()));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(address = %listener.local_addr()?, "query API listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_route_answers_500_with_a_code_and_the_next_request_is_served()
    -> Result<(), Box<dyn std::error::Error>> {
        let router = contained(Router::new().route(
            "/boom",
            get(|| async {
                let amounts = [i64::MAX, i64::MAX];
                // What summing money with `+` did before: overflow panics in debug builds.
                let total: i64 = amounts
                    .iter()
                    .fold(0_i64, |sum, amount| sum.checked_add(*amount).expect("overflow"));
                total.to_string()
            }),
        ));
        for _ in 0..2 {
            let response = router.clone().oneshot(Request::get("/boom").body(Body::empty())?).await;
            let response = response.map_err(|never| match never {})?;
            assert_eq!(response.status(), 500);
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await?;
            let body: serde_json::Value = serde_json::from_slice(&body)?;
            assert_eq!(body["error"]["code"], "internal", "{body}");
        }
        Ok(())
    }
}
