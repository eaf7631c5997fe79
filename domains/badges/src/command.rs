//! The commands the front desk sends to a badge's stream.

use keel_domain::DomainCommand;
use serde::{Deserialize, Serialize};

/// A command on one badge's stream: one variant per schema in `schemas/badges/commands/`,
/// with exactly its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BadgeCommand {
    /// Issues the badge to a visitor.
    IssueBadge {
        /// The badge; the same as the stream id.
        badge_id: String,
        /// The visitor's data-subject id.
        visitor_id: String,
        /// The visitor's name (personal).
        visitor_name: String,
    },
    /// Takes the badge back; it can then be issued again.
    ReturnBadge {
        /// Why (operational text, no personal data).
        reason: String,
    },
}

impl DomainCommand for BadgeCommand {
    fn command_type(&self) -> &'static str {
        match self {
            Self::IssueBadge { .. } => "IssueBadge",
            Self::ReturnBadge { .. } => "ReturnBadge",
        }
    }
}
