//! Keel's Kafka adapter.
//!
//! - [`partition`]: records are keyed `tenant/stream` and placed by the murmur2 partitioner
//!   that Java clients use, so a stream's commands and events share a partition number and
//!   one handler instance is the single writer of each stream. Producers in any language
//!   must partition the same way (librdkafka: `partitioner=murmur2_random`).
//! - [`topics`]: Keel's topics and their settings, created or checked at service start.
//! - [`clients`]: client configurations that keep the exactly-once guarantees:
//!   transactional, idempotent producers and `read_committed` consumers.
//! - [`trace`]: W3C trace context (`traceparent`) in record headers, from command to event
//!   to projection.
//! - [`DeadLetter`]: a bounded copy of a record a service could not process, with why.
//! - [`headers`]: a record's headers read without trusting them (a key that is not UTF-8).

pub mod clients;
mod dead_letter;
mod error;
pub mod headers;
pub mod partition;
pub mod topics;
pub mod trace;

pub use dead_letter::{DeadLetter, MAX_DEAD_LETTER_BYTES};

/// Where a service's Kafka cluster is: a flag, also `KEEL_KAFKA_BROKERS`, flattened into every
/// service's configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "KEEL_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
}

impl KafkaArgs {
    /// The cluster at `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
        }
    }
}
pub use error::KafkaError;
