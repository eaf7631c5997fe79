//! The events recorded on an approval desk's stream. Each variant is one Avro record type in
//! `schemas/approvals/events/`, where its personal fields are marked with their subject.
//!
//! Events carry what their readers key and sum by (an execution its kind and amount, a
//! decision the approver it was asked of), so that projections write rows from each event
//! alone.

use keel_domain::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ActionKind, Risk};

/// An event on one approval desk's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalEvent {
    /// The desk's approval policy was set.
    ApprovalPolicySet {
        /// Who approves what the policy does not let execute on its own.
        approver_id: String,
        /// The largest amount, in cents, that executes without approval.
        auto_execute_max_cents: i64,
        /// The highest risk that executes without approval.
        auto_execute_max_risk: Risk,
    },
    /// An agent proposed an action. `beneficiary_name`, `beneficiary_account`: the
    /// beneficiary's personal data. Followed, in the same decision, by `ActionExecuted`
    /// (within the policy) or `ApprovalRequested`.
    ActionProposed {
        /// The action's id.
        action_id: String,
        /// What it does.
        kind: ActionKind,
        /// Amount in cents.
        amount_cents: i64,
        /// The risk the agent assigned.
        risk: Risk,
        /// The beneficiary (data subject) id.
        beneficiary_id: String,
        /// The beneficiary's name (personal).
        beneficiary_name: String,
        /// The beneficiary's account (personal).
        beneficiary_account: String,
        /// What the action does and why.
        summary: String,
    },
    /// The action exceeds what the policy lets execute: it waits for the approver.
    ///
    /// Deadlines come with process managers: a later schema version adds an optional
    /// `due_at` (timestamp-micros) here, and a process manager that sees it passing sends a
    /// command that expires the action. The domain itself keeps no timers.
    ApprovalRequested {
        /// The action.
        action_id: String,
        /// Who is asked, as the policy named them when the action was proposed.
        approver_id: String,
        /// What the action does.
        kind: ActionKind,
        /// Its amount in cents.
        amount_cents: i64,
        /// Its risk.
        risk: Risk,
    },
    /// The approver approved the action; `ActionExecuted` follows in the same decision.
    ActionApproved {
        /// The action.
        action_id: String,
        /// The approver the request was addressed to.
        approver_id: String,
        /// Why.
        reason: String,
    },
    /// The approver denied the action; it never executes.
    ActionDenied {
        /// The action.
        action_id: String,
        /// The approver the request was addressed to.
        approver_id: String,
        /// Why.
        reason: String,
    },
    /// The action executed: on its own within the policy (`automatic`), or once approved.
    ActionExecuted {
        /// The action.
        action_id: String,
        /// Whether it executed without a human's approval.
        automatic: bool,
        /// What it did.
        kind: ActionKind,
        /// Its amount in cents.
        amount_cents: i64,
    },
    /// Compensation: an executed action was reverted.
    ActionReverted {
        /// The action.
        action_id: String,
        /// The `ActionExecuted` event undone.
        compensates: Uuid,
        /// Why.
        reason: String,
        /// What the action did.
        kind: ActionKind,
        /// The amount taken back, in cents.
        amount_cents: i64,
    },
}

impl ApprovalEvent {
    /// The action the event is about, if any (every event but a policy's).
    pub fn action_id(&self) -> Option<&str> {
        match self {
            Self::ApprovalPolicySet { .. } => None,
            Self::ActionProposed { action_id, .. }
            | Self::ApprovalRequested { action_id, .. }
            | Self::ActionApproved { action_id, .. }
            | Self::ActionDenied { action_id, .. }
            | Self::ActionExecuted { action_id, .. }
            | Self::ActionReverted { action_id, .. } => Some(action_id),
        }
    }
}

impl DomainEvent for ApprovalEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ApprovalPolicySet { .. } => "ApprovalPolicySet",
            Self::ActionProposed { .. } => "ActionProposed",
            Self::ApprovalRequested { .. } => "ApprovalRequested",
            Self::ActionApproved { .. } => "ActionApproved",
            Self::ActionDenied { .. } => "ActionDenied",
            Self::ActionExecuted { .. } => "ActionExecuted",
            Self::ActionReverted { .. } => "ActionReverted",
        }
    }

    fn compensates(&self) -> Option<Uuid> {
        match self {
            Self::ActionReverted { compensates, .. } => Some(*compensates),
            _ => None,
        }
    }
}
