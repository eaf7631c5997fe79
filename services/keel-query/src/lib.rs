//! Keel's query API, a runtime: it serves any domain's read routes.
//!
//! HTTP/JSON, read-only, over the projections the projector keeps in the CQL store. Every
//! route is under `/v1/tenants/{tenant}/` and needs a bearer token of that tenant (the same
//! JWTs as commands, `keel-auth`): a token of another tenant does not verify, and the answer
//! does not say whether anything exists there. Every answer carries its freshness and
//! honours read-your-writes (`fresh.rs`). Errors map to statuses and machine-readable codes
//! in one table (`error.rs`). `/openapi.json` describes the API, generated from the routes'
//! own types ([`openapi()`]: the runtime's routes, the ops routes and the domain's);
//! `/healthz`, `/readyz` and `/metrics` are served beside it.
//!
//! A domain plugs in as a [`ReadSide`]: its read handles over its projections and its
//! routes. Its routes start with [`AppState::begin`] (the credential, the id, the freshness
//! the client asked for), open personal fields with [`Reading::open`] (or the erased marker)
//! and answer with [`Reading::answer`]; it describes them for the OpenAPI document with
//! [`ReadSide::openapi`]. The runtime serves, for any domain
//! ([`streams`]): a stream's audit trail, an actor's activity trail, each projection's
//! freshness, chain verification, a stream's state as of a version or a time (folded by the
//! domain's aggregate) and erasure certificates.

pub mod access;
mod error;
mod fields;
pub mod fresh;
mod openapi;
pub mod reads;
pub mod streams;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use keel_auth::{Authenticator, Principal, TenantsFile};
use keel_checkpoints::{Checkpoints, CqlCheckpoints, Freshness, Generations};
use keel_codec::EventCodec;
use keel_domain::{Aggregate, WireSchemas};
use keel_erasure::ErasureStore;
use keel_projection::StoredField;
use keel_service::telemetry::{self, TelemetryArgs};
use keel_service::{Readiness, ops_router};
use keel_trails::{StreamLog, Trails};
use keel_vault_cql::ServiceKeyRing;
use scylla::client::session::Session;
use serde::de::DeserializeOwned;

pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail, LookupErrors, ReadErrors, ScopedErrors};
pub use fields::{Fields, Personal};
use fresh::{Consistency, Fresh, wait_for};
pub use openapi::{BEARER, OPS_TAG, RUNTIME_TAG, openapi};
pub use reads::{PRIVACY_SCOPE, PURPOSE_HEADER, ReadPolicy, Reader};

/// The read models the runtime keeps for every domain, as checkpoints name them.
pub const RUNTIME_PROJECTIONS: [&str; 3] = [keel_trails::AUDIT, keel_trails::ACTIVITY, keel_trails::STREAM_EVENTS];

/// What a domain plugs into the query runtime: its read handles and its routes.
pub trait ReadSide: Sized + Send + Sync + 'static {
    /// The aggregate whose streams `/streams/{stream}/state` folds, and whose schemas open
    /// the domain's events and personal fields.
    type Aggregate: Aggregate<Event: DeserializeOwned> + WireSchemas;

    /// The domain's projections, as checkpoints name them (e.g. `refunds.v1`): freshness and
    /// readiness are reported for them.
    const PROJECTIONS: &'static [&'static str];

    /// The domain's read handles over its tables in `session`'s keyspace (one generation).
    fn connect(session: Arc<Session>) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// The domain's routes, paths under `/v1/tenants/{tenant}/`, over the runtime's state.
    fn routes<C: Checkpoints>() -> Router<Arc<AppState<C, Self>>>;

    /// The domain's routes in the OpenAPI document: usually `#[derive(utoipa::OpenApi)]` over
    /// their `#[utoipa::path]`s, each answering `Fresh<…>` or [`ReadErrors`] and requiring
    /// [`BEARER`]. The runtime merges it into its own ([`openapi()`]). By default: none.
    fn openapi() -> utoipa::openapi::OpenApi {
        utoipa::openapi::OpenApi::default()
    }
}

/// Every projection a query API of `D` serves: the runtime's, then the domain's.
pub fn projection_names<D: ReadSide>() -> Vec<String> {
    RUNTIME_PROJECTIONS
        .iter()
        .chain(D::PROJECTIONS)
        .map(|name| (*name).to_owned())
        .collect()
}

