//! The commands agents and people send to an approval desk.
//!
//! Who may send which is a matter of the tenant's Keel policy, not of the domain (the domain
//! never sees the actor): the intended split is that agents send `ProposeAction`, and
//! humans send `SetApprovalPolicy`, `ApproveAction`, `DenyAction` and `RevertAction`.

use keel_domain::DomainCommand;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Risk;

/// A command on one approval desk's stream. Field values marked *personal* are the
/// beneficiary's personal data; commands travel in plaintext on the short-retention commands
/// topic only, events seal them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalCommand {
    /// Sets who approves the desk's actions and what may execute without them. Replaces
    /// the previous policy for actions proposed from then on.
    SetApprovalPolicy {
        /// Who approves or denies what the policy does not let execute on its own.
        approver_id: String,
        /// The largest amount, in cents, that may execute without approval.
        auto_execute_max_cents: i64,
        /// The highest risk that may execute without approval.
        auto_execute_max_risk: Risk,
    },
    /// An agent proposes an action; within the policy it executes at once, otherwise it
    /// waits for the approver.
    ProposeAction {
        /// The action's id, unique within the desk.
        action_id: String,
        /// `payout`, `data_export` or `production_change` ([`crate::ActionKind`]).
        kind: String,
        /// Amount in cents, 0 for actions that move no money (the quantity `amount_cents`
        /// policies limit).
        amount_cents: i64,
        /// The risk the agent assigns.
        risk: Risk,
        /// The beneficiary's data-subject id.
        beneficiary_id: String,
        /// The beneficiary's name (personal).
        beneficiary_name: String,
        /// The beneficiary's account, e.g. an IBAN or an email (personal).
        beneficiary_account: String,
        /// What the action does and why, for the approver (operational text, no personal
        /// data).
        summary: String,
    },
    /// The approver approves a pending action, which then executes.
    ApproveAction {
        /// Which action.
        action_id: String,
        /// Why (operational text, no personal data).
        reason: String,
    },
    /// The approver denies a pending action; it never executes.
    DenyAction {
        /// Which action.
        action_id: String,
        /// Why (operational text, no personal data).
        reason: String,
    },
    /// Compensation: undoes the execution event `compensates` of an executed action.
    RevertAction {
        /// Which action.
        action_id: String,
        /// The id of the `ActionExecuted` event being undone.
        compensates: Uuid,
        /// Why (operational text, no personal data).
        reason: String,
    },
}

impl DomainCommand for ApprovalCommand {
    fn command_type(&self) -> &'static str {
        match self {
            Self::SetApprovalPolicy { .. } => "SetApprovalPolicy",
            Self::ProposeAction { .. } => "ProposeAction",
            Self::ApproveAction { .. } => "ApproveAction",
            Self::DenyAction { .. } => "DenyAction",
            Self::RevertAction { .. } => "RevertAction",
        }
    }

    /// `amount_cents` of a proposal, so that a Keel policy can cap what an agent proposes
    /// whatever the desk's own threshold; `auto_execute_max_cents` of a policy, so that a
    /// Keel policy can cap the threshold a person may set.
    fn quantity(&self, name: &str) -> Option<i64> {
        match (self, name) {
            (Self::ProposeAction { amount_cents, .. }, "amount_cents") => Some(*amount_cents),
            (
                Self::SetApprovalPolicy {
                    auto_execute_max_cents, ..
                },
                "auto_execute_max_cents",
            ) => Some(*auto_execute_max_cents),
            _ => None,
        }
    }
}
