//! The customer-support domain's read routes, plugged into Keel's query runtime
//! (`keel_query::ReadSide`): a customer's profile, subscriptions, refunds (with totals),
//! emails and referrals. Personal fields are opened per request by the runtime
//! ([`keel_query::Reading::open`]): a field whose subject was erased answers the erased marker.
//!
//! The runtime serves the rest for this domain as for any other: audit and activity
//! trails, chain verification, a stream's state as of a version or a time (folded by
//! [`Customer`]), freshness and erasure certificates.
//!
//! Each route's `#[utoipa::path]` describes it; [`SupportApi`] gathers them, and
//! [`SupportReads`]' [`ReadSide::openapi`] hands them to the runtime's document.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use keel_checkpoints::Checkpoints;
use keel_customer_support::Customer;
use keel_query::fresh::{Consistency, Fresh};
use keel_query::{ApiError, AppState, Params, Personal, ReadErrors, ReadSide};
use keel_support_projections::{
    EMAILS, PROFILES, Position, REFERRALS, REFUNDS, RefundRow, SUBSCRIPTIONS, SubscriptionRow, SupportProjections,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The tag of this domain's routes in the OpenAPI document.
pub const TAG: &str = "customer-support";

/// The domain's routes in the OpenAPI document; the runtime merges them into its own.
#[derive(OpenApi)]
#[openapi(
    paths(profile, subscriptions, refunds, emails, referrals),
    tags((name = TAG, description = "A customer's profile, subscriptions, refunds, emails and referrals; personal fields opened, or the erased marker.")),
)]
pub struct SupportApi;

/// The customer-support domain's read side: its projections' tables.
pub struct SupportReads {
    /// The projections' tables.
    pub projections: SupportProjections,
}

type Api<C> = State<Arc<AppState<C, SupportReads>>>;

impl ReadSide for SupportReads {
    type Aggregate = Customer;

    const PROJECTIONS: &'static [&'static str] = &keel_support_projections::ALL;

    async fn connect(session: Arc<scylla::client::session::Session>) -> anyhow::Result<Self> {
        Ok(Self {
            projections: SupportProjections::new(session).await?,
        })
    }

    fn routes<C: Checkpoints>() -> Router<Arc<AppState<C, Self>>> {
        Router::new()
            .route("/v1/tenants/{tenant}/customers/{customer}", get(profile::<C>))
            .route(
                "/v1/tenants/{tenant}/customers/{customer}/subscriptions",
                get(subscriptions::<C>),
            )
            .route("/v1/tenants/{tenant}/customers/{customer}/refunds", get(refunds::<C>))
            .route("/v1/tenants/{tenant}/customers/{customer}/emails", get(emails::<C>))
            .route(
                "/v1/tenants/{tenant}/customers/{customer}/referrals",
                get(referrals::<C>),
            )
    }

    fn openapi() -> utoipa::openapi::OpenApi {
        SupportApi::openapi()
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(error)
}

/// Not found unless the customer has a profile: every customer route agrees on who exists.
async fn known_customer(support: &SupportReads, tenant: &str, customer: &str) -> Result<(), ApiError> {
    support
        .projections
        .profile(tenant, customer)
        .await
        .map_err(internal)?
        .map(|_| ())
        .ok_or(ApiError::NotFound)
}

/// A customer's current profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    /// The customer (also the stream and the data subject).
    pub customer_id: String,
    /// `active` or `deleted`.
    pub status: Option<String>,
    /// Name.
    pub name: Option<Personal>,
    /// Email.
    pub email: Option<Personal>,
    /// Postal address.
    pub address: Option<Personal>,
    /// When registered, µs since the Unix epoch.
    pub registered_at_micros: Option<i64>,
    /// Why deleted, once deleted.
    pub deleted_reason: Option<String>,
    /// Time of the last event applied.
    pub updated_at_micros: Option<i64>,
    /// The stream version and log position the row reflects.
    pub position: Position,
}

/// `GET /v1/tenants/{tenant}/customers/{customer}`
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/customers/{customer}",
    tag = TAG,
    summary = "A customer's current profile; personal fields opened, or the erased marker",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("customer" = String, Path, description = "The customer (also the stream and the data subject)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The profile.", body = Fresh<Profile>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn profile<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Profile>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "customer", &customer), PROFILES, &consistency)
        .await?;
    let support = reading.domain();
    let row = support
        .projections
        .profile(&tenant, &customer)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    let profile = Profile {
        name: reading.open(&tenant, &customer, row.name.as_ref()).await?,
        email: reading.open(&tenant, &customer, row.email.as_ref()).await?,
        address: reading.open(&tenant, &customer, row.address.as_ref()).await?,
        customer_id: customer,
        status: row.status,
        registered_at_micros: row.registered_at_micros,
        deleted_reason: row.deleted_reason,
        updated_at_micros: row.updated_at_micros,
        position: row.position,
    };
    Ok(reading.answer("profile", profile))
}

/// `GET /v1/tenants/{tenant}/customers/{customer}/subscriptions`
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/customers/{customer}/subscriptions",
    tag = TAG,
    summary = "A customer's subscriptions",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("customer" = String, Path, description = "The customer (also the stream and the data subject)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The subscriptions.", body = Fresh<Vec<SubscriptionRow>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn subscriptions<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<SubscriptionRow>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "customer", &customer), SUBSCRIPTIONS, &consistency)
        .await?;
    known_customer(reading.domain(), &tenant, &customer).await?;
    let data = reading
        .domain()
        .projections
        .subscriptions(&tenant, &customer)
        .await
        .map_err(internal)?;
    Ok(reading.answer("subscriptions", data))
}

