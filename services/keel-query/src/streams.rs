//! The routes every domain gets: a stream's audit trail, an actor's activity, a projection's
//! freshness, a stream's chain verification and its state as of a version or a time (folded
//! by the domain's aggregate), and erasure certificates. Each handler's `#[utoipa::path]`
//! describes it in the OpenAPI document (`crate::openapi`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use keel_auth::{Actor, ActorKind};
use keel_chain::{BreakKind, Verdict, verify_stream};
use keel_checkpoints::Checkpoints;
use keel_domain::{Aggregate, Recorded};
use keel_envelope::EventEnvelope;
use keel_trails::{ACTIVITY, AUDIT, ActivityEntry, AuditEntry, STREAM_EVENTS};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{LookupErrors, ReadErrors};
use crate::fresh::{Consistency, Fresh};
use crate::openapi::{RUNTIME_TAG, SignedCertificate};
use crate::{ApiError, AppState, Params, ReadModels, ReadSide, path_id};

/// What `/projections/{projection}/freshness` answers as data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionFreshness {
    /// The projection, as checkpoints name it.
    pub projection: String,
}

/// `GET /v1/tenants/{tenant}/projections/{projection}/freshness`
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/projections/{projection}/freshness",
    tag = RUNTIME_TAG,
    summary = "How fresh a projection is",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("projection" = String, Path, description = "A projection and table version, e.g. `customer_profiles.v1`."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The projection's freshness.", body = Fresh<ProjectionFreshness>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn freshness<C: Checkpoints, D: ReadSide>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, projection)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<ProjectionFreshness>>, ApiError> {
    let principal = state.principal(&tenant, &headers)?;
    if !state.projections.contains(&projection) {
        return Err(ApiError::NotFound);
    }
    let reading = state
        .read(&projection, &consistency, state.reader(principal, &headers)?)
        .await?;
    Ok(reading.answer("freshness", ProjectionFreshness { projection }))
}

/// `GET /v1/tenants/{tenant}/streams/{stream}/audit`: who did what, in what order, on whose
/// behalf, allowed by which rule, with the chain hashes that prove it.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/streams/{stream}/audit",
    tag = RUNTIME_TAG,
    summary = "A stream's audit trail, in version order (404 when the stream has no events)",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("stream" = String, Path, description = "The stream (e.g. a customer id, or `keel.erasure:<subject>`)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The stream's audit trail.", body = Fresh<Vec<AuditEntry>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn audit<C: Checkpoints, D: ReadSide>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, stream)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<AuditEntry>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "stream", &stream), AUDIT, &consistency)
        .await?;
    let entries = reading
        .models
        .trails
        .audit(&tenant, &stream)
        .await
        .map_err(|error| ApiError::Internal(format!("{error:#}")))?;
    if entries.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(reading.answer("audit", entries))
}

/// `GET /v1/tenants/{tenant}/actors/{kind}/{id}/activity`: everything an actor did in the
/// tenant, across streams, in time order.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/actors/{kind}/{id}/activity",
    tag = RUNTIME_TAG,
    summary = "Everything an actor did in the tenant, across streams, in time order (404 when nothing)",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("kind" = ActorKind, Path, description = "The actor's kind."),
        ("id" = String, Path, description = "The actor's id within the tenant."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The actor's activity trail.", body = Fresh<Vec<ActivityEntry>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn activity<C: Checkpoints, D: ReadSide>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<ActivityEntry>>>, ApiError> {
    let principal = state.principal(&tenant, &headers)?;
    let actor = actor_of(kind, id)?;
    let reading = state
        .read(ACTIVITY, &consistency, state.reader(principal, &headers)?)
        .await?;
    let entries = reading
        .models
        .trails
        .activity(&tenant, &actor)
        .await
        .map_err(|error| ApiError::Internal(format!("{error:#}")))?;
    if entries.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(reading.answer("activity", entries))
}

/// The actor a path names by kind and id, both checked.
pub(crate) fn actor_of(kind: String, id: String) -> Result<Actor, ApiError> {
    path_id("actor_id", &id)?;
    let kind: ActorKind =
        serde_json::from_value(serde_json::Value::String(kind)).map_err(|_| ApiError::BadParameter {
            name: "actor_kind",
            reason: "expected human, agent, service or system".into(),
        })?;
    Ok(Actor { kind, id })
}

