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

pub mod clients;
mod error;
pub mod partition;
pub mod topics;
pub mod trace;

pub use error::KafkaError;

/// The headers of a dead letter: what was wrong (`keel-error`) and where the raw record came
/// from (`keel-source`, `topic/partition/offset`). The record's value is the raw input.
pub fn dead_letter_headers(error: &str, topic: &str, partition: i32, offset: i64) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    let source = format!("{topic}/{partition}/{offset}");
    OwnedHeaders::new()
        .insert(Header {
            key: "keel-error",
            value: Some(error),
        })
        .insert(Header {
            key: "keel-source",
            value: Some(source.as_str()),
        })
}
