//! Command results: one per command, on `keel.command-results`, free of personal data.

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
