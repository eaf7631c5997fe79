//! What Keel answers each command with: one [`CommandResult`] per command on
//! `keel.command-results` (JSON, free of personal data), from the command handler and the
//! admin service alike, read by the CLI and any producer; and the one table of the reasons
//! the runtime refuses a command for ([`Reason`]), which docs/producing-commands.md lists.
//! Refusals by authentication and policy carry `keel_auth::AuthError::code()`; refusals by a
//! domain carry the domain's own codes (`keel_domain::DomainError`).

use keel_auth::Actor;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command answered.
    pub command_id: Uuid,
    /// Its tenant, if readable.
    pub tenant: Option<String>,
    /// Its stream, if readable.
    pub stream: Option<String>,
    /// Its correlation id, if readable.
    pub correlation_id: Option<Uuid>,
    /// The command type, if readable: with the actor, who tried what.
    pub command_type: Option<String>,
    /// The actor the command claimed to be, if readable (authenticated when accepted).
    pub actor: Option<Actor>,
    /// On whose behalf, outermost first.
    #[serde(default)]
    pub on_behalf_of: Vec<Actor>,
    /// Accepted or rejected, with the details.
    pub outcome: Outcome,
}

impl CommandResult {
    /// Where the last event of an accepted command sits (a reader that reached it sees the
    /// command's effect: the query API's `after=`); `None` if it was rejected or appended
    /// nothing.
    pub fn accepted_at(&self) -> Option<LogPosition> {
        match &self.outcome {
            Outcome::Accepted { position, .. } => *position,
            Outcome::Rejected { .. } => None,
        }
    }
}

/// What happened to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Events were appended (possibly none).
    Accepted {
        /// The events' ids, in order.
        event_ids: Vec<Uuid>,
        /// The stream's versions they took.
        versions: Vec<u64>,
        /// Where the last event sits: a reader that reached it sees this command's effect.
        position: Option<LogPosition>,
    },
    /// Nothing was appended.
    Rejected {
        /// Stable machine-readable reason.
        reason: String,
        /// What happened, for people.
        message: String,
        /// The stream's version, for conflicts.
        current_version: Option<u64>,
    },
}

/// A position in the events topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Why the runtime refused a command: one stable code each, in results and dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The bytes are not a command envelope of a known schema.
    Undecodable,
    /// The command is not one the domain of this deployment takes: another domain's (its
    /// payload schema's namespace is not this domain's), or a type or version it does not
    /// know.
    UnknownCommand,
    /// An id breaks the id grammar (`keel-ids`), a personal field's subject id included.
    InvalidId,
    /// An event would seal a personal field to another data subject than the stream's own,
    /// and its schema does not declare that field's subject foreign (`keel.foreign_subject`).
    SubjectNotBound,
    /// A field is larger than Keel takes (the credential, the delegation chain, a reason).
    OutOfBounds,
    /// The record is larger than the consumer takes.
    PayloadTooLarge,
    /// An event the command would append does not fit a Kafka record.
    EventTooLarge,
    /// The broker refused a record of the command for itself.
    RecordRefused,
    /// The stored decision state the command needs cannot be read back.
    StateUnreadable,
    /// This release of the domain cannot fold the stream's history.
    StreamUnavailable,
    /// The domain panicked on the command or its events, or the command failed alone three
    /// times for a reason nobody classified.
    InternalError,
    /// The command arrived on another partition than its key's.
    WrongPartition,
    /// The stream is the system's (`keel.<kind>:<id>`).
    ReservedStream,
    /// The tenant has no policy: every command is refused.
    NoPolicy,
    /// The stream is not at the version the command expected.
    VersionConflict,
    /// The tenant was erased: it takes no commands.
    TenantErased,
    /// The events could not be sealed.
    SealingFailed,
    /// An admin command from a credential without `keel:admin`.
    NotAdmin,
    /// An erasure sent to another stream than its subject's.
    WrongStream,
}