/// `GET /v1/tenants/{tenant}/erasures/{subject}`: the signed certificate of a subject's
/// erasure, as the admin service issued it (check it with `keel admin verify-certificate`).
/// It comes from the admin service's own store, not a projection: it exists once the
/// erasure's transaction committed.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/erasures/{subject}",
    tag = RUNTIME_TAG,
    summary = "The signed certificate of a subject's erasure",
    description = "As the admin service issued it once the erasure committed. Check it with \
        `keel admin verify-certificate`; the signature covers the canonical JSON (sorted keys, \
        no whitespace) of `certificate`. Not a projection: no freshness, no read-your-writes.",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("subject" = String, Path, description = "The erased subject; `*` for the erasure of the whole tenant."),
    ),
    responses(
        (status = 200, description = "The signed certificate.", body = SignedCertificate),
        LookupErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn certificate<C, D>(
    State(state): State<Arc<AppState<C, D>>>,
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
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let value = serde_json::from_str(&document).map_err(ApiError::internal)?;
    Ok(Json(value))
}

/// A stream's events as the log holds them (payloads sealed), in version order.
async fn stream_events<C, D: ReadSide>(
    models: &ReadModels<C, D>,
    tenant: &str,
    stream: &str,
) -> Result<Vec<EventEnvelope>, ApiError> {
    let stored = models.log.events(tenant, stream).await.map_err(ApiError::internal)?;
    if stored.is_empty() {
        return Err(ApiError::NotFound);
    }
    stored
        .iter()
        .map(|event| {
            models
                .fields
                .codec()
                .wire()
                .read_event(&event.envelope)
                .map_err(ApiError::internal)
        })
        .collect()
}

/// The outcome of walking a stream's chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// Intact, or broken at `version`.
    pub verdict: ChainVerdict,
    /// Intact: the last version. Broken: the version expected at the first broken link.
    pub version: i64,
    /// Intact: the head hash, hex.
    pub head: Option<String>,
    /// Broken: what the break shows.
    pub break_kind: Option<BrokenLink>,
    /// Broken: the event found there.
    pub event_id: Option<String>,
}

/// Whether a stream's chain verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainVerdict {
    /// Every hash recomputes.
    Intact,
    /// A link does not.
    Broken,
}

/// What the first broken link of a chain shows.
// `keel_chain::BreakKind` as answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokenLink {
    /// The event's content no longer matches its hash.
    Edited,
    /// A version is missing: an event was removed.
    Removed,
    /// Events are out of order.
    Reordered,
    /// An event that does not belong: a repeated version, or one not linked to its predecessor.
    Inserted,
    /// The stream ends before a signed checkpoint's version.
    TruncatedTail,
    /// The chain is self-consistent but disagrees with a signed checkpoint: it was rewritten.
    Rewritten,
}

impl From<BreakKind> for BrokenLink {
    fn from(kind: BreakKind) -> Self {
        match kind {
            BreakKind::Edited => Self::Edited,
            BreakKind::Removed => Self::Removed,
            BreakKind::Reordered => Self::Reordered,
            BreakKind::Inserted => Self::Inserted,
            BreakKind::TruncatedTail => Self::TruncatedTail,
            BreakKind::Rewritten => Self::Rewritten,
        }
    }
}

/// `GET /v1/tenants/{tenant}/streams/{stream}/verify`: recomputes every hash of the stream
/// from its sealed events (no key needed: chains cover ciphertext, so they verify after
/// erasure too) and reports intact or the first broken link.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/streams/{stream}/verify",
    tag = RUNTIME_TAG,
    summary = "Recomputes a stream's hash chain from its sealed events: intact, or the first broken link",
    description = "Needs no key, so it holds after erasure.",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("stream" = String, Path, description = "The stream."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The verdict.", body = Fresh<Verification>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn verify<C: Checkpoints, D: ReadSide>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, stream)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Verification>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "stream", &stream), STREAM_EVENTS, &consistency)
        .await?;
    let events = stream_events(&reading.models, &tenant, &stream).await?;
    let verdict = verify_stream(reading.models.fields.codec().hasher(), &events, None).map_err(ApiError::internal)?;
    let data = match verdict {
        Verdict::Intact { version, head } => Verification {
            verdict: ChainVerdict::Intact,
            version,
            head: Some(hex::encode(head)),
            break_kind: None,
            event_id: None,
        },
        Verdict::Broken(broken) => {
            metrics::counter!("keel_chain_verification_failures_total").increment(1);
            tracing::warn!(tenant, stream, version = broken.version, kind = ?broken.kind, "chain broken");
            Verification {
                verdict: ChainVerdict::Broken,
                version: broken.version,
                head: None,
                break_kind: Some(broken.kind.into()),
                event_id: broken.event_id,
            }
        }
    };
    Ok(reading.answer("verify", data))
}

