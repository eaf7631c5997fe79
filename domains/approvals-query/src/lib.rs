//! The approvals domain's read routes, plugged into Keel's query runtime
//! (`keel_query::ReadSide`), written only against Keel's public crates:
//!
//! - `GET /v1/tenants/{tenant}/desks/{desk}/actions`: every action of a desk, as it stands;
//! - `GET /v1/tenants/{tenant}/desks/{desk}/actions/{action}`: one of them;
//! - `GET /v1/tenants/{tenant}/approvers/{approver}/pending`: what waits for an approver;
//! - `GET /v1/tenants/{tenant}/agents/{agent}/actions`: what an agent proposed, and how it
//!   ended;
//! - `GET /v1/tenants/{tenant}/totals/{day}`: what executed and what was reverted on a UTC
//!   day (`YYYY-MM-DD`), by kind.
//!
//! The beneficiary's name and account are opened per request by the runtime, or answered
//! erased once the beneficiary is. The runtime serves the rest for this domain as for any
//! other: audit and activity trails, chain verification, a desk's state as of a version or a
//! time (folded by [`ApprovalDesk`]), freshness and erasure certificates.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use keel_approvals::ApprovalDesk;
use keel_approvals_projections::{
    ACTIONS, AGENT_ACTIONS, ActionRow, AgentActionRow, ApprovalProjections, DAILY_TOTALS, KindTotals, PENDING,
    PendingApprovalRow, UtcDay,
};
use keel_checkpoints::Checkpoints;
use keel_query::fresh::{Consistency, Fresh};
use keel_query::{ApiError, AppState, Params, Personal, ReadErrors, ReadSide, Reading};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

/// The tag of this domain's routes in the OpenAPI document.
pub const TAG: &str = "approvals";

/// The domain's routes in the OpenAPI document; the runtime merges them into its own.
#[derive(OpenApi)]
#[openapi(
    paths(desk_actions, action, pending, agent_actions, totals),
    tags((name = TAG, description = "Actions agents propose on approval desks: as they stand, what waits for an approver, what an agent did, totals per day. The beneficiary's fields opened, or the erased marker.")),
)]
pub struct ApprovalsApi;

/// The approvals domain's read side: its projections' tables.
pub struct ApprovalReads {
    /// The projections' tables.
    pub projections: ApprovalProjections,
}

type Api<C> = State<Arc<AppState<C, ApprovalReads>>>;

impl ReadSide for ApprovalReads {
    type Aggregate = ApprovalDesk;

    const PROJECTIONS: &'static [&'static str] = &keel_approvals_projections::ALL;

    async fn connect(session: Arc<scylla::client::session::Session>) -> anyhow::Result<Self> {
        Ok(Self {
            projections: ApprovalProjections::new(session).await?,
        })
    }

    fn routes<C: Checkpoints>() -> Router<Arc<AppState<C, Self>>> {
        Router::new()
            .route("/v1/tenants/{tenant}/desks/{desk}/actions", get(desk_actions::<C>))
            .route("/v1/tenants/{tenant}/desks/{desk}/actions/{action}", get(action::<C>))
            .route("/v1/tenants/{tenant}/approvers/{approver}/pending", get(pending::<C>))
            .route("/v1/tenants/{tenant}/agents/{agent}/actions", get(agent_actions::<C>))
            .route("/v1/tenants/{tenant}/totals/{day}", get(totals::<C>))
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        ApprovalsApi::openapi()
    }
}

