//! The worked domain's routes: a customer's profile, subscriptions, refunds (with totals),
//! emails and referrals; a stream's chain verification and its state as of a version or a
//! time.
//!
//! Personal fields are stored sealed (the projector copies the event's ciphertext); they
//! are opened here, per request, with the subject's key. A field whose subject key was
//! destroyed renders as `{"erased": true, "value": null}`: an explicit marker, never an
//! error or garbage. Every other failure to open (a tampered ciphertext, an unreachable
//! vault) is an error, not a guess.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use keel_chain::{BreakKind, Verdict, verify_stream};
use keel_checkpoints::Checkpoints;
use keel_codec::{EventCodec, FieldOrigin};
use keel_crypto::LocalFileKms;
use keel_customer_support::{Customer, CustomerState, SupportEvent};
use keel_domain::{Aggregate, Recorded};
use keel_envelope::EventEnvelope;
use keel_support_projections::{
    EMAILS, PROFILES, Position, REFERRALS, REFUNDS, RefundRow, STREAM_EVENTS, SUBSCRIPTIONS, StoredField,
    SubscriptionRow, SupportProjections,
};
use keel_vault_cql::CqlKeyVault;
use serde::{Deserialize, Serialize};

use crate::fresh::{Consistency, Fresh, wait_for};
use crate::{ApiError, AppState, Params, ReadModels, path_id};
use keel_checkpoints::Freshness;

/// The domain's projections and the codec that opens their sealed fields.
pub struct Support {
    /// The projections' tables.
    pub projections: SupportProjections,
    /// Opens personal fields and events with the tenant's and subjects' keys.
    pub codec: EventCodec<LocalFileKms, CqlKeyVault>,
    /// Subjects seen erased in the projections (tenant, subject).
    erased: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

/// A personal field as answered: its value, or the erased marker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Personal {
    /// True once the data subject was erased: the value is gone for good.
    pub erased: bool,
    /// The value while the subject's key exists.
    pub value: Option<serde_json::Value>,
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

impl Support {
    /// The projections in `session`'s keyspace, opened with `keys`.
    pub async fn new(
        session: Arc<scylla::client::session::Session>,
        keys: Arc<keel_vault_cql::ServiceKeyRing>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            projections: SupportProjections::new(session).await?,
            codec: EventCodec::new::<Customer>(keys, keel_envelope::Upcasters::new())?,
            erased: std::sync::Mutex::default(),
        })
    }

    /// Whether the projections mark `subject` erased (its `SubjectErased` was applied): the
    /// first line of erasure, before any key cache expires. Erasure is final, so a subject
    /// seen erased is remembered; one not erased is asked again next time.
    async fn erased(&self, tenant: &str, subject: &str) -> Result<bool, ApiError> {
        let key = (tenant.to_owned(), subject.to_owned());
        if self
            .erased
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&key)
        {
            return Ok(true);
        }
        let erased = self.projections.is_erased(tenant, subject).await.map_err(internal)?;
        if erased {
            self.erased
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key);
        }
        Ok(erased)
    }

    /// Opens a stored field of `tenant`'s stream `stream`; `None` when nothing is stored.
    async fn open(
        &self,
        tenant: &str,
        stream: &str,
        field: Option<&StoredField>,
    ) -> Result<Option<Personal>, ApiError> {
        let Some(field) = field else { return Ok(None) };
        if self.erased(tenant, &field.subject_id).await? {
            metrics::counter!("keel_query_personal_fields_total", "erased" => "true").increment(1);
            return Ok(Some(Personal {
                erased: true,
                value: None,
            }));
        }
        let origin = FieldOrigin {
            tenant,
            stream,
            event_id: &field.event_id,
            event_type: &field.event_type,
            schema_version: field.schema_version,
        };
        let value = self.codec.open_field(origin, &field.sealed()).await.map_err(internal)?;
        metrics::counter!("keel_query_personal_fields_total", "erased" => value.is_none().to_string()).increment(1);
        Ok(Some(Personal {
            erased: value.is_none(),
            value,
        }))
    }
}

/// The route prologue: the token verifies for `tenant`, the id is sane, and the
/// projection is as fresh as the client asked.
async fn begin<C: Checkpoints>(
    state: &AppState<C>,
    headers: &HeaderMap,
    (tenant, name, id): (&str, &'static str, &str),
    projection: &str,
    consistency: &Consistency,
) -> Result<(Arc<ReadModels<C>>, Freshness, bool), ApiError> {
    state.principal(tenant, headers)?;
    path_id(name, id)?;
    let models = state.models();
    let (freshness, stale) = wait_for(&models.checkpoints, projection, consistency, state.max_wait).await?;
    Ok((models, freshness, stale))
}

/// Not found unless the customer has a profile: every customer route agrees on who exists.
async fn known_customer(support: &Support, tenant: &str, customer: &str) -> Result<(), ApiError> {
    support
        .projections
        .profile(tenant, customer)
        .await
        .map_err(internal)?
        .map(|_| ())
        .ok_or(ApiError::NotFound)
}

fn answered<T, C>(
    route: &'static str,
    started: std::time::Instant,
    data: T,
    (models, freshness, stale): (Arc<ReadModels<C>>, Freshness, bool),
) -> Json<Fresh<T>> {
    metrics::histogram!("keel_query_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    Json(Fresh {
        data,
        freshness,
        stale,
        generation: models.generation.clone(),
    })
}

