//! Keel's command and event envelopes on the wire.
//!
//! The Avro schemas in `schemas/envelope/` are the single source of truth; [`wire`] mirrors
//! them field for field. Messages use Avro single-object encoding ([`codec`]), so every
//! message names its writer schema by fingerprint and a [`SchemaRegistry`] resolves old
//! versions to the current reader schema. [`Upcaster`]s carry payloads across changes
//! resolution alone cannot express. Sealing (keel-crypto) and chaining (keel-chain) build on
//! these types; this crate does no I/O.

mod error;

pub mod codec;
pub mod datum;
pub mod upcast;
pub mod wire;

pub use codec::{PinnedSchema, SchemaRegistry, decode_body, encode_body, fingerprint};
pub use datum::Datum;
pub use error::EnvelopeError;
pub use upcast::{Upcaster, Upcasters};
pub use wire::{
    Actor, ActorKind, ActorRef, Authorization, CommandEnvelope, CommandPayload, EventEnvelope, KeyRef, KeyScope,
    SealedField, SealedPayload,
};

/// Full name of the command envelope schema.
pub const COMMAND_ENVELOPE: &str = "dev.keel.CommandEnvelope";
/// Full name of the event envelope schema.
pub const EVENT_ENVELOPE: &str = "dev.keel.EventEnvelope";

/// Every pinned envelope schema version, oldest first.
pub const ENVELOPE_SCHEMAS: &[&str] = &[
    include_str!("../../../schemas/envelope/CommandEnvelope.v1.avsc"),
    include_str!("../../../schemas/envelope/EventEnvelope.v1.avsc"),
];

/// `schemas/fingerprints.json`: the pinned fingerprint of every envelope schema version.
pub const PINNED_FINGERPRINTS: &str = include_str!("../../../schemas/fingerprints.json");
