//! Reverting an executed action: a compensation that names the execution it undoes.

use keel_domain::DomainError;
use uuid::Uuid;

use crate::checks::{MAX_TEXT, line};
use crate::decide::existing;
use crate::{ActionStatus, ApprovalEvent, DeskState};

pub(crate) fn revert(
    state: &DeskState,
    action_id: &str,
    compensates: Uuid,
    reason: &str,
) -> Result<Vec<ApprovalEvent>, DomainError> {
    line("reason", reason, MAX_TEXT)?;
    let action = existing(state, action_id)?;
    match action.status {
        ActionStatus::Executed => {}
        ActionStatus::Reverted => {
            return Err(DomainError::new(
                "action_already_reverted",
                format!("action {action_id} was already reverted"),
            ));
        }
        status => {
            return Err(DomainError::new(
                "action_not_executed",
                format!("action {action_id} is {}, not executed", status.as_str()),
            ));
        }
    }
    match action.executed_by {
        Some(executed_by) if executed_by == compensates => Ok(vec![ApprovalEvent::ActionReverted {
            action_id: action_id.to_owned(),
            compensates,
            reason: reason.to_owned(),
            kind: action.kind,
            amount_cents: action.amount_cents,
        }]),
        executed_by => Err(DomainError::new(
            "compensation_mismatch",
            format!(
                "event {compensates} is not the execution of action {action_id} ({} is)",
                executed_by.map(|id| id.to_string()).unwrap_or_default()
            ),
        )),
    }
}
