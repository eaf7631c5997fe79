//! Projection checkpoints and freshness.
//!
//! A projector applies `keel.events` to its tables and records, per projection and
//! partition, a [`Checkpoint`]: the next offset to apply and the time of the last event
//! applied. It also records the log head it last saw ([`Head`]). From both, [`Freshness`]
//! says how fresh a projection is: what it has applied, that event's time, and how many
//! events and seconds it is behind. The query API puts that on every answer.
//!
//! Checkpoints are written with the offset as their CQL write timestamp, so an older
//! checkpoint written late (a replay, a slow writer) never moves one backwards.

mod cql;
mod error;
mod generation;
mod memory;
pub mod suite;

pub use cql::{CqlCheckpoints, SCHEMA};
pub use error::CheckpointError;
pub use generation::Generations;
pub use memory::InMemoryCheckpoints;

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;

/// How far a projection has applied one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The partition.
    pub partition: i32,
    /// The next offset to apply (everything before it is applied).
    pub next_offset: i64,
    /// When the last applied event was recorded, microseconds since the Unix epoch.
    pub event_time_micros: i64,
}

/// The end of one partition of the log, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The partition.
    pub partition: i32,
    /// Its high watermark: the offset the next event will get.
    pub head_offset: i64,
    /// When it was seen, microseconds since the Unix epoch.
    pub observed_at_micros: i64,
}

/// How fresh one partition of a projection is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PartitionFreshness {
    /// The next offset to apply.
    pub applied_offset: i64,
    /// Time of the last applied event (microseconds since the epoch), if any.
    pub event_time_micros: Option<i64>,
    /// Events in the log not yet applied, as of the last head seen.
    pub lag_events: i64,
    /// How long ago the last applied event was recorded, if events are waiting; 0 when caught up.
    pub lag_seconds: f64,
}

/// How fresh a projection is, per partition.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    /// By partition.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, PartitionFreshness>))]
    pub partitions: BTreeMap<i32, PartitionFreshness>,
}

impl Freshness {
    /// Combines checkpoints and heads at `now_micros`.
    pub fn from_parts(checkpoints: &[Checkpoint], heads: &[Head], now_micros: i64) -> Self {
        let mut partitions = BTreeMap::new();
        let heads: BTreeMap<i32, &Head> = heads.iter().map(|head| (head.partition, head)).collect();
        let checkpoints: BTreeMap<i32, &Checkpoint> = checkpoints.iter().map(|c| (c.partition, c)).collect();
        for partition in heads.keys().chain(checkpoints.keys()) {
            let checkpoint = checkpoints.get(partition);
            let applied_offset = checkpoint.map_or(0, |c| c.next_offset);
            let event_time_micros = checkpoint.map(|c| c.event_time_micros);
            let head_offset = heads.get(partition).map_or(applied_offset, |head| head.head_offset);
            let lag_events = (head_offset - applied_offset).max(0);
            let lag_seconds = match (lag_events, event_time_micros) {
                (0, _) => 0.0,
                (_, Some(time)) => (now_micros - time).max(0) as f64 / 1e6,
                // Nothing applied yet: behind by as long as the head has been known.
                (_, None) => heads
                    .get(partition)
                    .map_or(0.0, |head| (now_micros - head.observed_at_micros).max(0) as f64 / 1e6),
            };
            partitions.insert(
                *partition,
                PartitionFreshness {
                    applied_offset,
                    event_time_micros,
                    lag_events,
                    lag_seconds,
                },
            );
        }
        Self { partitions }
    }

    /// Whether the projection has applied everything up to (and including) `offset` of `partition`.
    pub fn has_applied(&self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get(&partition)
            .is_some_and(|p| p.applied_offset > offset)
    }
}

/// The port: where checkpoints and heads are kept.
pub trait Checkpoints: Send + Sync + 'static {
    /// Every checkpoint of `projection`.
    fn checkpoints(&self, projection: &str) -> impl Future<Output = Result<Vec<Checkpoint>, CheckpointError>> + Send;

    /// Records checkpoints; an older one than stored is ignored.
    fn save(
        &self,
        projection: &str,
        checkpoints: &[Checkpoint],
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Every head of `projection`.
    fn heads(&self, projection: &str) -> impl Future<Output = Result<Vec<Head>, CheckpointError>> + Send;

    /// Records the heads just seen.
    fn save_heads(&self, projection: &str, heads: &[Head]) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// The freshness of `projection` at `now_micros`.
    fn freshness(
        &self,
        projection: &str,
        now_micros: i64,
    ) -> impl Future<Output = Result<Freshness, CheckpointError>> + Send {
        async move {
            let checkpoints = self.checkpoints(projection).await?;
            let heads = self.heads(projection).await?;
            Ok(Freshness::from_parts(&checkpoints, &heads, now_micros))
        }
    }
}

/// A store shared between tasks (a writer and readers) is a store.
impl<T: Checkpoints> Checkpoints for std::sync::Arc<T> {
    fn checkpoints(&self, projection: &str) -> impl Future<Output = Result<Vec<Checkpoint>, CheckpointError>> + Send {
        T::checkpoints(self, projection)
    }

    fn save(
        &self,
        projection: &str,
        checkpoints: &[Checkpoint],
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send {
        T::save(self, projection, checkpoints)
    }

    fn heads(&self, projection: &str) -> impl Future<Output = Result<Vec<Head>, CheckpointError>> + Send {
        T::heads(self, projection)
    }

    fn save_heads(&self, projection: &str, heads: &[Head]) -> impl Future<Output = Result<(), CheckpointError>> + Send {
        T::save_heads(self, projection, heads)
    }
}
