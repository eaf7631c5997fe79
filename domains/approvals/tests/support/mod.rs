//! One value of every command and event variant, shared by the schema and wire tests.

use keel_approvals::{ActionKind, ApprovalCommand, ApprovalEvent, Risk};
use uuid::Uuid;

/// One command of each type, with every field set.
pub(crate) fn every_command() -> Vec<ApprovalCommand> {
    vec![
        ApprovalCommand::SetApprovalPolicy {
            approver_id: "ana".into(),
            auto_execute_max_cents: 10_000,
            auto_execute_max_risk: Risk::Medium,
        },
        ApprovalCommand::ProposeAction {
            action_id: "a-1".into(),
            kind: "data_export".into(),
            amount_cents: 0,
            risk: Risk::High,
            beneficiary_id: "b-1".into(),
            beneficiary_name: "Ada Canary".into(),
            beneficiary_account: "ada@example.com".into(),
            summary: "Export of ticket history\nfor audit".into(),
        },
        ApprovalCommand::ApproveAction {
            action_id: "a-1".into(),
            reason: "checked".into(),
        },
        ApprovalCommand::DenyAction {
            action_id: "a-1".into(),
            reason: "not needed".into(),
        },
        ApprovalCommand::RevertAction {
            action_id: "a-1".into(),
            compensates: Uuid::now_v7(),
            reason: "paid twice".into(),
        },
    ]
}

/// One event of each type, with every field set.
pub(crate) fn every_event() -> Vec<ApprovalEvent> {
    vec![
        ApprovalEvent::ApprovalPolicySet {
            approver_id: "ana".into(),
            auto_execute_max_cents: 10_000,
            auto_execute_max_risk: Risk::Low,
        },
        ApprovalEvent::ActionProposed {
            action_id: "a-1".into(),
            kind: ActionKind::Payout,
            amount_cents: 50_000,
            risk: Risk::Medium,
            beneficiary_id: "b-1".into(),
            beneficiary_name: "Ada Canary".into(),
            beneficiary_account: "GB33BUKB20201555555555".into(),
            summary: "Invoice 42".into(),
        },
        ApprovalEvent::ApprovalRequested {
            action_id: "a-1".into(),
            approver_id: "ana".into(),
            kind: ActionKind::Payout,
            amount_cents: 50_000,
            risk: Risk::Medium,
        },
        ApprovalEvent::ActionApproved {
            action_id: "a-1".into(),
            approver_id: "ana".into(),
            reason: "checked".into(),
        },
        ApprovalEvent::ActionDenied {
            action_id: "a-2".into(),
            approver_id: "ana".into(),
            reason: "duplicate".into(),
        },
        ApprovalEvent::ActionExecuted {
            action_id: "a-1".into(),
            automatic: false,
            kind: ActionKind::ProductionChange,
            amount_cents: 50_000,
        },
        ApprovalEvent::ActionReverted {
            action_id: "a-1".into(),
            compensates: Uuid::now_v7(),
            reason: "paid twice".into(),
            kind: ActionKind::Payout,
            amount_cents: 50_000,
        },
    ]
}
