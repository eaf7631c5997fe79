//! Random histories of policies, proposals, decisions and reverts.

use keel_domain::testing::Scenario;
use proptest::prelude::*;

use super::{approve, deny, propose, revert};
use crate::{ActionStatus, ApprovalCommand as C, ApprovalDesk, ApprovalEvent as E, Risk};

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Policy(i64, Risk),
    Propose(i64, Risk),
    Approve(usize),
    Deny(usize),
    Revert(usize),
}

fn risk() -> impl Strategy<Value = Risk> {
    prop_oneof![Just(Risk::Low), Just(Risk::Medium), Just(Risk::High)]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (0i64..20_000, risk()).prop_map(|(cents, risk)| Step::Policy(cents, risk)),
            (0i64..20_000, risk()).prop_map(|(cents, risk)| Step::Propose(cents, risk)),
            (0usize..20).prop_map(Step::Approve),
            (0usize..20).prop_map(Step::Deny),
            (0usize..20).prop_map(Step::Revert),
        ],
        0..40,
    )
}

proptest! {
    /// Whatever the order of policies, proposals, decisions and reverts: an action executes
    /// on its own only within the policy in force, a human-approved one only after a
    /// request, none twice; and the desk's executed total is the sum of executions not
    /// reverted.
    #[test]
    fn executions_follow_the_policy_and_the_total_adds_up(steps in steps()) {
        let mut history = vec![];
        for step in steps {
            let scenario = Scenario::<ApprovalDesk>::given(history.clone());
            let nth = |index: usize| scenario.state().actions.iter().nth(index).map(|(id, action)| (id.clone(), action.clone()));
            let command = match step {
                Step::Policy(cents, risk) => C::SetApprovalPolicy {
                    approver_id: "ana".into(),
                    auto_execute_max_cents: cents,
                    auto_execute_max_risk: risk,
                },
                Step::Propose(cents, risk) => propose(&format!("a-{}", history.len()), cents, risk),
                Step::Approve(index) => { let Some((id, _)) = nth(index) else { continue }; approve(&id) }
                Step::Deny(index) => { let Some((id, _)) = nth(index) else { continue }; deny(&id) }
                Step::Revert(index) => {
                    let Some((id, action)) = nth(index) else { continue };
                    revert(&id, action.executed_by.unwrap_or_default())
                }
            };
            let policy = scenario.state().policy.clone();
            // Ids from `given` are fresh per scenario, so reverts are run against the same
            // scenario they were read from.
            let Ok(events) = scenario.when(&command) else { continue };
            for event in &events {
                if let E::ActionExecuted { action_id, automatic, amount_cents, .. } = event {
                    let before = scenario.state().actions.get(action_id).map(|action| action.status);
                    if *automatic {
                        let policy = policy.as_ref().ok_or_else(|| TestCaseError::fail("executed without a policy"))?;
                        let risk = match &events[0] { E::ActionProposed { risk, .. } => *risk, _ => Risk::High };
                        prop_assert!(policy.auto_executes(*amount_cents, risk));
                        prop_assert_eq!(before, None);
                    } else {
                        prop_assert_eq!(before, Some(ActionStatus::Pending));
                    }
                }
            }
            history.extend(events);
        }
        let state = Scenario::<ApprovalDesk>::given(history.clone()).state().clone();
        let expected: i64 = state
            .actions
            .values()
            .filter(|action| action.status == ActionStatus::Executed)
            .map(|action| action.amount_cents)
            .sum();
        prop_assert_eq!(state.executed_cents, expected);
        for action_id in state.actions.keys() {
            let executions = history
                .iter()
                .filter(|event| matches!(event, E::ActionExecuted { action_id: id, .. } if id == action_id))
                .count();
            prop_assert!(executions <= 1, "{} executed {} times", action_id, executions);
        }
    }
}