/// Configuration of the query API.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryConfig {
    /// Keyspace of the projections.
    #[command(flatten)]
    pub cql: keel_cql::CqlArgs,
    /// Tenants file (credential keys per tenant).
    #[arg(long, env = "KEEL_TENANTS")]
    pub tenants: PathBuf,
    /// The projections this API serves, with their table version (e.g. `refunds.v1`); by
    /// default the runtime's and every one of the domain's.
    #[arg(long, env = "KEEL_QUERY_PROJECTIONS", value_delimiter = ',')]
    pub projections: Vec<String>,
    /// Where the keys that open personal fields are.
    #[command(flatten)]
    pub keys: keel_vault_cql::KeyArgs,
    /// Longest read-your-writes wait a client may ask for, in ms.
    #[arg(long, env = "KEEL_QUERY_MAX_WAIT_MS", default_value_t = 5_000)]
    pub max_wait_ms: u64,
}

/// Everything `keel-query` takes, as flags or `KEEL_*` variables (`--help` lists them).
#[derive(Debug, clap::Parser)]
#[command(name = "keel-query", about = "Keel's query API", version)]
pub struct Cli {
    /// Address to serve the API (and /healthz, /readyz, /metrics) on.
    #[arg(long, env = "KEEL_QUERY_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The service's configuration.
    #[command(flatten)]
    pub config: QueryConfig,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Cli {
    /// Serves domain `D`'s query API until SIGTERM or Ctrl-C, then exports the spans still
    /// buffered (a no-op without an OTLP endpoint).
    pub async fn run<D: ReadSide>(self) -> anyhow::Result<()> {
        let telemetry = telemetry::init("keel-query", &self.telemetry, "info")?;
        let outcome = match tokio::net::TcpListener::bind(self.addr).await {
            Ok(listener) => run::<D>(self.config, listener, keel_service::shutdown_signal()).await,
            Err(error) => Err(anyhow::Error::new(error).context(format!("binding {}", self.addr))),
        };
        telemetry.shutdown();
        outcome
    }
}

/// One generation of the projections: the tables of one keyspace.
pub struct ReadModels<C, D> {
    /// The keyspace.
    pub generation: String,
    /// Projection checkpoints, for freshness.
    pub checkpoints: C,
    /// The audit and activity trails.
    pub trails: Trails,
    /// Every stream's sealed events and the erased subjects.
    pub log: StreamLog,
    /// Opens personal fields.
    pub fields: Fields,
    /// The domain's read handles.
    pub domain: D,
}

impl<D: ReadSide> ReadModels<CqlCheckpoints, D> {
    /// The read models of `generation` (a keyspace on `session`), opened with `keys`.
    pub async fn connect(generation: &str, session: Arc<Session>, keys: Arc<ServiceKeyRing>) -> anyhow::Result<Self> {
        let codec = EventCodec::new::<D::Aggregate>(keys, keel_envelope::Upcasters::new())?;
        keel_projection::create_types(&session).await?;
        Ok(Self {
            generation: generation.to_owned(),
            trails: Trails::new(Arc::clone(&session)).await?,
            log: StreamLog::new(Arc::clone(&session)).await?,
            fields: Fields::new(codec),
            domain: D::connect(Arc::clone(&session)).await?,
            checkpoints: CqlCheckpoints::new(session).await?,
        })
    }
}

impl<C, D> ReadModels<C, D> {
    /// The same read models, with freshness from `checkpoints`.
    pub fn with_checkpoints<C2>(self, checkpoints: C2) -> ReadModels<C2, D> {
        ReadModels {
            generation: self.generation,
            checkpoints,
            trails: self.trails,
            log: self.log,
            fields: self.fields,
            domain: self.domain,
        }
    }
}

/// What every request handler shares.
pub struct AppState<C, D> {
    /// Verifies bearer tokens per tenant.
    pub authenticator: Authenticator,
    /// The serving generation's read models; a rebuild's switch-over replaces them.
    pub models: RwLock<Arc<ReadModels<C, D>>>,
    /// The projections served.
    pub projections: Vec<String>,
    /// The longest read-your-writes wait.
    pub max_wait: Duration,
    /// Erasure certificates, kept by the admin service in the control keyspace.
    pub erasures: Option<ErasureStore>,
    /// Who sees which personal fields, and the access log; without it every personal field
    /// is redacted.
    pub reads: Option<ReadPolicy>,
}

impl<C, D> AppState<C, D> {
    /// State serving `models`.
    pub fn new(
        authenticator: Authenticator,
        models: ReadModels<C, D>,
        projections: Vec<String>,
        max_wait: Duration,
    ) -> Self {
        Self {
            authenticator,
            models: RwLock::new(Arc::new(models)),
            projections,
            max_wait,
            erasures: None,
            reads: None,
        }
    }