/// A customer's current profile.
#[derive(Debug, Serialize)]
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
pub async fn profile<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Profile>>, ApiError> {
    let started = std::time::Instant::now();
    let fresh = begin(
        &state,
        &headers,
        (&tenant, "customer", &customer),
        PROFILES,
        &consistency,
    )
    .await?;
    let support = &fresh.0.support;
    let row = support
        .projections
        .profile(&tenant, &customer)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    let profile = Profile {
        name: support.open(&tenant, &customer, row.name.as_ref()).await?,
        email: support.open(&tenant, &customer, row.email.as_ref()).await?,
        address: support.open(&tenant, &customer, row.address.as_ref()).await?,
        customer_id: customer,
        status: row.status,
        registered_at_micros: row.registered_at_micros,
        deleted_reason: row.deleted_reason,
        updated_at_micros: row.updated_at_micros,
        position: row.position,
    };
    Ok(answered("profile", started, profile, fresh))
}

/// `GET /v1/tenants/{tenant}/customers/{customer}/subscriptions`
pub async fn subscriptions<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<SubscriptionRow>>>, ApiError> {
    let started = std::time::Instant::now();
    let fresh = begin(
        &state,
        &headers,
        (&tenant, "customer", &customer),
        SUBSCRIPTIONS,
        &consistency,
    )
    .await?;
    known_customer(&fresh.0.support, &tenant, &customer).await?;
    let data = fresh
        .0
        .support
        .projections
        .subscriptions(&tenant, &customer)
        .await
        .map_err(internal)?;
    Ok(answered("subscriptions", started, data, fresh))
}

/// A customer's refunds and their running totals.
#[derive(Debug, Serialize)]
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
pub async fn refunds<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Refunds>>, ApiError> {
    let started = std::time::Instant::now();
    let fresh = begin(
        &state,
        &headers,
        (&tenant, "customer", &customer),
        REFUNDS,
        &consistency,
    )
    .await?;
    known_customer(&fresh.0.support, &tenant, &customer).await?;
    let rows = fresh
        .0
        .support
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
    Ok(answered("refunds", started, data, fresh))
}

/// One email sent.
#[derive(Debug, Serialize)]
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
pub async fn emails<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<Email>>>, ApiError> {
    let started = std::time::Instant::now();
    let fresh = begin(&state, &headers, (&tenant, "customer", &customer), EMAILS, &consistency).await?;
    let support = &fresh.0.support;
    known_customer(support, &tenant, &customer).await?;
    let rows = support.projections.emails(&tenant, &customer).await.map_err(internal)?;
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        data.push(Email {
            recipient: support.open(&tenant, &customer, row.recipient.as_ref()).await?,
            subject: support.open(&tenant, &customer, row.subject.as_ref()).await?,
            body: support.open(&tenant, &customer, row.body.as_ref()).await?,
            email_id: row.email_id,
            sent_at_micros: row.sent_at_micros,
            position: row.position,
        });
    }
    Ok(answered("emails", started, data, fresh))
}

/// One friend a customer referred: the friend's fields are sealed with the friend's key,
/// the message with the customer's.
#[derive(Debug, Serialize)]
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
pub async fn referrals<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, customer)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Vec<Referral>>>, ApiError> {
    let started = std::time::Instant::now();
    let fresh = begin(
        &state,
        &headers,
        (&tenant, "customer", &customer),
        REFERRALS,
        &consistency,
    )
    .await?;
    let support = &fresh.0.support;
    known_customer(support, &tenant, &customer).await?;
    let rows = support
        .projections
        .referrals(&tenant, &customer)
        .await
        .map_err(internal)?;
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        data.push(Referral {
            friend_name: support.open(&tenant, &customer, row.friend_name.as_ref()).await?,
            friend_email: support.open(&tenant, &customer, row.friend_email.as_ref()).await?,
            message: support.open(&tenant, &customer, row.message.as_ref()).await?,
            friend_id: row.friend_id,
            referred_at_micros: row.referred_at_micros,
            position: row.position,
        });
    }
    Ok(answered("referrals", started, data, fresh))
}

/// A stream's events as the log holds them (payloads sealed), in version order.
async fn stream_events(support: &Support, tenant: &str, stream: &str) -> Result<Vec<EventEnvelope>, ApiError> {
    let stored = support.projections.events(tenant, stream).await.map_err(internal)?;
    if stored.is_empty() {
        return Err(ApiError::NotFound);
    }
    stored
        .iter()
        .map(|event| support.codec.wire().read_event(&event.envelope).map_err(internal))
        .collect()
}

