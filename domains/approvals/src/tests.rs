//! Given/when/then tests of the approval desk: every rule and every refusal.

mod history;

use keel_domain::testing::Scenario;
use keel_domain::{DomainCommand, DomainError, DomainEvent};
use uuid::Uuid;

use crate::{ActionKind, ActionStatus, ApprovalCommand as C, ApprovalDesk, ApprovalEvent as E, MAX_ACTION_CENTS, Risk};

/// A policy: Ana approves; up to 100.00 of at most medium risk executes on its own.
fn policy() -> E {
    E::ApprovalPolicySet {
        approver_id: "ana".into(),
        auto_execute_max_cents: 10_000,
        auto_execute_max_risk: Risk::Medium,
    }
}

fn propose(action_id: &str, amount_cents: i64, risk: Risk) -> C {
    C::ProposeAction {
        action_id: action_id.into(),
        kind: "payout".into(),
        amount_cents,
        risk,
        beneficiary_id: "b-1".into(),
        beneficiary_name: "Ada Lovelace".into(),
        beneficiary_account: "GB33BUKB20201555555555".into(),
        summary: "Invoice 42, due today".into(),
    }
}

fn proposed(action_id: &str, amount_cents: i64, risk: Risk) -> E {
    E::ActionProposed {
        action_id: action_id.into(),
        kind: ActionKind::Payout,
        amount_cents,
        risk,
        beneficiary_id: "b-1".into(),
        beneficiary_name: "Ada Lovelace".into(),
        beneficiary_account: "GB33BUKB20201555555555".into(),
        summary: "Invoice 42, due today".into(),
    }
}

fn requested(action_id: &str, amount_cents: i64, risk: Risk) -> E {
    E::ApprovalRequested {
        action_id: action_id.into(),
        approver_id: "ana".into(),
        kind: ActionKind::Payout,
        amount_cents,
        risk,
    }
}

fn executed(action_id: &str, amount_cents: i64, automatic: bool) -> E {
    E::ActionExecuted {
        action_id: action_id.into(),
        automatic,
        kind: ActionKind::Payout,
        amount_cents,
    }
}

/// A desk with the policy and one action `a-1` of 500.00 waiting for Ana.
fn pending() -> Scenario<ApprovalDesk> {
    Scenario::given([
        policy(),
        proposed("a-1", 50_000, Risk::Low),
        requested("a-1", 50_000, Risk::Low),
    ])
}

/// A desk with the policy and `a-1` executed on its own: its execution is event 2.
fn auto_executed() -> Scenario<ApprovalDesk> {
    Scenario::given([
        policy(),
        proposed("a-1", 2_500, Risk::Low),
        executed("a-1", 2_500, true),
    ])
}

fn code(result: Result<Vec<E>, DomainError>) -> &'static str {
    result.expect_err("the command should be refused").code
}

fn approve(action_id: &str) -> C {
    C::ApproveAction {
        action_id: action_id.into(),
        reason: "invoice checked".into(),
    }
}

fn deny(action_id: &str) -> C {
    C::DenyAction {
        action_id: action_id.into(),
        reason: "duplicate invoice".into(),
    }
}

fn revert(action_id: &str, compensates: Uuid) -> C {
    C::RevertAction {
        action_id: action_id.into(),
        compensates,
        reason: "paid twice".into(),
    }
}

#[test]
fn setting_a_policy_records_it() {
    let command = C::SetApprovalPolicy {
        approver_id: "ana".into(),
        auto_execute_max_cents: 10_000,
        auto_execute_max_risk: Risk::Medium,
    };
    let scenario = Scenario::<ApprovalDesk>::given([]);
    assert_eq!(scenario.when(&command), Ok(vec![policy()]));
}

#[test]
fn setting_the_policy_in_force_again_records_nothing() {
    let same = C::SetApprovalPolicy {
        approver_id: "ana".into(),
        auto_execute_max_cents: 10_000,
        auto_execute_max_risk: Risk::Medium,
    };
    let stricter = C::SetApprovalPolicy {
        approver_id: "ana".into(),
        auto_execute_max_cents: 0,
        auto_execute_max_risk: Risk::Low,
    };
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    assert_eq!(scenario.when(&same), Ok(vec![]));
    assert_eq!(scenario.when(&stricter).map(|events| events.len()), Ok(1));
}

