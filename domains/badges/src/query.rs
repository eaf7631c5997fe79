//! The badges domain's read route, served by Keel's query API through [`ReadSide`]:
//! `GET /v1/tenants/{tenant}/badges/{badge}`, the badge as it stands with the visitor's
//! name opened per request, or `{"erased": true, "value": null}` once the visitor is
//! erased. The runtime serves every other route for this domain as for any other.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use keel_checkpoints::Checkpoints;
use keel_projection::Projections;
use keel_query::fresh::{Consistency, Fresh};
use keel_query::{ApiError, AppState, Params, Personal, ReadErrors, ReadSide};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{BADGES, Badge, BadgeProjections, BadgeRow};

/// The tag of this domain's routes in the OpenAPI document.
const TAG: &str = "badges";

/// The domain's routes in the OpenAPI document; the runtime merges them into its own.
#[derive(OpenApi)]
#[openapi(
    paths(badge),
    tags((name = TAG, description = "Visitor badges as they stand, the visitor's name opened or erased.")),
)]
pub struct BadgesApi;

/// The badges domain's read side: a prepared read of `badges_v1`.
pub struct BadgeReads {
    session: Arc<Session>,
    select_badge: PreparedStatement,
}

impl ReadSide for BadgeReads {
    type Aggregate = Badge;

    const PROJECTIONS: &'static [&'static str] = &[BADGES];

    async fn connect(session: Arc<Session>) -> anyhow::Result<Self> {
        // The table may not exist yet if the query API starts before the projector.
        keel_cql::apply_schema(&session, BadgeProjections::SCHEMA).await?;
        let select_badge = session.prepare(include_str!("cql/select_badge.cql")).await?;
        Ok(Self { session, select_badge })
    }

    fn routes<C: Checkpoints>() -> Router<Arc<AppState<C, Self>>> {
        Router::new().route("/v1/tenants/{tenant}/badges/{badge}", get(badge::<C>))
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        BadgesApi::openapi()
    }
}

impl BadgeReads {
    /// The badge's row as stored (the visitor's name sealed), if any event reached it.
    pub async fn badge(&self, tenant: &str, badge: &str) -> Result<Option<BadgeRow>, ApiError> {
        let result = self
            .session
            .execute_unpaged(&self.select_badge, (tenant, badge))
            .await
            .map_err(ApiError::internal)?;
        let rows = result.into_rows_result().map_err(ApiError::internal)?;
        rows.maybe_first_row::<BadgeRow>().map_err(ApiError::internal)
    }
}

/// A badge as answered: as it stands, the visitor's name opened (or the erased marker).
#[derive(Debug, Serialize, ToSchema)]
pub struct BadgeView {
    /// The badge.
    pub badge_id: String,
    /// `issued` or `returned`.
    pub status: Option<String>,
    /// The visitor's data-subject id.
    pub visitor_id: Option<String>,
    /// The visitor's name, or `{"erased": true, "value": null}`.
    pub visitor_name: Option<Personal>,
    /// Who issued it.
    pub issued_by: Option<String>,
    /// When issued, µs since the Unix epoch.
    pub issued_at_micros: Option<i64>,
    /// When returned.
    pub returned_at_micros: Option<i64>,
    /// Why it was returned.
    pub return_reason: Option<String>,
    /// The stream version of the last event applied.
    pub version: Option<i64>,
}

type Api<C> = State<Arc<AppState<C, BadgeReads>>>;

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/badges/{badge}",
    tag = TAG,
    summary = "A badge as it stands, with the visitor's name",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("badge" = String, Path, description = "The badge (the stream)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "A badge as it stands, with the visitor's name", body = Fresh<BadgeView>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/tenants/{tenant}/badges/{badge}`
async fn badge<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, badge)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<BadgeView>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "badge", &badge), BADGES, &consistency)
        .await?;
    let row = reading
        .domain()
        .badge(&tenant, &badge)
        .await?
        .ok_or(ApiError::NotFound)?;
    let visitor_name = reading.open(&tenant, &badge, row.visitor_name.as_ref()).await?;
    let view = BadgeView {
        badge_id: row.badge_id,
        status: row.status,
        visitor_id: row.visitor_id,
        visitor_name,
        issued_by: row.issued_by,
        issued_at_micros: row.issued_at_micros,
        returned_at_micros: row.returned_at_micros,
        return_reason: row.return_reason,
        version: row.version,
    };
    Ok(reading.answer("badge", view))
}

#[cfg(test)]
mod tests {
    use super::BadgeReads;

    #[test]
    fn the_openapi_document_has_the_badge_route_beside_the_runtimes() {
        let document = keel_query::openapi::<BadgeReads>();
        for path in [
            "/v1/tenants/{tenant}/badges/{badge}",
            "/v1/tenants/{tenant}/streams/{stream}/verify",
            "/v1/tenants/{tenant}/streams/{stream}/state",
            "/v1/tenants/{tenant}/streams/{stream}/audit",
        ] {
            assert!(document.paths.paths.contains_key(path), "{path} is not in the document");
        }
        let schemas = document.components.map(|c| c.schemas).unwrap_or_default();
        assert!(schemas.contains_key("BadgeView"), "BadgeView is not described");
    }
}