/// The outcome of walking a stream's chain.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// `intact` or `broken`.
    pub verdict: &'static str,
    /// Intact: the last version. Broken: the version expected at the first broken link.
    pub version: i64,
    /// Intact: the head hash, hex.
    pub head: Option<String>,
    /// Broken: what the break shows (`edited`, `removed`, `reordered`, `inserted`).
    pub break_kind: Option<&'static str>,
    /// Broken: the event found there.
    pub event_id: Option<String>,
}

fn break_kind(kind: BreakKind) -> &'static str {
    match kind {
        BreakKind::Edited => "edited",
        BreakKind::Removed => "removed",
        BreakKind::Reordered => "reordered",
        BreakKind::Inserted => "inserted",
        BreakKind::TruncatedTail => "truncated_tail",
        BreakKind::Rewritten => "rewritten",
    }
}

/// `GET /v1/tenants/{tenant}/streams/{stream}/verify`: recomputes every hash of the stream
/// from its sealed events (no key needed: chains cover ciphertext, so they verify after
/// erasure too) and reports intact or the first broken link.
pub async fn verify<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, stream)): Path<(String, String)>,
    Params(consistency): Params<Consistency>,
    headers: HeaderMap,
) -> Result<Json<Fresh<Verification>>, ApiError> {
    let started = std::time::Instant::now();
    let fresh = begin(
        &state,
        &headers,
        (&tenant, "stream", &stream),
        STREAM_EVENTS,
        &consistency,
    )
    .await?;
    let events = stream_events(&fresh.0.support, &tenant, &stream).await?;
    let verdict = verify_stream(fresh.0.support.codec.hasher(), &events, None).map_err(internal)?;
    let data = match verdict {
        Verdict::Intact { version, head } => Verification {
            verdict: "intact",
            version,
            head: Some(hex::encode(head)),
            break_kind: None,
            event_id: None,
        },
        Verdict::Broken(broken) => {
            metrics::counter!("keel_chain_verification_failures_total").increment(1);
            tracing::warn!(tenant, stream, version = broken.version, kind = ?broken.kind, "chain broken");
            Verification {
                verdict: "broken",
                version: broken.version,
                head: None,
                break_kind: Some(break_kind(broken.kind)),
                event_id: broken.event_id,
            }
        }
    };
    Ok(answered("verify", started, data, fresh))
}

/// Parameters of a temporal query, with the usual read-your-writes ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// Fold events up to this version.
    pub version: Option<u64>,
    /// Fold events recorded at or before this time, µs since the Unix epoch.
    pub at_micros: Option<i64>,
    /// As in [`Consistency`].
    pub after: Option<String>,
    /// As in [`Consistency`].
    pub wait_ms: Option<u64>,
    /// As in [`Consistency`].
    pub on_timeout: Option<String>,
}

/// A stream's state at a point of its history.
#[derive(Debug, Serialize)]
pub struct StateAsOf {
    /// The last version folded in (0: the stream had not started).
    pub version: u64,
    /// When that event was recorded, µs since the Unix epoch.
    pub recorded_at_micros: Option<i64>,
    /// The folded state (the domain's decision state: ids, statuses, amounts; no personal
    /// data).
    pub state: CustomerState,
}

/// `GET /v1/tenants/{tenant}/streams/{stream}/state?version=N` or `?at_micros=T`: the
/// stream's state folded from its events up to that version or time.
pub async fn state_as_of<C: Checkpoints>(
    State(state): State<Arc<AppState<C>>>,
    Path((tenant, stream)): Path<(String, String)>,
    Params(as_of): Params<AsOf>,
    headers: HeaderMap,
) -> Result<Json<Fresh<StateAsOf>>, ApiError> {
    let started = std::time::Instant::now();
    let consistency = Consistency {
        after: as_of.after,
        wait_ms: as_of.wait_ms,
        on_timeout: as_of.on_timeout,
    };
    let fresh = begin(
        &state,
        &headers,
        (&tenant, "stream", &stream),
        STREAM_EVENTS,
        &consistency,
    )
    .await?;
    let events = stream_events(&fresh.0.support, &tenant, &stream).await?;
    let mut folded = StateAsOf {
        version: 0,
        recorded_at_micros: None,
        state: CustomerState::default(),
    };
    for envelope in events {
        let version = u64::try_from(envelope.stream_version).map_err(internal)?;
        if as_of.version.is_some_and(|limit| version > limit)
            || as_of.at_micros.is_some_and(|limit| envelope.recorded_at > limit)
        {
            break;
        }
        if keel_erasure::is_system_schema(&envelope.payload.schema_name) {
            continue;
        }
        let recorded_at = envelope.recorded_at;
        let opened = fresh
            .0
            .support
            .codec
            .open_event::<SupportEvent>(envelope)
            .await
            .map_err(internal)?;
        let recorded = Recorded {
            event_id: opened.envelope.event_id.parse().map_err(internal)?,
            version,
        };
        folded.state = Customer::apply(folded.state, &opened.event, &recorded);
        folded.version = version;
        folded.recorded_at_micros = Some(recorded_at);
    }
    Ok(answered("state", started, folded, fresh))
}