/// A customer's refunds and their running totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct Refunds {
    /// Every refund, in the order issued.
    pub refunds: Vec<RefundRow>,
    /// Issued, in cents. Summed as 128-bit integers, so no history of refunds overflows
    /// (each refund is at most `keel_customer_support::MAX_REFUND_CENTS`; older rows may
    /// hold more).
    pub issued_cents: i128,
    /// Taken back by reversals, in cents.
    pub reversed_cents: i128,
    /// Issued less reversed.
    pub net_cents: i128,
}

/// `GET /v1/tenants/{tenant}/customers/{customer}/refunds`
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/customers/{customer}/refunds",
    tag = TAG,
    summary = "A customer's refunds with running totals",
    description = "One row per refund: a replay never counts one twice.",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("customer" = String, Path, description = "The customer (also the stream and the data subject)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The refunds and their totals.", body = Fresh<Refunds>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn refunds<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Refunds>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "customer", &customer), REFUNDS, &consistency)
        .await?;
    known_customer(reading.domain(), &tenant, &customer).await?;
    let rows = reading
        .domain()
        .projections
        .refunds(&tenant, &customer)
        .await
        .map_err(internal)?;
    let issued_cents: i128 = rows.iter().map(|r| i128::from(r.amount_cents)).sum();
    let reversed_cents: i128 = rows.iter().map(|r| i128::from(r.reversed_cents)).sum();
    let data = Refunds {
        refunds: rows,
        issued_cents,
        reversed_cents,
        net_cents: issued_cents - reversed_cents,
    };
    Ok(reading.answer("refunds", data))
}

/// One email sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Email {
    /// Its id.
    pub email_id: String,
    /// Recipient.
    pub recipient: Option<Personal>,
    /// Subject line.
    pub subject: Option<Personal>,
    /// Body.
    pub body: Option<Personal>,
    /// When, µs since the Unix epoch.
    pub sent_at_micros: Option<i64>,
    /// What the row reflects.
    pub position: Position,
}

/// `GET /v1/tenants/{tenant}/customers/{customer}/emails`
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/customers/{customer}/emails",
    tag = TAG,
    summary = "The emails sent to a customer; personal fields opened, or the erased marker",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("customer" = String, Path, description = "The customer (also the stream and the data subject)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The emails.", body = Fresh<Vec<Email>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn emails<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<Email>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "customer", &customer), EMAILS, &consistency)
        .await?;
    let support = reading.domain();
    known_customer(support, &tenant, &customer).await?;
    let rows = support.projections.emails(&tenant, &customer).await.map_err(internal)?;
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        data.push(Email {
            recipient: reading.open(&tenant, &customer, row.recipient.as_ref()).await?,
            subject: reading.open(&tenant, &customer, row.subject.as_ref()).await?,
            body: reading.open(&tenant, &customer, row.body.as_ref()).await?,
            email_id: row.email_id,
            sent_at_micros: row.sent_at_micros,
            position: row.position,
        });
    }
    Ok(reading.answer("emails", data))
}

/// One friend a customer referred: the friend's fields are sealed with the friend's key,
/// the message with the customer's.
#[derive(Debug, Serialize, ToSchema)]
pub struct Referral {
    /// The friend's data-subject id.
    pub friend_id: String,
    /// The friend's name.
    pub friend_name: Option<Personal>,
    /// The friend's email.
    pub friend_email: Option<Personal>,
    /// The customer's message.
    pub message: Option<Personal>,
    /// When, µs since the Unix epoch.
    pub referred_at_micros: Option<i64>,
    /// What the row reflects.
    pub position: Position,
}

/// `GET /v1/tenants/{tenant}/customers/{customer}/referrals`
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/customers/{customer}/referrals",
    tag = TAG,
    summary = "The friends a customer referred; personal fields opened, or the erased marker",
    params(
        ("tenant" = String, Path, description = "The tenant."),
        ("customer" = String, Path, description = "The customer (also the stream and the data subject)."),
        Consistency,
    ),
    responses(
        (status = 200, description = "The referrals.", body = Fresh<Vec<Referral>>),
        ReadErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn referrals<C: Checkpoints>(
    State(state): Api<C>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<Referral>>>, ApiError> {
    let reading = state
        .begin(&headers, (&tenant, "customer", &customer), REFERRALS, &consistency)
        .await?;
    let support = reading.domain();
    known_customer(support, &tenant, &customer).await?;
    let rows = support
        .projections
        .referrals(&tenant, &customer)
        .await
        .map_err(internal)?;
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        data.push(Referral {
            friend_name: reading.open(&tenant, &customer, row.friend_name.as_ref()).await?,
            friend_email: reading.open(&tenant, &customer, row.friend_email.as_ref()).await?,
            message: reading.open(&tenant, &customer, row.message.as_ref()).await?,
            friend_id: row.friend_id,
            referred_at_micros: row.referred_at_micros,
            position: row.position,
        });
    }
    Ok(reading.answer("referrals", data))
}
