//! The domain contract of Keel.
//!
//! Keel's backbone is domain-agnostic: a domain plugs in as an [`Aggregate`], a pair of pure
//! functions. [`Aggregate::handle`] decides which events a command produces given the
//! stream's state, or rejects it with a [`DomainError`]; [`Aggregate::apply`] folds an event
//! into the state. Neither does I/O nor knows of Kafka, CQL, keys or tokens: the command
//! handler feeds them decoded, authorised commands and recorded events, and turns their
//! output into sealed, chained envelopes.
//!
//! Undo is a compensating event, never an edit: an event that undoes an earlier one names it
//! through [`DomainEvent::compensates`].
//!
//! [`testing::Scenario`] states given/when/then tests against an aggregate without servers.

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub mod testing;

/// A domain's aggregate: the consistency boundary that one event stream records.
pub trait Aggregate {
    /// The aggregate's name, e.g. `customer`; stream ids are scoped by it.
    const NAME: &'static str;

    /// The version of [`Self::State`]'s stored form. The handler keeps each stream's state
    /// as a snapshot tagged with this version; bump it whenever a release changes what the
    /// state means or how it serialises, and the handler rebuilds each stream it meets from
    /// the log instead of reading an old snapshot (one that no longer decodes is rebuilt
    /// whatever its version).
    const SNAPSHOT_VERSION: u32 = 1;

    /// What the aggregate knows between commands. It is snapshotted to the CQL store, so it
    /// must hold no personal data: personal fields live only in sealed events.
    type State: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The commands the aggregate decides on.
    type Command: DomainCommand;

    /// The events it records.
    type Event: DomainEvent;

    /// Decides: the events `command` produces in `state`, or why it is refused.
    ///
    /// Returning no events is allowed (an idempotent no-op); the handler still records a
    /// result for the command.
    fn handle(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    /// Folds one recorded event into the state. Must not fail: an event is a fact.
    fn apply(state: Self::State, event: &Self::Event, recorded: &Recorded) -> Self::State;
}

/// Where an event sits in its stream, given to [`Aggregate::apply`] so that state can
/// remember which event did what (compensations name the event they undo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The event's id.
    pub event_id: Uuid,
    /// Its version in the stream, gapless from 1.
    pub version: u64,
}

/// What the backbone needs to know of a command without knowing the domain.
pub trait DomainCommand: Send + Sync {
    /// The command type, as named in its Avro schema; policies allow or deny by it.
    fn command_type(&self) -> &'static str;

    /// A named quantity an authorisation policy may limit, e.g. `amount_cents` of a refund.
    fn quantity(&self, name: &str) -> Option<i64> {
        let _ = name;
        None
    }
}

/// What the backbone needs to know of an event without knowing the domain.
pub trait DomainEvent: Clone + Send + Sync {
    /// The event type, as named in its Avro schema.
    fn event_type(&self) -> &'static str;

    /// The earlier event this one compensates, if it is a compensation.
    fn compensates(&self) -> Option<Uuid> {
        None
    }
}

/// A command refused by the domain: a machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DomainError {
    /// Stable, snake_case reason, e.g. `subscription_not_active`.
    pub code: &'static str,
    /// What was wrong, naming ids but never personal data.
    pub message: String,
}

impl DomainError {
    /// A refusal with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// How a domain's commands and events travel: as Avro records whose schemas the domain
/// ships (`schemas/<domain>/`). A command of type `T` has the payload schema
/// `{COMMAND_NAMESPACE}.T`, an event of type `T` the schema `{EVENT_NAMESPACE}.T`; the Rust
/// types serialise with serde's default (externally tagged) enum form, one variant per type.
pub trait WireSchemas {
    /// Namespace of the command payload schemas.
    const COMMAND_NAMESPACE: &'static str;
    /// Namespace of the event payload schemas.
    const EVENT_NAMESPACE: &'static str;
    /// Every payload schema document (`.avsc`), commands and events, every version.
    const SCHEMAS: &'static [&'static str];
}
