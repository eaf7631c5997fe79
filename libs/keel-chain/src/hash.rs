//! The hash of one link: SHA-256 over the previous hash and the envelope's canonical bytes.
//!
//! Canonical bytes are the Avro binary encoding of the event envelope under the envelope
//! schema with `hash` set to empty bytes: everything else, ciphertexts included, is
//! covered, so a chain still verifies after a key is destroyed.

use keel_envelope::{EVENT_ENVELOPE, EventEnvelope, PinnedSchema, SchemaRegistry, encode_body};
use sha2::{Digest, Sha256};

use crate::ChainError;

/// Length of a chain hash.
pub const HASH_LEN: usize = 32;
/// The `prev_hash` of a stream's first event.
pub const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

/// Computes and stamps chain hashes.
#[derive(Debug, Clone)]
pub struct ChainHasher {
    schema: PinnedSchema,
}

impl ChainHasher {
    /// A hasher over the current event envelope schema.
    pub fn new() -> Result<Self, ChainError> {
        let registry = SchemaRegistry::with_envelopes()?;
        Ok(Self {
            schema: registry.current(EVENT_ENVELOPE)?.clone(),
        })
    }

    /// The canonical bytes of an envelope: Avro binary with `hash` emptied.
    pub fn canonical_bytes(&self, event: &EventEnvelope) -> Result<Vec<u8>, ChainError> {
        let mut unhashed = event.clone();
        unhashed.hash = Vec::new();
        encode_body(&self.schema, &unhashed).map_err(|source| ChainError::Encode {
            event_id: event.event_id.clone(),
            source,
        })
    }

    /// The hash the event should carry, given the `prev_hash` it carries.
    pub fn hash(&self, event: &EventEnvelope) -> Result<[u8; HASH_LEN], ChainError> {
        let mut digest = Sha256::new();
        digest.update(&event.prev_hash);
        digest.update(self.canonical_bytes(event)?);
        Ok(digest.finalize().into())
    }

    /// Links an event after `prev` (the previous event's hash, or [`GENESIS`]): sets its
    /// `prev_hash` and `hash`. The handler calls this last, after sealing.
    pub fn link(&self, event: &mut EventEnvelope, prev: &[u8; HASH_LEN]) -> Result<[u8; HASH_LEN], ChainError> {
        event.prev_hash = prev.to_vec();
        let hash = self.hash(event)?;
        event.hash = hash.to_vec();
        Ok(hash)
    }
}
