//! What an approval desk remembers between commands: ids, statuses and amounts, and never
//! personal data (state is snapshotted outside the sealed log). The beneficiary's name and
//! account live only in the sealed `ActionProposed` event; not even the beneficiary's id is
//! kept, since no rule needs it.

use std::collections::BTreeMap;

use keel_domain::Recorded;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ActionKind, ApprovalEvent, Risk};

/// The state of one approval desk's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskState {
    /// The policy in force; `None` until a person sets one, and a desk without a policy
    /// takes no proposals (it has no one to ask, and executes nothing on its own).
    pub policy: Option<PolicyState>,
    /// Every action proposed, by id.
    pub actions: BTreeMap<String, ActionState>,
    /// Executed and not reverted, in cents.
    pub executed_cents: i64,
}

/// A desk's approval policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    /// Who is asked to approve.
    pub approver_id: String,
    /// The largest amount, in cents, that executes without approval.
    pub auto_execute_max_cents: i64,
    /// The highest risk that executes without approval.
    pub auto_execute_max_risk: Risk,
}

impl PolicyState {
    /// Whether an action of `amount_cents` and `risk` executes without a human: both must
    /// be within the policy.
    pub fn auto_executes(&self, amount_cents: i64, risk: Risk) -> bool {
        amount_cents <= self.auto_execute_max_cents && risk <= self.auto_execute_max_risk
    }
}

/// One action of the desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionState {
    /// What it does.
    pub kind: ActionKind,
    /// Amount in cents.
    pub amount_cents: i64,
    /// The risk the agent assigned.
    pub risk: Risk,
    /// Where it is in its life.
    pub status: ActionStatus,
    /// Who was asked to approve it, once asked.
    pub approver_id: Option<String>,
    /// The event that executed it, which a revert must name.
    pub executed_by: Option<Uuid>,
}

/// Where an action is in its life.
///
/// `Proposed` and `Approved` last only between two events of one decision today (a proposal
/// is followed by its execution or its approval request, an approval by its execution);
/// they are states of their own so that execution can later become a step of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionStatus {
    /// Proposed; not yet executed nor sent for approval.
    Proposed,
    /// Waiting for the approver.
    Pending,
    /// Approved; not yet executed.
    Approved,
    /// Denied; final.
    Denied,
    /// Executed; a revert may undo it.
    Executed,
    /// Executed, then reverted; final.
    Reverted,
}

impl ActionStatus {
    /// The status in lowercase, for messages: `pending`, `executed`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Executed => "executed",
            Self::Reverted => "reverted",
        }
    }
}

impl DeskState {
    /// Folds one recorded event in.
    pub(crate) fn apply(mut self, event: &ApprovalEvent, recorded: &Recorded) -> Self {
        use ApprovalEvent as E;
        match event {
            E::ApprovalPolicySet {
                approver_id,
                auto_execute_max_cents,
                auto_execute_max_risk,
            } => {
                self.policy = Some(PolicyState {
                    approver_id: approver_id.clone(),
                    auto_execute_max_cents: *auto_execute_max_cents,
                    auto_execute_max_risk: *auto_execute_max_risk,
                });
            }
            E::ActionProposed {
                action_id,
                kind,
                amount_cents,
                risk,
                ..
            } => {
                let action = ActionState {
                    kind: *kind,
                    amount_cents: *amount_cents,
                    risk: *risk,
                    status: ActionStatus::Proposed,
                    approver_id: None,
                    executed_by: None,
                };
                self.actions.insert(action_id.clone(), action);
            }
            E::ApprovalRequested {
                action_id, approver_id, ..
            } => {
                if let Some(action) = self.actions.get_mut(action_id) {
                    action.status = ActionStatus::Pending;
                    action.approver_id = Some(approver_id.clone());
                }
            }
            E::ActionApproved { action_id, .. } => self.set_status(action_id, ActionStatus::Approved),
            E::ActionDenied { action_id, .. } => self.set_status(action_id, ActionStatus::Denied),
            E::ActionExecuted {
                action_id,
                amount_cents,
                ..
            } => {
                if let Some(action) = self.actions.get_mut(action_id) {
                    action.status = ActionStatus::Executed;
                    action.executed_by = Some(recorded.event_id);
                }
                self.executed_cents = self.executed_cents.saturating_add(*amount_cents);
            }
            E::ActionReverted {
                action_id,
                amount_cents,
                ..
            } => {
                self.set_status(action_id, ActionStatus::Reverted);
                self.executed_cents = self.executed_cents.saturating_sub(*amount_cents);
            }
        }
        self
    }

    fn set_status(&mut self, action_id: &str, status: ActionStatus) {
        if let Some(action) = self.actions.get_mut(action_id) {
            action.status = status;
        }
    }
}
