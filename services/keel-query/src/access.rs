//! The access log's routes: who saw a data subject's personal data (the subject's access
//! report, GDPR art. 15), and whose data an actor saw on a day (the records of processing,
//! art. 30). Only a credential granting [`PRIVACY_SCOPE`] reads them. The log is written
//! before a field is shown, not projected: no freshness, always current.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use keel_auth::ActorKind;
use keel_trails::Access;
use serde::{Deserialize, Serialize};

use crate::openapi::RUNTIME_TAG;
use crate::{ApiError, AppState, PRIVACY_SCOPE, Params, ScopedErrors, path_id};

/// The most accesses one answer lists.
const MAX_LIMIT: i32 = 1_000;

/// Accesses, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessReport {
    /// The accesses, newest first.
    pub data: Vec<Access>,
}

/// How many accesses, and of which day.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    /// At most this many (default and cap 1,000), newest first.
    pub limit: Option<i32>,
    /// The day (UTC, `YYYY-MM-DD`) of an actor's accesses; default today.
    pub day: Option<String>,
}

impl AccessQuery {
    fn limit(&self) -> Result<i32, ApiError> {
        match self.limit {
            None => Ok(MAX_LIMIT),
            Some(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::BadParameter {
                name: "limit",
                reason: format!("between 1 and {MAX_LIMIT}"),
            }),
        }
    }
}

/// The tenant's access log, for a credential of the tenant that grants [`PRIVACY_SCOPE`].
fn access_log<C, D>(
    state: &AppState<C, D>,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<Arc<keel_trails::AccessLog>, ApiError> {
    path_id("tenant", tenant)?;
    let principal = state.principal(tenant, headers)?;
    if !principal.scopes.iter().any(|scope| scope == PRIVACY_SCOPE) {
        tracing::info!(tenant, actor = %principal.actor.id, "access log refused: no privacy scope");
        return Err(ApiError::Forbidden(PRIVACY_SCOPE));
    }
    let reads = state.reads.as_ref().ok_or(ApiError::NotFound)?;
    Ok(Arc::clone(&reads.access))
}

/// `GET /v1/tenants/{tenant}/access/subjects/{subject}`: who saw this subject's data.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/access/subjects/{subject}",
    tag = RUNTIME_TAG,
    summary = "Who saw a data subject's personal fields in clear: the subject's access report",
    description = "One entry per field shown: when, which actor on whose behalf, from which stream, \
        for which stated purpose, allowed by which read rule. Needs a credential granting `keel:privacy`. \
        The log holds no personal data and outlives the subject's erasure.",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("subject" = String, Path, description = "The data subject."),
        AccessQuery,
    ),
    responses(
        (status = 200, description = "The accesses, newest first.", body = AccessReport),
        ScopedErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn of_subject<C, D>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, subject)): Path<(String, String)>,
    Params(query): Params<AccessQuery>,
    headers: HeaderMap,
) -> Result<Json<AccessReport>, ApiError> {
    let log = access_log(&state, &tenant, &headers)?;
    path_id("subject", &subject)?;
    let data = log
        .of_subject(&tenant, &subject, query.limit()?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(AccessReport { data }))
}

/// `GET /v1/tenants/{tenant}/access/actors/{kind}/{id}`: whose data an actor saw on a day.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/access/actors/{kind}/{id}",
    tag = RUNTIME_TAG,
    summary = "Whose personal fields an actor saw in clear on a day: the records of processing",
    description = "One entry per field shown, newest first, for one UTC day (`day`, default today). \
        Needs a credential granting `keel:privacy`.",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("kind" = ActorKind, Path, description = "The actor's kind."),
        ("id" = String, Path, description = "The actor's id within the tenant."),
        AccessQuery,
    ),
    responses(
        (status = 200, description = "The accesses, newest first.", body = AccessReport),
        ScopedErrors,
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn of_actor<C, D>(
    State(state): State<Arc<AppState<C, D>>>,
    Path((tenant, kind, id)): Path<(String, String, String)>,
    Params(query): Params<AccessQuery>,
    headers: HeaderMap,
) -> Result<Json<AccessReport>, ApiError> {
    let log = access_log(&state, &tenant, &headers)?;
    let actor = crate::streams::actor_of(kind, id)?;
    let day = match &query.day {
        None => keel_trails::day_of(keel_service::now_micros()),
        Some(day) if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() => day.clone(),
        Some(_) => {
            return Err(ApiError::BadParameter {
                name: "day",
                reason: "expected a date YYYY-MM-DD".into(),
            });
        }
    };
    let data = log
        .of_actor(&tenant, &actor, &day, query.limit()?)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(AccessReport { data }))
}