impl Reason {
    /// Every reason, in the order the docs list them.
    pub const ALL: [Self; 19] = [
        Self::Undecodable,
        Self::UnknownCommand,
        Self::InvalidId,
        Self::SubjectNotBound,
        Self::OutOfBounds,
        Self::PayloadTooLarge,
        Self::EventTooLarge,
        Self::RecordRefused,
        Self::StateUnreadable,
        Self::StreamUnavailable,
        Self::InternalError,
        Self::WrongPartition,
        Self::ReservedStream,
        Self::NoPolicy,
        Self::VersionConflict,
        Self::TenantErased,
        Self::SealingFailed,
        Self::NotAdmin,
        Self::WrongStream,
    ];

    /// The stable snake_case code results and dead letters carry.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::UnknownCommand => "unknown_command",
            Self::InvalidId => "invalid_id",
            Self::SubjectNotBound => "subject_not_bound",
            Self::OutOfBounds => "out_of_bounds",
            Self::PayloadTooLarge => "payload_too_large",
            Self::EventTooLarge => "event_too_large",
            Self::RecordRefused => "record_refused",
            Self::StateUnreadable => "state_unreadable",
            Self::StreamUnavailable => "stream_unavailable",
            Self::InternalError => "internal_error",
            Self::WrongPartition => "wrong_partition",
            Self::ReservedStream => "reserved_stream",
            Self::NoPolicy => "no_policy",
            Self::VersionConflict => "version_conflict",
            Self::TenantErased => "tenant_erased",
            Self::SealingFailed => "sealing_failed",
            Self::NotAdmin => "not_admin",
            Self::WrongStream => "wrong_stream",
        }
    }

    /// The reason of `code`, if the runtime gives it.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_and_reads_back() {
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|reason| reason.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
        }
        assert_eq!(Reason::from_code("refund_exists"), None, "a domain's code is its own");
    }

    /// docs/producing-commands.md, which producers in any language read.
    const PRODUCER_DOCS: &str = include_str!("../../../docs/producing-commands.md");

    #[test]
    fn the_producers_guide_lists_every_reason() {
        let auth = [
            keel_auth::AuthError::Malformed(String::new()),
            keel_auth::AuthError::BadSignature { tenant: String::new() },
            keel_auth::AuthError::UnknownTenant(String::new()),
            keel_auth::AuthError::Expired,
            keel_auth::AuthError::NotYetValid,
            keel_auth::AuthError::WrongIssuer { tenant: String::new() },
            keel_auth::AuthError::WrongTenant {
                credential: String::new(),
                command: String::new(),
            },
            keel_auth::AuthError::ActorMismatch(String::new()),
            keel_auth::AuthError::NotPermitted {
                actor_kind: "agent",
                actor: String::new(),
                command_type: String::new(),
            },
            keel_auth::AuthError::LimitExceeded {
                rule: String::new(),
                quantity: String::new(),
                value: 0,
                limit: 0,
            },
        ];
        let missing: Vec<&str> = Reason::ALL
            .iter()
            .map(|reason| reason.code())
            .chain(auth.iter().map(keel_auth::AuthError::code))
            .filter(|code| !PRODUCER_DOCS.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "undocumented reasons: {missing:?}");
    }

    #[test]
    fn a_result_reads_back_from_its_json() {
        let result = CommandResult {
            command_id: uuid::Uuid::nil(),
            tenant: Some("acme".into()),
            stream: None,
            correlation_id: None,
            command_type: None,
            actor: None,
            on_behalf_of: Vec::new(),
            outcome: Outcome::Rejected {
                reason: Reason::InvalidId.code().into(),
                message: "stream_id is empty".into(),
                current_version: None,
            },
        };
        let json = serde_json::to_string(&result).unwrap_or_default();
        assert!(json.contains(r#""status":"rejected","reason":"invalid_id""#), "{json}");
        assert_eq!(serde_json::from_str::<CommandResult>(&json).ok(), Some(result));
    }
}
