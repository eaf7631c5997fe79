//! Erasure by crypto-shredding: what the admin service reads and writes.
//!
//! - [`System`]: the wire schemas of the admin commands (`schemas/system/commands`) and the
//!   system events (`schemas/system/events`). System events share the log with every
//!   domain's events; services that fold a domain skip them by their payload namespace
//!   ([`is_system_schema`]).
//! - [`certificate`]: the erasure certificate, signed with Ed25519 over its canonical JSON.
//! - [`store`]: where certificates are kept in the CQL store, and the bookkeeping that makes
//!   an erase command take effect exactly once.
//!
//! An erasure of subject `S` in tenant `T` is the command `EraseSubject` on stream
//! [`erasure_stream`]`(S)` of `T`, sent to `keel.admin` with a credential granting
//! [`ADMIN_SCOPE`]; its one event, `SubjectErased`, is version 1 of that stream.

pub mod certificate;
pub mod store;

use keel_domain::{DomainCommand, DomainEvent, WireSchemas};
use serde::{Deserialize, Serialize};

pub use certificate::{Certificate, CertificateError, EventRef, SignedCertificate, Signer};
pub use store::{ErasureRecord, ErasureStore, StoreError};

/// The scope an admin credential must grant, whatever the tenant's policy allows.
pub const ADMIN_SCOPE: &str = "keel:admin";

/// Prefix of the streams system events live on; domain commands may not address them.
pub const SYSTEM_STREAM_PREFIX: &str = "keel.";

/// Namespace of every system payload schema.
pub const SYSTEM_NAMESPACE: &str = "dev.keel.system";

/// The stream whose one event records the erasure of a whole tenant.
pub const TENANT_ERASURE_STREAM: &str = "keel.tenant-erasure";

/// How the erasure store and certificates name a whole tenant, where a subject would be.
pub const WHOLE_TENANT: &str = "*";

/// What names the stream of a subject's erasure record: [`SYSTEM_STREAM_PREFIX`], this,
/// then the subject.
const ERASURE_STREAM_INFIX: &str = "erasure:";

/// The stream whose one event records the erasure of `subject`.
pub fn erasure_stream(subject: &str) -> String {
    format!("{SYSTEM_STREAM_PREFIX}{ERASURE_STREAM_INFIX}{subject}")
}

/// The subject whose erasure record `stream` holds, if it is an [`erasure_stream`].
pub fn erasure_stream_subject(stream: &str) -> Option<&str> {
    stream
        .strip_prefix(SYSTEM_STREAM_PREFIX)?
        .strip_prefix(ERASURE_STREAM_INFIX)
}

/// Whether a payload schema (an envelope's `payload.schema_name`) is a system schema.
pub fn is_system_schema(schema_name: &str) -> bool {
    schema_name
        .strip_prefix(SYSTEM_NAMESPACE)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The system's wire schemas.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl WireSchemas for System {
    const COMMAND_NAMESPACE: &'static str = "dev.keel.system.commands";
    const EVENT_NAMESPACE: &'static str = "dev.keel.system.events";
    const SCHEMAS: &'static [&'static str] = &[
        include_str!("../../../schemas/system/commands/EraseSubject.v1.avsc"),
        include_str!("../../../schemas/system/commands/EraseTenant.v1.avsc"),
        include_str!("../../../schemas/system/events/SubjectErased.v1.avsc"),
        include_str!("../../../schemas/system/events/TenantErased.v1.avsc"),
    ];
}

/// A command the admin service takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Destroy every version of a subject's data key.
    EraseSubject {
        /// The subject's reference.
        subject: String,
        /// Why (no personal data).
        reason: String,
    },
    /// Destroy every key of the tenant.
    EraseTenant {
        /// Why (no personal data).
        reason: String,
    },
}

impl DomainCommand for AdminCommand {
    fn command_type(&self) -> &'static str {
        match self {
            Self::EraseSubject { .. } => "EraseSubject",
            Self::EraseTenant { .. } => "EraseTenant",
        }
    }
}

/// An event the system records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemEvent {
    /// A subject's keys were destroyed.
    SubjectErased {
        /// The subject's reference.
        subject: String,
        /// Why, as the request said.
        reason: String,
        /// The key versions destroyed.
        destroyed_key_ids: Vec<String>,
        /// How many events referenced the subject, as projected when it was erased.
        referencing_events: i64,
        /// When, microseconds since the Unix epoch.
        erased_at: i64,
    },
    /// Every key of the tenant was destroyed.
    TenantErased {
        /// Why, as the request said.
        reason: String,
        /// How many data key versions were destroyed.
        destroyed_keys: i64,
        /// When, microseconds since the Unix epoch.
        erased_at: i64,
    },
}

impl DomainEvent for SystemEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::SubjectErased { .. } => "SubjectErased",
            Self::TenantErased { .. } => "TenantErased",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_schemas_are_told_apart_from_domain_ones() {
        assert!(is_system_schema("dev.keel.system.events.SubjectErased"));
        assert!(!is_system_schema("dev.keel.support.events.RefundIssued"));
        assert!(!is_system_schema("dev.keel.systemic.Thing"));
    }

    #[test]
    fn the_system_schemas_load_and_round_trip_an_erase_command() -> Result<(), Box<dyn std::error::Error>> {
        let wire = keel_codec::Wire::new::<System>()?;
        let command = AdminCommand::EraseSubject {
            subject: "cust-1".into(),
            reason: "ticket 42".into(),
        };
        let header = keel_codec::CommandHeader {
            command_id: uuid::Uuid::new_v4(),
            tenant: "acme".into(),
            stream: erasure_stream("cust-1"),
            expected_version: None,
            issued_at_micros: 1,
            actor: keel_codec::to_wire_actor(
                &keel_auth::Actor {
                    kind: keel_auth::ActorKind::Human,
                    id: "dpo".into(),
                },
                &[],
                None,
            ),
            credential: "token".into(),
            correlation_id: uuid::Uuid::new_v4(),
            causation_id: None,
        };
        let bytes = wire.encode_command(header, &command)?;
        let (envelope, decoded) = wire
            .decode_command::<AdminCommand>(&bytes)
            .map_err(|e| e.error.to_string())?;
        assert_eq!(decoded, command);
        assert_eq!(envelope.stream_id, "keel.erasure:cust-1");
        Ok(())
    }
}
