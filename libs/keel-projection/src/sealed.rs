//! A personal field at rest: the ciphertext copied from its event, never the plaintext.

use keel_envelope::{EventEnvelope, SealedField};
use serde::Serialize;

/// The CQL type a [`StoredField`] is stored as, `sealed_field_v1`, which the runtimes create
/// ([`crate::create_types`]) before a domain's tables: the statement is idempotent.
pub const SEALED_FIELD_TYPE: &str = "CREATE TYPE IF NOT EXISTS sealed_field_v1 (
    event_id text,
    event_type text,
    schema_version int,
    path text,
    subject_id text,
    key_id text,
    nonce blob,
    ciphertext blob
);";

/// One personal field as the `sealed_field_v1` type stores it: the event's sealed field
/// plus what its associated data binds (event id) and what names its schema (event type and
/// schema version). Opening it takes the subject's key, which erasure destroys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, scylla::SerializeValue, scylla::DeserializeValue)]
pub struct StoredField {
    /// The event that carried it.
    pub event_id: String,
    /// That event's type.
    pub event_type: String,
    /// That event's payload schema version.
    pub schema_version: i32,
    /// Dotted path in the payload.
    pub path: String,
    /// Whose data it is.
    pub subject_id: String,
    /// The subject key version that sealed it.
    pub key_id: String,
    /// AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl StoredField {
    /// The sealed field `path` of `envelope`, if the event has one.
    pub fn of(envelope: &EventEnvelope, path: &str) -> Option<Self> {
        let field = envelope.payload.sealed_fields.iter().find(|field| field.path == path)?;
        Some(Self {
            event_id: envelope.event_id.clone(),
            event_type: envelope.event_type.clone(),
            schema_version: envelope.schema_version,
            path: field.path.clone(),
            subject_id: field.subject_id.clone(),
            key_id: field.key_id.clone(),
            nonce: field.nonce.clone(),
            ciphertext: field.ciphertext.clone(),
        })
    }

    /// The field as the event carried it, to open with the codec.
    pub fn sealed(&self) -> SealedField {
        SealedField {
            path: self.path.clone(),
            subject_id: self.subject_id.clone(),
            key_id: self.key_id.clone(),
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
        }
    }
}