/// Parameters of a temporal query, with the read-your-writes ones of [`Consistency`].
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOf {
    /// Fold events up to this version (without it or `at_micros`: the current state).
    pub version: Option<u64>,
    /// Fold events recorded at or before this time, µs since the Unix epoch.
    pub at_micros: Option<i64>,
    /// Read-your-writes: `<partition>:<offset>` from a command result; wait until the
    /// stream's events have been applied up to it.
    #[param(pattern = r"^[0-9]+:[0-9]+$")]
    pub after: Option<String>,
    /// How long to wait for `after`, in ms (capped by the server).
    pub wait_ms: Option<u64>,
    /// If the wait runs out: `fail` (503 with the freshness, the default) or `stale` (the
    /// data, marked stale).
    #[param(value_type = Option<crate::fresh::OnTimeout>, inline)]
    pub on_timeout: Option<String>,
}

/// A stream's state at a point of its history.
// The document describes `state` as an object whatever the domain's state type: `S` needs no
// schema of its own, and defaults to JSON so that `#[utoipa::path]` can name `StateAsOf`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(bound = "")]
pub struct StateAsOf<S = serde_json::Value> {
    /// The last version folded in (0: the stream had not started).
    pub version: u64,
    /// When that event was recorded, µs since the Unix epoch.
    pub recorded_at_micros: Option<i64>,
    /// The folded state (the domain's decision state: ids, statuses, amounts; no personal
    /// data).
    #[schema(value_type = Object)]
    pub state: S,
}

/// `GET /v1/tenants/{tenant}/streams/{stream}/state?version=N` or `?at_micros=T`: the
/// stream's state folded by the domain's aggregate from its events up to that version or
/// time.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/streams/{stream}/state",
    tag = RUNTIME_TAG,
    summary = "A stream's state as of a version or a time, folded from its events",
    description = "Folded by the domain's aggregate; without `version` or `at_micros`: the current state.",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("stream" = String, Path, description = "The stream."),
        AsOf,
    ),
    responses(
        (status = 200, description = "The folded state.", body = Fresh<StateAsOf>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn state_as_of<C: Checkpoints, D: ReadSide>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, stream)): Path<(String, String)>,
    Params(as_of): Params<AsOf>,
    headers: HeaderMap,
) -> Result<Json<Fresh<StateAsOf<<D::Aggregate as Aggregate>::State>>>, ApiError> {
    let consistency = Consistency {
        after: as_of.after,
        wait_ms: as_of.wait_ms,
        on_timeout: as_of.on_timeout,
    };
    let reading = state
        .begin(&headers, (&tenant, "stream", &stream), STREAM_EVENTS, &consistency)
        .await?;
    let events = stream_events(&reading.models, &tenant, &stream).await?;
    let mut folded = StateAsOf {
        version: 0,
        recorded_at_micros: None,
        state: <D::Aggregate as Aggregate>::State::default(),
    };
    for envelope in events {
        let version = u64::try_from(envelope.stream_version).map_err(ApiError::internal)?;
        if as_of.version.is_some_and(|limit| version > limit)
            || as_of.at_micros.is_some_and(|limit| envelope.recorded_at > limit)
        {
            break;
        }
        if keel_erasure::is_system_schema(&envelope.payload.schema_name) {
            continue;
        }
        let recorded_at = envelope.recorded_at;
        let opened = reading
            .models
            .fields
            .codec()
            // Decision state holds no personal data: the fields stay sealed.
            .open_event_payload::<<D::Aggregate as Aggregate>::Event>(envelope)
            .await
            .map_err(ApiError::internal)?;
        let recorded = Recorded {
            event_id: opened.envelope.event_id.parse().map_err(ApiError::internal)?,
            version,
        };
        folded.state = D::Aggregate::apply(folded.state, &opened.event, &recorded);
        folded.version = version;
        folded.recorded_at_micros = Some(recorded_at);
    }
    Ok(reading.answer("state", folded))
}