#[test]
fn a_policy_needs_an_approver_id_and_a_bounded_threshold() {
    let policy_of = |approver_id: &str, auto_execute_max_cents| C::SetApprovalPolicy {
        approver_id: approver_id.into(),
        auto_execute_max_cents,
        auto_execute_max_risk: Risk::Low,
    };
    let scenario = Scenario::<ApprovalDesk>::given([]);
    assert_eq!(code(scenario.when(&policy_of("ana smith", 0))), "invalid_id");
    assert_eq!(code(scenario.when(&policy_of("ana", -1))), "invalid_amount");
    assert_eq!(
        code(scenario.when(&policy_of("ana", MAX_ACTION_CENTS + 1))),
        "invalid_amount"
    );
}

#[test]
fn a_proposal_within_the_policy_executes_at_once() {
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    assert_eq!(
        scenario.when(&propose("a-1", 10_000, Risk::Medium)),
        Ok(vec![
            proposed("a-1", 10_000, Risk::Medium),
            executed("a-1", 10_000, true)
        ])
    );
}

#[test]
fn a_proposal_over_the_amount_threshold_asks_the_approver() {
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    assert_eq!(
        scenario.when(&propose("a-1", 10_001, Risk::Low)),
        Ok(vec![
            proposed("a-1", 10_001, Risk::Low),
            requested("a-1", 10_001, Risk::Low)
        ])
    );
}

#[test]
fn a_proposal_over_the_risk_threshold_asks_the_approver_whatever_its_amount() {
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    assert_eq!(
        scenario.when(&propose("a-1", 0, Risk::High)),
        Ok(vec![proposed("a-1", 0, Risk::High), requested("a-1", 0, Risk::High)])
    );
}

#[test]
fn a_desk_without_a_policy_takes_no_proposal() {
    let scenario = Scenario::<ApprovalDesk>::given([]);
    assert_eq!(code(scenario.when(&propose("a-1", 0, Risk::Low))), "policy_not_set");
}

#[test]
fn a_new_policy_applies_to_later_proposals_and_leaves_pending_requests_with_their_approver() {
    let zoe = E::ApprovalPolicySet {
        approver_id: "zoe".into(),
        auto_execute_max_cents: 0,
        auto_execute_max_risk: Risk::Low,
    };
    let scenario = Scenario::<ApprovalDesk>::given([
        policy(),
        proposed("a-1", 50_000, Risk::Low),
        requested("a-1", 50_000, Risk::Low),
        zoe,
    ]);
    let events = scenario.when(&propose("a-2", 1, Risk::Low)).expect("proposed");
    assert!(
        matches!(&events[1], E::ApprovalRequested { approver_id, .. } if approver_id == "zoe"),
        "{events:?}"
    );
    let approved = scenario.when(&approve("a-1")).expect("approved");
    assert!(
        matches!(&approved[0], E::ActionApproved { approver_id, .. } if approver_id == "ana"),
        "{approved:?}"
    );
}

#[test]
fn an_action_id_is_proposed_once() {
    let scenario = auto_executed();
    assert_eq!(code(scenario.when(&propose("a-1", 1, Risk::Low))), "action_exists");
}

#[test]
fn an_unknown_kind_is_refused() {
    let mut command = propose("a-1", 1, Risk::Low);
    if let C::ProposeAction { kind, .. } = &mut command {
        *kind = "wire_transfer".into();
    }
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    assert_eq!(code(scenario.when(&command)), "invalid_kind");
}

