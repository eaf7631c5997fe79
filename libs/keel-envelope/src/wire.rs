//! Wire types of the command and event envelopes, one field for one field of
//! `schemas/envelope/*.avsc`. They carry no behaviour: domain types convert from and to them.

use serde::{Deserialize, Serialize};

/// What kind of identity acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActorKind {
    /// A person signed in.
    Human,
    /// An AI agent, acting for someone in its delegation chain.
    Agent,
    /// A service or scheduled job.
    Service,
    /// Keel itself (e.g. erasure, re-wrap).
    System,
}

/// One link of a delegation chain: the identity on whose behalf the actor acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRef {
    /// Kind of the principal.
    pub kind: ActorKind,
    /// Id of the principal.
    pub id: String,
}

/// The policy and scope that allowed an action, filled in by the command handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// Name of the policy that matched.
    pub policy: String,
    /// The scope the policy granted.
    pub scope: String,
}

/// Who did it: typed attribution, separate from whose data it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Kind of the acting identity.
    pub kind: ActorKind,
    /// Id of the acting identity.
    pub id: String,
    /// On whose behalf, nearest principal first; empty when acting for itself.
    pub delegation: Vec<ActorRef>,
    /// Set by the handler once authorised; `None` on an incoming command.
    pub authorization: Option<Authorization>,
}

/// The command's own payload: Avro binary of the named schema at the given version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandPayload {
    /// Full name of the payload schema.
    pub schema_name: String,
    /// Version of the payload schema (`keel.schema_version`).
    pub schema_version: i32,
    /// Avro binary body (no single-object header).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Every command sent to Keel (`dev.keel.CommandEnvelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    /// UUID; the idempotency key.
    pub command_id: String,
    /// Tenant the command belongs to.
    pub tenant_id: String,
    /// The aggregate addressed.
    pub stream_id: String,
    /// Name of the command.
    pub command_type: String,
    /// Stream version the sender saw, for optimistic concurrency.
    pub expected_version: Option<i64>,
    /// Microseconds since the Unix epoch (timestamp-micros).
    pub issued_at: i64,
    /// Who sends it.
    pub actor: Actor,
    /// The actor's signed token.
    pub credential: String,
    /// UUID shared by everything one request caused.
    pub correlation_id: String,
    /// UUID of the message that caused this one, if any.
    pub causation_id: Option<String>,
    /// The command's payload.
    pub payload: CommandPayload,
}

/// Scope of a key reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyScope {
    /// The tenant data key that seals the payload.
    Tenant,
    /// A data subject's key that seals that subject's personal fields.
    Subject,
}

/// Which key version seals what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    /// Opaque key id, also bound into the associated data.
    pub key_id: String,
    /// Tenant or subject key.
    pub scope: KeyScope,
    /// The subject, for a subject key.
    pub subject_id: Option<String>,
    /// Key version.
    pub version: i32,
}

/// One personal field value sealed with its subject's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedField {
    /// Dotted path of the field inside the payload record.
    pub path: String,
    /// Whose data it is.
    pub subject_id: String,
    /// Id of the subject key that sealed it.
    pub key_id: String,
    /// 96-bit nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// AES-256-GCM ciphertext and tag of the field value's Avro binary.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// The event payload sealed with the tenant data key, personal fields sealed apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPayload {
    /// Full name of the payload schema.
    pub schema_name: String,
    /// Id of the tenant data key that sealed `ciphertext`.
    pub key_id: String,
    /// 96-bit nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// AES-256-GCM ciphertext and tag of the payload's Avro binary, personal fields neutralised.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// Personal field values, each under its subject's key.
    pub sealed_fields: Vec<SealedField>,
}

/// Every event in the log (`dev.keel.EventEnvelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// UUID (v7) of the event.
    pub event_id: String,
    /// Tenant the event belongs to.
    pub tenant_id: String,
    /// The aggregate.
    pub stream_id: String,
    /// Gapless per stream from 1.
    pub stream_version: i64,
    /// Name of the event.
    pub event_type: String,
    /// Version of the payload schema.
    pub schema_version: i32,
    /// Microseconds since the Unix epoch (timestamp-micros).
    pub recorded_at: i64,
    /// UUID of the command that produced it (causation).
    pub command_id: String,
    /// UUID shared by everything one request caused.
    pub correlation_id: String,
    /// Who did it.
    pub actor: Actor,
    /// Whose data it is.
    pub data_subjects: Vec<String>,
    /// The keys that seal the payload and its personal fields.
    pub key_refs: Vec<KeyRef>,
    /// The sealed payload.
    pub payload: SealedPayload,
    /// Event id this event undoes, if it is a compensation.
    pub compensates: Option<String>,
    /// Hash of the previous event of the stream; 32 zero bytes at version 1.
    #[serde(with = "serde_bytes")]
    pub prev_hash: Vec<u8>,
    /// This event's chain hash (see keel-chain).
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
}