/// An action as answered: as it stands, with the beneficiary's name and account opened (or
/// the erased marker).
#[derive(Debug, Serialize, ToSchema)]
pub struct Action {
    /// Its id.
    pub action_id: String,
    /// The agent that proposed it.
    pub agent_id: Option<String>,
    /// `payout`, `data_export` or `production_change`.
    pub kind: Option<String>,
    /// Amount in cents.
    pub amount_cents: Option<i64>,
    /// `LOW`, `MEDIUM` or `HIGH`.
    pub risk: Option<String>,
    /// The beneficiary's data-subject id.
    pub beneficiary_id: Option<String>,
    /// The beneficiary's name.
    pub beneficiary_name: Option<Personal>,
    /// The beneficiary's account.
    pub beneficiary_account: Option<Personal>,
    /// What it does and why.
    pub summary: Option<String>,
    /// When proposed, µs since the Unix epoch.
    pub proposed_at_micros: Option<i64>,
    /// `pending`, `executed`, `denied` or `reverted`.
    pub outcome: Option<String>,
    /// Who was asked to approve it, if anyone was.
    pub approver_id: Option<String>,
    /// When approval was asked.
    pub requested_at_micros: Option<i64>,
    /// `approved` or `denied`, once decided.
    pub decision: Option<String>,
    /// The actor who decided.
    pub decided_by: Option<String>,
    /// Why.
    pub decision_reason: Option<String>,
    /// When decided.
    pub decided_at_micros: Option<i64>,
    /// The `ActionExecuted` event, which a `RevertAction` names.
    pub executed_by: Option<Uuid>,
    /// Whether it executed within the desk's policy, without approval.
    pub automatic: Option<bool>,
    /// When executed.
    pub executed_at_micros: Option<i64>,
    /// The `ActionReverted` event.
    pub reverted_by: Option<Uuid>,
    /// Why it was reverted.
    pub revert_reason: Option<String>,
    /// When reverted.
    pub reverted_at_micros: Option<i64>,
    /// The stream version of the last event applied.
    pub version: Option<i64>,
    /// Its partition of the events topic.
    pub partition: Option<i32>,
    /// Its offset there.
    pub offset: Option<i64>,
}

