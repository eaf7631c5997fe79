//! The projection port: what a domain implements so that Keel's projector runtime
//! (`services/keel-projector`) keeps the domain's read models in the CQL store.
//!
//! A domain's [`Projections`] declare their tables (created when connected) and map each
//! applied event to row writes. The runtime does everything else: it reads the events
//! (`read_committed`), opens their payloads with the tenant's key (personal fields stay
//! sealed: a projection copies them as the ciphertext the envelope carries), keeps the
//! runtime's own read models beside the domain's (audit and activity trails), batches,
//! saves checkpoints under the projections' [`Projections::NAMES`], reports freshness and
//! log heads, rebuilds into a new generation while the old one serves, dead-letters an
//! event that can never be projected and retries the rest.
//!
//! What a projection must do is be **idempotent**: key every row by what it describes and
//! write it `USING TIMESTAMP <offset>` ([`LoggedEvent::offset`]), so that applying an event
//! again, or an older event after a newer one, leaves the tables as they are.
//!
//! A personal field is stored as the ciphertext its event carries, never in plaintext:
//! [`StoredField::of`] takes it from the envelope into a `frozen<sealed_field_v1>` column
//! (the type is [`SEALED_FIELD_TYPE`], which the runtimes create in the keyspace before a
//! domain connects, with [`create_types`]: a domain's schema uses it without declaring it).
//! The query runtime opens it per request with the subject's key, or answers it erased.

mod sealed;

pub use sealed::{SEALED_FIELD_TYPE, StoredField};

use std::future::Future;
use std::sync::Arc;

use keel_envelope::EventEnvelope;
use scylla::client::session::Session;
use serde::de::DeserializeOwned;

/// An event as the projector hands it to a projection: where it sits in the log, its bytes
/// as there, its envelope, and its opened payload (personal fields neutral: take them sealed
/// from the envelope). An event of an erased tenant, and a system event (an erasure), has no
/// opened payload.
#[derive(Debug)]
pub struct LoggedEvent<'a, E> {
    /// Partition of the events topic.
    pub partition: i32,
    /// Offset there: the write timestamp of every row the event touches.
    pub offset: i64,
    /// The record's value, single-object Avro.
    pub bytes: &'a [u8],
    /// The envelope read from `bytes`.
    pub envelope: &'a EventEnvelope,
    /// The domain event opened from the envelope; `None` for a system event or once its
    /// tenant is erased.
    pub event: Option<&'a E>,
}

impl<E> Clone for LoggedEvent<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for LoggedEvent<'_, E> {}

/// Why a projection could not be set up or written.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The store failed the request; `keel_cql::is_permanent` tells whether a retry may help.
    #[error(transparent)]
    Store(Box<scylla::errors::ExecutionError>),
    /// The tables could not be created or the statements prepared.
    #[error("setting up projections: {0}")]
    Setup(String),
    /// An event cannot be turned into rows: never retried, the event is dead-lettered.
    #[error("{0}")]
    Event(String),
}

impl From<scylla::errors::ExecutionError> for ProjectionError {
    fn from(error: scylla::errors::ExecutionError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Creates the types the port's columns use ([`SEALED_FIELD_TYPE`]) in `session`'s keyspace,
/// if missing. The projector and query runtimes call it before a domain connects.
pub async fn create_types(session: &Session) -> Result<(), ProjectionError> {
    session.query_unpaged(SEALED_FIELD_TYPE, &[]).await?;
    Ok(())
}

/// A domain's read models: its tables and how an applied event changes them.
pub trait Projections: Sized + Send + Sync + 'static {
    /// The domain whose payload schemas open the events.
    type Domain: keel_domain::WireSchemas;
    /// The domain's event type, as its payloads open.
    type Event: DeserializeOwned + Send + Sync + 'static;

    /// The names checkpoints are kept under, one per projection (e.g. `refunds.v1`): a new
    /// name (a new table version) is built from the log's start by a rebuild.
    const NAMES: &'static [&'static str];

    /// The CQL that creates the tables (`CREATE TABLE IF NOT EXISTS`, one statement each,
    /// in a `.cql` file of the domain's; `sealed_field_v1` exists already, see
    /// [`create_types`]): a generation is dropped by these names.
    const SCHEMA: &'static str;

    /// Creates the tables if missing, in `session`'s keyspace, and prepares statements.
    fn connect(session: Arc<Session>) -> impl Future<Output = Result<Self, ProjectionError>> + Send;

    /// Writes every row `events` touch, idempotently (see the crate's documentation).
    fn write(
        &self,
        events: &[LoggedEvent<'_, Self::Event>],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}
