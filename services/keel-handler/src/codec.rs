//! The seam between the handler's exactly-once loop and the wire: decoding commands,
//! sealing and chaining events, and reading them back for replays.
//!
//! The loop knows records, partitions and transactions; the codec knows envelopes, schemas,
//! keys and hashes. Sealing may look keys up (a key vault), hence the async methods.

use keel_results::Reason;
use std::future::Future;

use keel_auth::{Authorization, Principal};
use keel_domain::Aggregate;
use uuid::Uuid;

use crate::decide::IncomingCommand;
use keel_results::CommandResult;

/// A decoded command and the envelope fields the decision does not need.
#[derive(Debug, Clone)]
pub struct DecodedCommand<C> {
    /// What the decision needs.
    pub incoming: IncomingCommand<C>,
    /// The command type named in the envelope.
    pub command_type: String,
    /// Correlation id, carried into every event and the result.
    pub correlation_id: Uuid,
    /// What caused this command, if anything did.
    pub causation_id: Option<Uuid>,
}

/// Input that is not a command: it goes to the DLQ, and gets a rejected result when its
/// command id (and tenant and stream) could still be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// The command id, if readable (and a valid id).
    pub command_id: Option<Uuid>,
    /// The tenant, if readable and a valid id (an invalid one is never echoed back).
    pub tenant: Option<String>,
    /// The stream, if readable and a valid id.
    pub stream: Option<String>,
    /// The stable reason: `undecodable`, `invalid_id`, `out_of_bounds`, `payload_too_large`.
    pub reason: &'static str,
    /// What was wrong, for the DLQ and the result.
    pub error: String,
}

impl Undecodable {
    /// Input that is not a command at all: nothing of it could be read.
    pub fn unreadable(error: impl Into<String>) -> Self {
        Self {
            command_id: None,
            tenant: None,
            stream: None,
            reason: Reason::Undecodable.code(),
            error: error.into(),
        }
    }
}

/// Where a stream's chain stands before an append.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainHead {
    /// The last version (0 for a new stream).
    pub version: u64,
    /// The last event's hash (empty for a new stream).
    pub hash: Vec<u8>,
}

/// The context every event of one accepted command shares.
#[derive(Debug, Clone)]
pub struct AppendContext<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The stream.
    pub stream: &'a str,
    /// The command that caused the events.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// Who acted, authenticated.
    pub principal: &'a Principal,
    /// The rule that allowed it.
    pub authorization: &'a Authorization,
    /// When the events are recorded, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
}

/// One sealed, chained event ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEvent {
    /// The event's id.
    pub event_id: Uuid,
    /// Its stream version.
    pub version: u64,
    /// Its chain hash.
    pub hash: Vec<u8>,
    /// The encoded envelope.
    pub bytes: Vec<u8>,
}

/// An event read back from the log, for replays.
#[derive(Debug, Clone)]
pub struct ReplayedEvent<E> {
    /// The tenant.
    pub tenant: String,
    /// The stream.
    pub stream: String,
    /// Its stream version.
    pub version: u64,
    /// Its chain hash.
    pub hash: Vec<u8>,
    /// Its id.
    pub event_id: Uuid,
    /// The domain event (personal fields of erased subjects carry the erased marker).
    pub event: E,
}

/// A codec failure: the record or the keys are not what they should be.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Why events could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The tenant was erased (every key of it destroyed): nothing can be sealed for it again.
    #[error("tenant {0} is erased")]
    TenantErased(String),
    /// The key store or KMS could not be reached, or a race for a new key version was
    /// lost: nothing is wrong with the command, and the worker retries its batch.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// Something about the command makes its events unsealable (a personal field's subject
    /// id breaks the id grammar): the command is refused with `reason`.
    #[error("{reason}: {message}")]
    Refused {
        /// The stable reason, e.g. `invalid_id`.
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Anything else: an encoding error, a key store refusing the request.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Encodes and decodes what the handler reads and writes.
pub trait Codec<A: Aggregate>: Send + Sync + 'static {
    /// Decodes a command record's value.
    fn decode_command(&self, bytes: &[u8]) -> Result<DecodedCommand<A::Command>, Undecodable>;

    /// Seals and chains `events`, which follow `head`.
    fn seal_events(
        &self,
        context: &AppendContext<'_>,
        head: &ChainHead,
        events: &[A::Event],
    ) -> impl Future<Output = Result<Vec<SealedEvent>, SealError>> + Send;

    /// Reads an event record's value back; `None` for a system event (an erasure), which
    /// shares the log but is no event of the domain.
    fn open_event(
        &self,
        bytes: &[u8],
    ) -> impl Future<Output = Result<Option<ReplayedEvent<A::Event>>, CodecError>> + Send;

    /// Encodes a command result.
    fn encode_result(&self, result: &CommandResult) -> Result<Vec<u8>, CodecError>;

    /// Decodes a command result.
    fn decode_result(&self, bytes: &[u8]) -> Result<CommandResult, CodecError>;
}
