//! The decisions: the events a command records, or why it is refused. A refusal has a
//! stable code and a message that names fields, never their values (which may be personal).

use keel_domain::DomainError;

use crate::{BadgeEvent, BadgeState};

/// Longest name or reason taken, in bytes.
const MAX_TEXT: usize = 256;

/// `IssueBadge`: only a badge at the desk is issued.
pub(crate) fn issue(
    state: &BadgeState,
    badge_id: &str,
    visitor_id: &str,
    visitor_name: &str,
) -> Result<Vec<BadgeEvent>, DomainError> {
    id("badge_id", badge_id)?;
    id("visitor_id", visitor_id)?;
    text("visitor_name", visitor_name)?;
    if let Some(issue) = state.issue {
        return Err(DomainError::new(
            "badge_already_issued",
            format!("badge {badge_id} is out (event {issue}): return it first"),
        ));
    }
    Ok(vec![BadgeEvent::BadgeIssued {
        badge_id: badge_id.to_owned(),
        visitor_id: visitor_id.to_owned(),
        visitor_name: visitor_name.to_owned(),
    }])
}

/// `ReturnBadge`: a compensation naming the issue it undoes.
pub(crate) fn give_back(state: &BadgeState, reason: &str) -> Result<Vec<BadgeEvent>, DomainError> {
    text("reason", reason)?;
    let Some(issue) = state.issue else {
        return Err(DomainError::new("badge_not_issued", "the badge is at the desk"));
    };
    Ok(vec![BadgeEvent::BadgeReturned {
        compensates: issue,
        reason: reason.to_owned(),
    }])
}

/// An id in the grammar of every id Keel takes.
fn id(field: &'static str, value: &str) -> Result<(), DomainError> {
    keel_ids::check(field, value).map_err(|error| DomainError::new(keel_ids::InvalidId::CODE, error.to_string()))
}

/// One line of 1 to [`MAX_TEXT`] bytes.
fn text(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::new("invalid_field", format!("{field} is empty")));
    }
    keel_ids::check_text(field, value, MAX_TEXT).map_err(|error| DomainError::new("invalid_field", error.to_string()))
}