async fn opened<C, D>(reading: &Reading<C, D>, tenant: &str, desk: &str, row: ActionRow) -> Result<Action, ApiError> {
    Ok(Action {
        beneficiary_name: reading.open(tenant, desk, row.beneficiary_name.as_ref()).await?,
        beneficiary_account: reading.open(tenant, desk, row.beneficiary_account.as_ref()).await?,
        action_id: row.action_id,
        agent_id: row.agent_id,
        kind: row.kind,
        amount_cents: row.amount_cents,
        risk: row.risk,
        beneficiary_id: row.beneficiary_id,
        summary: row.summary,
        proposed_at_micros: row.proposed_at_micros,
        outcome: row.outcome,
        approver_id: row.approver_id,
        requested_at_micros: row.requested_at_micros,
        decision: row.decision,
        decided_by: row.decided_by,
        decision_reason: row.decision_reason,
        decided_at_micros: row.decided_at_micros,
        executed_by: row.executed_by,
        automatic: row.automatic,
        executed_at_micros: row.executed_at_micros,
        reverted_by: row.reverted_by,
        revert_reason: row.revert_reason,
        reverted_at_micros: row.reverted_at_micros,
        version: row.version,
        partition: row.partition,
        offset: row.offset,
    })
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/desks/{desk}/actions",
    tag = TAG,
    summary = "Every action of a desk, as it stands",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("desk" = String, Path, description = "The approval desk (the stream)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "Every action of a desk, as it stands", body = Fresh<Vec<Action>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/tenants/{tenant}/desks/{desk}/actions`
pub async fn desk_actions<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, desk)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<Action>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "desk", &desk), ACTIONS, &consistency)
        .await?;
    let rows = reading
        .domain()
        .projections
        .desk_actions(&tenant, &desk)
        .await
        .map_err(ApiError::internal)?;
    if rows.is_empty() {
        return Err(ApiError::NotFound);
    }
    let mut actions = Vec::with_capacity(rows.len());
    for row in rows {
        actions.push(opened(&reading, &tenant, &desk, row).await?);
    }
    Ok(reading.answer("desk_actions", actions))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/desks/{desk}/actions/{action}",
    tag = TAG,
    summary = "One action of a desk, as it stands",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("desk" = String, Path, description = "The approval desk (the stream)."),
        ("action" = String, Path, description = "The action."),
        Consistency,
    ),
    responses(
        (status = 200, description = "One action of a desk, as it stands", body = Fresh<Action>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/tenants/{tenant}/desks/{desk}/actions/{action}`
pub async fn action<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, desk, action)): Path<(String, String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Action>>, ApiError> {
    keel_query::path_id("action", &action)?;
    let reading = state
        .begin(&headers, (&tenant, "desk", &desk), ACTIONS, &consistency)
        .await?;
    let row = reading
        .domain()
        .projections
        .action(&tenant, &desk, &action)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::NotFound)?;
    let action = opened(&reading, &tenant, &desk, row).await?;
    Ok(reading.answer("action", action))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/approvers/{approver}/pending",
    tag = TAG,
    summary = "What waits for an approver, oldest request first",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("approver" = String, Path, description = "The approver."),
        Consistency,
    ),
    responses(
        (status = 200, description = "What waits for an approver, oldest request first", body = Fresh<Vec<PendingApprovalRow>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/tenants/{tenant}/approvers/{approver}/pending`: what waits for the approver,
/// oldest request first (empty when nothing does).
pub async fn pending<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, approver)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<PendingApprovalRow>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "approver", &approver), PENDING, &consistency)
        .await?;
    let rows = reading
        .domain()
        .projections
        .pending_approvals(&tenant, &approver)
        .await
        .map_err(ApiError::internal)?;
    Ok(reading.answer("pending", rows))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/agents/{agent}/actions",
    tag = TAG,
    summary = "What an agent proposed, and how it ended, most recent first",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("agent" = String, Path, description = "The agent's actor id."),
        Consistency,
    ),
    responses(
        (status = 200, description = "What an agent proposed, and how it ended, most recent first", body = Fresh<Vec<AgentActionRow>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/tenants/{tenant}/agents/{agent}/actions`: what the agent proposed, most recent
/// first.
pub async fn agent_actions<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, agent)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<AgentActionRow>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "agent", &agent), AGENT_ACTIONS, &consistency)
        .await?;
    let rows = reading
        .domain()
        .projections
        .agent_actions(&tenant, &agent)
        .await
        .map_err(ApiError::internal)?;
    if rows.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(reading.answer("agent_actions", rows))
}

/// A day's totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayTotals {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// What executed and what was reverted, by kind.
    pub kinds: Vec<KindTotals>,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/totals/{day}",
    tag = TAG,
    summary = "What executed and what was reverted on a UTC day, by kind",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("day" = String, Path, description = "The UTC day, YYYY-MM-DD."),
        Consistency,
    ),
    responses(
        (status = 200, description = "What executed and what was reverted on a UTC day, by kind", body = Fresh<DayTotals>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
/// `GET /v1/tenants/{tenant}/totals/{day}`
pub async fn totals<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, day)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<DayTotals>>, ApiError> {
    let reading = state
        .begin_tenant_wide(&headers, &tenant, DAILY_TOTALS, &consistency)
        .await?;
    let parsed = parse_day(&day).ok_or_else(|| ApiError::BadParameter {
        name: "day",
        reason: "expected a date YYYY-MM-DD".into(),
    })?;
    let kinds = reading
        .domain()
        .projections
        .day_totals(&tenant, parsed)
        .await
        .map_err(ApiError::internal)?;
    Ok(reading.answer("totals", DayTotals { day, kinds }))
}

/// `YYYY-MM-DD` as a UTC day.
fn parse_day(text: &str) -> Option<UtcDay> {
    let mut parts = text.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |part: &str, width: usize| part.len() == width && part.bytes().all(|b| b.is_ascii_digit());
    if !(digits(year, 4) && digits(month, 2) && digits(day, 2)) {
        return None;
    }
    UtcDay::from_ymd(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::{ApprovalReads, parse_day};

    #[test]
    fn the_openapi_document_has_the_domains_routes_beside_the_runtimes() {
        let document = keel_query::openapi::<ApprovalReads>();
        let paths: Vec<&String> = document.paths.paths.keys().collect();
        for path in [
            "/v1/tenants/{tenant}/desks/{desk}/actions",
            "/v1/tenants/{tenant}/desks/{desk}/actions/{action}",
            "/v1/tenants/{tenant}/approvers/{approver}/pending",
            "/v1/tenants/{tenant}/agents/{agent}/actions",
            "/v1/tenants/{tenant}/totals/{day}",
            "/v1/tenants/{tenant}/streams/{stream}/state",
            "/v1/tenants/{tenant}/streams/{stream}/verify",
        ] {
            assert!(paths.iter().any(|known| *known == path), "{path} is not in {paths:?}");
        }
        let schemas = document
            .components
            .map(|components| components.schemas)
            .unwrap_or_default();
        for schema in [
            "Action",
            "PendingApprovalRow",
            "AgentActionRow",
            "DayTotals",
            "KindTotals",
        ] {
            assert!(schemas.contains_key(schema), "{schema} is not described");
        }
    }

    #[test]
    fn a_day_is_an_iso_date() {
        assert_eq!(parse_day("1970-01-02").map(|day| day.days_since_epoch()), Some(1));
        for bad in ["1970-1-2", "1970-02-30", "yesterday", "", "1970-01-02-03", "+970-01-02"] {
            assert!(parse_day(bad).is_none(), "{bad}");
        }
    }
}
