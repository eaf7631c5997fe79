//! Keel's second worked domain: actions an AI agent proposes, under human approval.
//!
//! One stream per approval desk of a tenant (the stream id names the desk, e.g. `payouts`).
//! A person sets the desk's policy: who approves, and the largest amount and highest risk
//! that may execute without them. An agent proposes actions (a payout, a data export, a
//! production change) for a beneficiary, whose name and account are personal data. Within
//! the policy an action executes in the same decision; beyond it, the approver is asked, and
//! approves (the action executes) or denies. An executed action is undone by a revert that
//! names the execution event it compensates. A desk without a policy takes no proposals.
//!
//! The domain is written against Keel's public crates only: it is a pure
//! [`keel_domain::Aggregate`] whose state holds no personal data (ids, statuses, amounts),
//! and its wire schemas are `schemas/approvals/` ([`keel_domain::WireSchemas`]). Who may
//! send which command (agents propose, people decide) and how much an agent may propose
//! are the tenant's Keel policy; the desk's own policy decides what needs a human.
//!
//! **Deadlines** are left to process managers, which come later: a version 2 of
//! `ApprovalRequested` would carry an optional `due_at`, a process manager watching it would
//! send a command that expires the action once it passes, and this aggregate would then
//! refuse to approve an expired action. The domain keeps no timers.

mod checks;
mod command;
mod decide;
mod event;
mod kind;
mod policy;
mod propose;
mod revert;
mod risk;
mod state;

pub use checks::MAX_ACTION_CENTS;
pub use command::ApprovalCommand;
pub use event::ApprovalEvent;
pub use kind::ActionKind;
pub use risk::Risk;
pub use state::{ActionState, ActionStatus, DeskState, PolicyState};

use keel_domain::{Aggregate, DomainError, Recorded, WireSchemas};

/// The approval desk aggregate.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalDesk;

impl Aggregate for ApprovalDesk {
    const NAME: &'static str = "desk";
    type State = DeskState;
    type Command = ApprovalCommand;
    type Event = ApprovalEvent;

    fn handle(state: &DeskState, command: &ApprovalCommand) -> Result<Vec<ApprovalEvent>, DomainError> {
        use ApprovalCommand as C;
        match command {
            C::SetApprovalPolicy {
                approver_id,
                auto_execute_max_cents,
                auto_execute_max_risk,
            } => policy::set(state, approver_id, *auto_execute_max_cents, *auto_execute_max_risk),
            C::ProposeAction {
                action_id,
                kind,
                amount_cents,
                risk,
                beneficiary_id,
                beneficiary_name,
                beneficiary_account,
                summary,
            } => propose::propose(
                state,
                propose::Proposal {
                    action_id,
                    kind,
                    amount_cents: *amount_cents,
                    risk: *risk,
                    beneficiary_id,
                    beneficiary_name,
                    beneficiary_account,
                    summary,
                },
            ),
            C::ApproveAction { action_id, reason } => decide::approve(state, action_id, reason),
            C::DenyAction { action_id, reason } => decide::deny(state, action_id, reason),
            C::RevertAction {
                action_id,
                compensates,
                reason,
            } => revert::revert(state, action_id, *compensates, reason),
        }
    }

    fn apply(state: DeskState, event: &ApprovalEvent, recorded: &Recorded) -> DeskState {
        state.apply(event, recorded)
    }
}

impl WireSchemas for ApprovalDesk {
    const COMMAND_NAMESPACE: &'static str = "dev.keel.approvals.commands";
    const EVENT_NAMESPACE: &'static str = "dev.keel.approvals.events";
    const SCHEMAS: &'static [&'static str] = &[
        include_str!("../../../schemas/approvals/commands/ApproveAction.v1.avsc"),
        include_str!("../../../schemas/approvals/commands/DenyAction.v1.avsc"),
        include_str!("../../../schemas/approvals/commands/ProposeAction.v1.avsc"),
        include_str!("../../../schemas/approvals/commands/RevertAction.v1.avsc"),
        include_str!("../../../schemas/approvals/commands/SetApprovalPolicy.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ActionApproved.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ActionDenied.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ActionExecuted.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ActionProposed.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ActionReverted.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ApprovalPolicySet.v1.avsc"),
        include_str!("../../../schemas/approvals/events/ApprovalRequested.v1.avsc"),
    ];
}

#[cfg(test)]
mod tests;