#[test]
fn every_kind_is_accepted_by_its_wire_name() {
    for kind in ActionKind::ALL {
        assert_eq!(ActionKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(ActionKind::parse("Payout"), None);
}

#[test]
fn an_amount_is_zero_to_the_bound() {
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    assert_eq!(code(scenario.when(&propose("a-1", -1, Risk::Low))), "invalid_amount");
    assert_eq!(
        code(scenario.when(&propose("a-1", i64::MAX, Risk::Low))),
        "invalid_amount"
    );
    assert_eq!(
        code(scenario.when(&propose("a-1", MAX_ACTION_CENTS + 1, Risk::Low))),
        "invalid_amount"
    );
    assert!(scenario.when(&propose("a-1", MAX_ACTION_CENTS, Risk::Low)).is_ok());
    assert!(scenario.when(&propose("a-1", 0, Risk::Low)).is_ok());
}

#[test]
fn ids_must_be_ids() {
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    let mut bad_action = propose("a 1", 1, Risk::Low);
    assert_eq!(code(scenario.when(&bad_action)), "invalid_id");
    bad_action = propose("a-1", 1, Risk::Low);
    if let C::ProposeAction { beneficiary_id, .. } = &mut bad_action {
        *beneficiary_id = "b/1".into();
    }
    assert_eq!(code(scenario.when(&bad_action)), "invalid_id");
}

#[test]
fn text_fields_are_bounded_and_refused_without_echoing_them() {
    let scenario = Scenario::<ApprovalDesk>::given([policy()]);
    let with = |edit: fn(&mut C)| {
        let mut command = propose("a-1", 1, Risk::Low);
        edit(&mut command);
        scenario.when(&command).expect_err("refused")
    };
    let cases: [fn(&mut C); 5] = [
        |c| {
            if let C::ProposeAction { beneficiary_name, .. } = c {
                *beneficiary_name = "Ada\nLovelace".into();
            }
        },
        |c| {
            if let C::ProposeAction { beneficiary_name, .. } = c {
                *beneficiary_name = "Ada Lovelace ".repeat(40);
            }
        },
        |c| {
            if let C::ProposeAction {
                beneficiary_account, ..
            } = c
            {
                *beneficiary_account = "  ".into();
            }
        },
        |c| {
            if let C::ProposeAction { summary, .. } = c {
                *summary = "Ada Lovelace ".repeat(400);
            }
        },
        |c| {
            if let C::ProposeAction { summary, .. } = c {
                *summary = "Ada Lovelace\u{1b}[31m".into();
            }
        },
    ];
    for edit in cases {
        let error = with(edit);
        assert_eq!(error.code, "invalid_field");
        assert!(!error.message.contains("Ada"), "{}", error.message);
    }
}

#[test]
fn a_summary_may_span_lines() {
    let mut command = propose("a-1", 1, Risk::Low);
    if let C::ProposeAction { summary, .. } = &mut command {
        *summary = "Invoice 42\n\tdue today".into();
    }
    assert!(Scenario::<ApprovalDesk>::given([policy()]).when(&command).is_ok());
}

#[test]
fn approving_a_pending_action_executes_it() {
    assert_eq!(
        pending().when(&approve("a-1")),
        Ok(vec![
            E::ActionApproved {
                action_id: "a-1".into(),
                approver_id: "ana".into(),
                reason: "invoice checked".into(),
            },
            executed("a-1", 50_000, false),
        ])
    );
}

#[test]
fn denying_a_pending_action_records_the_denial_only() {
    assert_eq!(
        pending().when(&deny("a-1")),
        Ok(vec![E::ActionDenied {
            action_id: "a-1".into(),
            approver_id: "ana".into(),
            reason: "duplicate invoice".into(),
        }])
    );
}

#[test]
fn only_a_pending_action_is_approved_or_denied() {
    let executed = auto_executed();
    assert_eq!(code(executed.when(&approve("a-1"))), "action_not_pending");
    assert_eq!(code(executed.when(&deny("a-1"))), "action_not_pending");

    let denied = E::ActionDenied {
        action_id: "a-1".into(),
        approver_id: "ana".into(),
        reason: "no".into(),
    };
    let scenario = Scenario::<ApprovalDesk>::given([
        policy(),
        proposed("a-1", 50_000, Risk::Low),
        requested("a-1", 50_000, Risk::Low),
        denied,
    ]);
    assert_eq!(code(scenario.when(&approve("a-1"))), "action_not_pending");
    assert_eq!(code(scenario.when(&deny("a-1"))), "action_not_pending");
}

#[test]
fn deciding_on_an_unknown_action_is_refused() {
    assert_eq!(code(pending().when(&approve("a-9"))), "action_not_found");
    assert_eq!(code(pending().when(&deny("a-9"))), "action_not_found");
    assert_eq!(code(pending().when(&revert("a-9", Uuid::new_v4()))), "action_not_found");
}

#[test]
fn a_decision_needs_a_reason() {
    let command = C::ApproveAction {
        action_id: "a-1".into(),
        reason: " ".into(),
    };
    assert_eq!(code(pending().when(&command)), "invalid_field");
}

#[test]
fn reverting_an_execution_names_it_and_takes_its_amount_back() {
    let scenario = auto_executed();
    assert_eq!(scenario.state().executed_cents, 2_500);
    let execution = scenario.event_id(2);
    let events = scenario.when(&revert("a-1", execution)).expect("reverted");
    assert_eq!(
        events,
        [E::ActionReverted {
            action_id: "a-1".into(),
            compensates: execution,
            reason: "paid twice".into(),
            kind: ActionKind::Payout,
            amount_cents: 2_500,
        }]
    );
    assert_eq!(events[0].compensates(), Some(execution));
}

#[test]
fn a_revert_must_name_the_execution_it_undoes() {
    let scenario = auto_executed();
    let proposal = scenario.event_id(1);
    assert_eq!(code(scenario.when(&revert("a-1", proposal))), "compensation_mismatch");
    assert_eq!(
        code(scenario.when(&revert("a-1", Uuid::new_v4()))),
        "compensation_mismatch"
    );
}

#[test]
fn an_action_is_reverted_once() {
    let mut history = vec![
        policy(),
        proposed("a-1", 2_500, Risk::Low),
        executed("a-1", 2_500, true),
    ];
    let scenario = Scenario::<ApprovalDesk>::given(history.clone());
    let reverted = scenario.when(&revert("a-1", scenario.event_id(2))).expect("reverted");
    history.extend(reverted);
    let scenario = Scenario::<ApprovalDesk>::given(history);
    assert_eq!(scenario.state().actions["a-1"].status, ActionStatus::Reverted);
    assert_eq!(scenario.state().executed_cents, 0);
    assert_eq!(
        code(scenario.when(&revert("a-1", scenario.event_id(2)))),
        "action_already_reverted"
    );
}

#[test]
fn an_action_that_never_executed_cannot_be_reverted() {
    let scenario = pending();
    assert_eq!(
        code(scenario.when(&revert("a-1", scenario.event_id(2)))),
        "action_not_executed"
    );
}

#[test]
fn events_name_their_types_and_only_a_revert_compensates() {
    let events = [
        policy(),
        proposed("a-1", 1, Risk::Low),
        requested("a-1", 1, Risk::Low),
        executed("a-1", 1, false),
    ];
    let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        types,
        [
            "ApprovalPolicySet",
            "ActionProposed",
            "ApprovalRequested",
            "ActionExecuted"
        ]
    );
    assert!(events.iter().all(|event| event.compensates().is_none()));
}

#[test]
fn a_proposal_exposes_its_amount_and_a_policy_its_threshold_to_keel_policies() {
    let command = propose("a-1", 4_200, Risk::Low);
    assert_eq!(command.command_type(), "ProposeAction");
    assert_eq!(command.quantity("amount_cents"), Some(4_200));
    assert_eq!(command.quantity("auto_execute_max_cents"), None);
    let policy = C::SetApprovalPolicy {
        approver_id: "ana".into(),
        auto_execute_max_cents: 9_900,
        auto_execute_max_risk: Risk::Low,
    };
    assert_eq!(policy.quantity("auto_execute_max_cents"), Some(9_900));
    assert_eq!(policy.quantity("amount_cents"), None);
    assert_eq!(approve("a-1").quantity("amount_cents"), None);
}

#[test]
fn state_snapshots_hold_no_personal_data() -> Result<(), Box<dyn std::error::Error>> {
    let scenario = auto_executed();
    let snapshot = serde_json::to_string(scenario.state())?;
    for personal in ["Ada", "Lovelace", "GB33BUKB", "b-1"] {
        assert!(
            !snapshot.contains(personal),
            "{personal:?} leaked into the snapshot: {snapshot}"
        );
    }
    Ok(())
}
