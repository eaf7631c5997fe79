//! The command handler's decision state.
//!
//! Kafka is the log of record; this state is derived from it and only makes decisions
//! fast. Per stream: its version, last chain hash, a snapshot of the aggregate state, and
//! the log position (offset in the stream's events partition) they reflect. Per command id:
//! its result, so a replayed command id gets the original answer. Per consumed partition: a
//! watermark, the next offset not yet reflected here.
//!
//! Every write carries the log position it reflects, and adapters must make a write with a
//! lower position lose against one with a higher position (the CQL adapter uses
//! `USING TIMESTAMP position`). Replaying the log from a watermark therefore converges to
//! the same state, whatever crash came between the Kafka commit and these writes, and no
//! lightweight transaction is needed.

mod error;
mod memory;
pub mod suite;

pub use error::StateError;
pub use memory::InMemoryHandlerState;

use std::future::Future;

use uuid::Uuid;

/// A stream's decision state as of log position `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// The stream's tenant.
    pub tenant: String,
    /// The stream's id.
    pub stream: String,
    /// The stream's last version (0 before the first event).
    pub version: u64,
    /// The chain hash of the last event (empty before the first event).
    pub last_hash: Vec<u8>,
    /// The version of the snapshot's form (the domain's `Aggregate::SNAPSHOT_VERSION`).
    pub snapshot_version: u32,
    /// The aggregate state, serialised by the handler (never personal data).
    pub snapshot: Vec<u8>,
    /// Offset, in the stream's events partition, of the last event reflected.
    pub position: i64,
}

/// A command's result, kept to answer a replayed command id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The command's tenant.
    pub tenant: String,
    /// The command id.
    pub command_id: Uuid,
    /// The encoded result, as it was published.
    pub result: Vec<u8>,
    /// Offset of the result in its results partition.
    pub position: i64,
}

/// How far a consumer's partition is reflected in this state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The consumer (e.g. `keel-handler`).
    pub consumer: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset not yet reflected.
    pub next_offset: i64,
}

/// Writes made together after a Kafka transaction committed (or during a replay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateBatch {
    /// Streams whose state changed.
    pub streams: Vec<StreamRecord>,
    /// Results published.
    pub results: Vec<StoredResult>,
    /// Watermarks advanced; written last, so they never run ahead of the rows above.
    pub watermarks: Vec<Watermark>,
}

/// The port: where the handler keeps its decision state.
pub trait HandlerState: Send + Sync + 'static {
    /// The state of a stream, if it has any.
    fn stream(
        &self,
        tenant: &str,
        stream: &str,
    ) -> impl Future<Output = Result<Option<StreamRecord>, StateError>> + Send;

    /// The stored result of a command id, if one was published.
    fn result(
        &self,
        tenant: &str,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<StoredResult>, StateError>> + Send;

    /// The watermark of a consumer's partition, if one was written.
    fn watermark(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<Option<i64>, StateError>> + Send;

    /// Applies a batch; each row's position decides against what is already stored.
    fn apply(&self, batch: &StateBatch) -> impl Future<Output = Result<(), StateError>> + Send;
}
