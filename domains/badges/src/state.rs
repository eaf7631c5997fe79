//! What a badge remembers between commands: which event issued it, if it is out. No
//! personal data (not even the visitor's id): state is snapshotted outside the sealed log.

use keel_domain::Recorded;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::BadgeEvent;

/// The state of one badge's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadgeState {
    /// The `BadgeIssued` event of the visit under way; `None` while the badge is at the desk.
    pub issue: Option<Uuid>,
}

impl BadgeState {
    /// Folds one recorded event in.
    pub(crate) fn apply(self, event: &BadgeEvent, recorded: &Recorded) -> Self {
        match event {
            BadgeEvent::BadgeIssued { .. } => Self {
                issue: Some(recorded.event_id),
            },
            BadgeEvent::BadgeReturned { .. } => Self { issue: None },
        }
    }
}