    /// Shows personal fields as `reads` allows, recording each in its access log.
    #[must_use]
    pub fn with_read_policy(mut self, reads: ReadPolicy) -> Self {
        self.reads = Some(reads);
        self
    }

    /// The reader of a request whose credential verified as `principal`.
    pub fn reader(&self, principal: Principal, headers: &HeaderMap) -> Result<Reader, ApiError> {
        match &self.reads {
            Some(reads) => reads.reader(principal, headers),
            None => Reader::without_policy(principal, headers),
        }
    }

    /// Serves erasure certificates from `store` too.
    #[must_use]
    pub fn with_erasures(mut self, store: ErasureStore) -> Self {
        self.erasures = Some(store);
        self
    }

    /// The serving generation's read models.
    pub fn models(&self) -> Arc<ReadModels<C, D>> {
        Arc::clone(&self.models.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Serves `models` from now on.
    pub fn switch(&self, models: ReadModels<C, D>) {
        *self.models.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(models);
    }

    /// The principal of the request's bearer token, if it verifies for `tenant`.
    pub fn principal(&self, tenant: &str, headers: &HeaderMap) -> Result<Principal, ApiError> {
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

impl<C: Checkpoints, D> AppState<C, D> {
    /// The prologue of a read route: the token verifies for `tenant`, the path id `name` is
    /// an id, and `projection` is as fresh as the client asked (`consistency`).
    pub async fn begin(
        &self,
        headers: &HeaderMap,
        (tenant, name, id): (&str, &'static str, &str),
        projection: &str,
        consistency: &Consistency,
    ) -> Result<Reading<C, D>, ApiError> {
        let principal = self.principal(tenant, headers)?;
        path_id(name, id)?;
        let reader = self.reader(principal, headers)?;
        self.read(projection, consistency, reader).await
    }

    /// [`Self::begin`] for a route over the whole tenant, with no path id of its own (a
    /// day's totals, say).
    pub async fn begin_tenant_wide(
        &self,
        headers: &HeaderMap,
        tenant: &str,
        projection: &str,
        consistency: &Consistency,
    ) -> Result<Reading<C, D>, ApiError> {
        path_id("tenant", tenant)?;
        let principal = self.principal(tenant, headers)?;
        let reader = self.reader(principal, headers)?;
        self.read(projection, consistency, reader).await
    }

    /// The serving read models once `projection` is as fresh as `consistency` asks.
    async fn read(
        &self,
        projection: &str,
        consistency: &Consistency,
        reader: Reader,
    ) -> Result<Reading<C, D>, ApiError> {
        let started = Instant::now();
        let models = self.models();
        let (freshness, stale) = wait_for(&models.checkpoints, projection, consistency, self.max_wait).await?;
        Ok(Reading {
            models,
            freshness,
            stale,
            reader,
            started,
        })
    }
}

/// A read under way: the read models it reads and how fresh they are.
pub struct Reading<C, D> {
    /// The serving generation's read models.
    pub models: Arc<ReadModels<C, D>>,
    /// The freshness of the projection read.
    pub freshness: Freshness,
    /// Whether the client accepted an answer staler than it asked.
    pub stale: bool,
    /// Who reads, for what, under which read rules.
    pub reader: Reader,
    started: Instant,
}

impl<C, D> Reading<C, D> {
    /// The domain's read handles.
    pub fn domain(&self) -> &D {
        &self.models.domain
    }

    /// Opens a stored personal field of `tenant`'s `stream` for this reader: its value when
    /// a read rule of the tenant's policy shows it to the reader (recorded in the access log
    /// first), the redacted marker when none does, the erased marker once its subject is
    /// erased, or `None` when nothing is stored.
    pub async fn open(
        &self,
        tenant: &str,
        stream: &str,
        field: Option<&StoredField>,
    ) -> Result<Option<Personal>, ApiError> {
        let Some(field) = field else { return Ok(None) };
        let (Some(authorization), Some(access)) = (self.reader.may_see(&field.path), &self.reader.access) else {
            metrics::counter!("keel_query_personal_fields_total", "shown" => "redacted").increment(1);
            return Ok(Some(Personal::redacted()));
        };
        let Some(opened) = self
            .models
            .fields
            .open(&self.models.log, tenant, stream, Some(field))
            .await?
        else {
            return Ok(None);
        };
        if !opened.erased {
            let principal = &self.reader.principal;
            let record = keel_trails::Access {
                at_micros: keel_service::now_micros(),
                access_id: uuid::Uuid::new_v4(),
                actor: principal.actor.clone(),
                on_behalf_of: principal.on_behalf_of.clone(),
                subject: field.subject_id.clone(),
                stream: stream.to_owned(),
                field: field.path.clone(),
                purpose: self.reader.purpose.clone(),
                authorization,
            };
            // Nothing is shown that is not recorded.
            access.record(tenant, &record).await.map_err(ApiError::internal)?;
        }
        Ok(Some(opened))
    }

    /// The answer: `data` with its freshness; the route's latency is recorded as `route`.
    pub fn answer<T>(self, route: &'static str, data: T) -> Json<Fresh<T>> {
        metrics::histogram!("keel_query_seconds", "route" => route).record(self.started.elapsed().as_secs_f64());
        Json(Fresh {
            data,
            freshness: self.freshness,
            stale: self.stale,
            generation: self.models.generation.clone(),
        })
    }
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
pub fn path_id(name: &'static str, value: &str) -> Result<(), ApiError> {
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

/// The API's routes over `state`: the runtime's, the domain's and `/openapi.json` (its
/// document built once, here).
pub fn router<C: Checkpoints, D: ReadSide>(state: Arc<AppState<C, D>>) -> Router {
    let routes = Router::new()
        .route(
            "/v1/tenants/{tenant}/projections/{projection}/freshness",
            get(streams::freshness::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/streams/{stream}/audit",
            get(streams::audit::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/actors/{kind}/{id}/activity",
            get(streams::activity::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/streams/{stream}/verify",
            get(streams::verify::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/streams/{stream}/state",
            get(streams::state_as_of::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/access/subjects/{subject}",
            get(access::of_subject::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/access/actors/{kind}/{id}",
            get(access::of_actor::<C, D>),
        )
        .route(
            "/v1/tenants/{tenant}/erasures/{subject}",
            get(streams::certificate::<C, D>),
        )
        .merge(D::routes::<C>())
        .route("/openapi.json", openapi::route::<D, _>())
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
pub async fn follow_generations<D: ReadSide>(
    state: Arc<AppState<CqlCheckpoints, D>>,
    generations: Generations,
    nodes: Vec<String>,
    keys: Arc<ServiceKeyRing>,
    readiness: Readiness,
) {
    loop {
        match generations.serving().await {
            Ok(serving) if serving != state.models().generation => {
                let session = keel_cql::connect(&nodes, &serving).await.map_err(anyhow::Error::msg);
                match async { ReadModels::<_, D>::connect(&serving, Arc::new(session?), Arc::clone(&keys)).await }.await
                {
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

/// Serves domain `D`'s query API on `listener` until `shutdown` resolves: what the binary
/// runs, and what a test runs on `127.0.0.1:0`.
pub async fn run<D: ReadSide>(
    config: QueryConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    let tenants = TenantsFile::load(&config.tenants).map_err(anyhow::Error::msg)?;
    let authenticator = tenants.authenticator().map_err(anyhow::Error::msg)?;
    let session = config.cql.connect().await.map_err(anyhow::Error::msg)?;
    let control = Arc::new(session);
    let keys = Arc::new(keel_vault_cql::service_key_ring(&config.keys, &config.cql.nodes, Arc::clone(&control)).await?);
    let generations = Generations::new(Arc::clone(&control), &config.cql.keyspace).await?;
    let erasures = ErasureStore::new(Arc::clone(&control)).await?;
    // The access log lives in the control keyspace: no rebuild of the projections drops it.
    let reads = ReadPolicy::new(
        tenants.policies(),
        keel_trails::AccessLog::new(Arc::clone(&control)).await?,
    );
    let serving = generations.serving().await?;
    let session = if serving == config.cql.keyspace {
        control
    } else {
        Arc::new(
            keel_cql::connect(&config.cql.nodes, &serving)
                .await
                .map_err(anyhow::Error::msg)?,
        )
    };
    let models = ReadModels::<_, D>::connect(&serving, session, Arc::clone(&keys)).await?;
    readiness.set("cql", true, "connected");
    let projections = match config.projections {
        served if served.is_empty() => projection_names::<D>(),
        served => served,
    };
    let state = Arc::new(
        AppState::new(
            authenticator,
            models,
            projections,
            Duration::from_millis(config.max_wait_ms),
        )
        .with_erasures(erasures)
        .with_read_policy(reads),
    );
    tokio::spawn(follow_generations(
        Arc::clone(&state),
        generations,
        config.cql.nodes.clone(),
        keys,
        readiness.clone(),
    ));
    let app = router(state).merge(ops_router(readiness, telemetry::metrics_handle()));
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
