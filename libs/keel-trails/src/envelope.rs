//! What the trails need of an event envelope.

use keel_auth::{Actor, Authorization};
use uuid::Uuid;

/// An event's envelope, without its payload: everything here is free of personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    /// Event id.
    pub event_id: Uuid,
    /// Tenant.
    pub tenant: String,
    /// Stream.
    pub stream: String,
    /// Version in the stream.
    pub version: u64,
    /// Event type.
    pub event_type: String,
    /// When it was recorded, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// The command that caused it.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// Who acted.
    pub actor: Actor,
    /// Whose data the event holds: the data subjects' references (no personal data).
    pub data_subjects: Vec<String>,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// The policy rule that allowed it.
    pub authorization: Authorization,
    /// The event it compensates, if any.
    pub compensates: Option<Uuid>,
    /// Its chain hash, hex.
    pub hash: String,
    /// The previous event's hash, hex ("" for the first).
    pub prev_hash: String,
}
