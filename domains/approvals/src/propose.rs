//! An agent's proposal, and the decision it meets: executed at once within the policy, or
//! sent to the approver.

use keel_domain::DomainError;

use crate::checks::{MAX_SUMMARY, MAX_TEXT, amount, id, line, paragraph};
use crate::{ActionKind, ApprovalEvent, DeskState, Risk};

/// The fields of a `ProposeAction` command.
pub(crate) struct Proposal<'a> {
    pub(crate) action_id: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) amount_cents: i64,
    pub(crate) risk: Risk,
    pub(crate) beneficiary_id: &'a str,
    pub(crate) beneficiary_name: &'a str,
    pub(crate) beneficiary_account: &'a str,
    pub(crate) summary: &'a str,
}

pub(crate) fn propose(state: &DeskState, proposal: Proposal<'_>) -> Result<Vec<ApprovalEvent>, DomainError> {
    let Proposal {
        action_id,
        kind,
        amount_cents,
        risk,
        beneficiary_id,
        beneficiary_name,
        beneficiary_account,
        summary,
    } = proposal;
    id("action_id", action_id)?;
    let kind = ActionKind::parse(kind)
        .ok_or_else(|| DomainError::new("invalid_kind", "kind is none of payout, data_export, production_change"))?;
    amount("amount_cents", amount_cents)?;
    id("beneficiary_id", beneficiary_id)?;
    line("beneficiary_name", beneficiary_name, MAX_TEXT)?;
    line("beneficiary_account", beneficiary_account, MAX_TEXT)?;
    paragraph("summary", summary, MAX_SUMMARY)?;
    let policy = state.policy.as_ref().ok_or_else(|| {
        DomainError::new(
            "policy_not_set",
            "the desk has no approval policy: no one to ask, nothing executes on its own",
        )
    })?;
    if state.actions.contains_key(action_id) {
        return Err(DomainError::new(
            "action_exists",
            format!("action {action_id} already exists"),
        ));
    }
    let proposed = ApprovalEvent::ActionProposed {
        action_id: action_id.to_owned(),
        kind,
        amount_cents,
        risk,
        beneficiary_id: beneficiary_id.to_owned(),
        beneficiary_name: beneficiary_name.to_owned(),
        beneficiary_account: beneficiary_account.to_owned(),
        summary: summary.to_owned(),
    };
    let next = if policy.auto_executes(amount_cents, risk) {
        ApprovalEvent::ActionExecuted {
            action_id: action_id.to_owned(),
            automatic: true,
            kind,
            amount_cents,
        }
    } else {
        ApprovalEvent::ApprovalRequested {
            action_id: action_id.to_owned(),
            approver_id: policy.approver_id.clone(),
            kind,
            amount_cents,
            risk,
        }
    };
    Ok(vec![proposed, next])
}
