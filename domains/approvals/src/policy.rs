//! Setting the desk's approval policy.

use keel_domain::DomainError;

use crate::checks::{amount, id};
use crate::{ApprovalEvent, DeskState, PolicyState, Risk};

/// The policy as given, or no event when it is the one in force already (sending the same
/// policy twice records it once).
pub(crate) fn set(
    state: &DeskState,
    approver_id: &str,
    auto_execute_max_cents: i64,
    auto_execute_max_risk: Risk,
) -> Result<Vec<ApprovalEvent>, DomainError> {
    id("approver_id", approver_id)?;
    amount("auto_execute_max_cents", auto_execute_max_cents)?;
    let policy = PolicyState {
        approver_id: approver_id.to_owned(),
        auto_execute_max_cents,
        auto_execute_max_risk,
    };
    if state.policy.as_ref() == Some(&policy) {
        return Ok(Vec::new());
    }
    Ok(vec![ApprovalEvent::ApprovalPolicySet {
        approver_id: policy.approver_id,
        auto_execute_max_cents,
        auto_execute_max_risk,
    }])
}
