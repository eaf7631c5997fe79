//! The events recorded on a badge's stream.

use keel_domain::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event on one badge's stream: one variant per schema in `schemas/badges/events/`,
/// where `visitor_name` is marked personal data of `visitor_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BadgeEvent {
    /// The badge was issued to a visitor.
    BadgeIssued {
        /// The badge.
        badge_id: String,
        /// The visitor's data-subject id.
        visitor_id: String,
        /// The visitor's name (personal: sealed with the visitor's key).
        visitor_name: String,
    },
    /// Compensation: the badge came back, undoing its issue.
    BadgeReturned {
        /// The `BadgeIssued` event undone.
        compensates: Uuid,
        /// Why.
        reason: String,
    },
}

impl DomainEvent for BadgeEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::BadgeIssued { .. } => "BadgeIssued",
            Self::BadgeReturned { .. } => "BadgeReturned",
        }
    }

    fn compensates(&self) -> Option<Uuid> {
        match self {
            Self::BadgeReturned { compensates, .. } => Some(*compensates),
            Self::BadgeIssued { .. } => None,
        }
    }
}
