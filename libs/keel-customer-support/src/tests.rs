//! Given/when/then tests of the customer aggregate.

use keel_domain::testing::Scenario;
use keel_domain::{DomainCommand, DomainEvent};
use proptest::prelude::*;
use uuid::Uuid;

use crate::{Customer, SubscriptionStatus, SupportCommand as C, SupportEvent as E};

fn registered() -> E {
    E::CustomerRegistered {
        customer_id: "c-1".into(),
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        address: "12 St James's Square, London".into(),
    }
}

fn started(subscription_id: &str) -> E {
    E::SubscriptionStarted {
        customer_id: "c-1".into(),
        subscription_id: subscription_id.into(),
        plan: "pro".into(),
    }
}

fn cancelled(subscription_id: &str) -> E {
    E::SubscriptionCancelled {
        customer_id: "c-1".into(),
        subscription_id: subscription_id.into(),
        reason: "asked".into(),
    }
}

fn refund(refund_id: &str, amount_cents: i64) -> E {
    E::RefundIssued {
        customer_id: "c-1".into(),
        refund_id: refund_id.into(),
        amount_cents,
        reason: "late".into(),
    }
}

fn code(result: Result<Vec<E>, keel_domain::DomainError>) -> &'static str {
    result.expect_err("the command should be refused").code
}

#[test]
fn registering_a_new_customer_records_their_personal_data() {
    let command = C::RegisterCustomer {
        customer_id: "c-1".into(),
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        address: "12 St James's Square, London".into(),
    };
    assert_eq!(Scenario::<Customer>::given([]).when(&command), Ok(vec![registered()]));
}

#[test]
fn registering_twice_is_refused() {
    let command = C::RegisterCustomer {
        customer_id: "c-1".into(),
        name: "A".into(),
        email: "a@example.com".into(),
        address: "x".into(),
    };
    assert_eq!(
        code(Scenario::<Customer>::given([registered()]).when(&command)),
        "customer_already_registered"
    );
}

#[test]
fn a_malformed_email_is_refused_without_echoing_it() {
    let command = C::RegisterCustomer {
        customer_id: "c-1".into(),
        name: "Ada".into(),
        email: "not-an-address".into(),
        address: "x".into(),
    };
    let error = Scenario::<Customer>::given([]).when(&command).expect_err("refused");
    assert_eq!(error.code, "invalid_field");
    assert!(!error.message.contains("not-an-address"), "{}", error.message);
}

#[test]
fn commands_before_registration_are_refused() {
    let command = C::StartSubscription {
        subscription_id: "s-1".into(),
        plan: "pro".into(),
    };
    assert_eq!(
        code(Scenario::<Customer>::given([]).when(&command)),
        "customer_not_registered"
    );
}

#[test]
fn a_deleted_customer_accepts_nothing_more() {
    let deleted = E::CustomerDeleted {
        customer_id: "c-1".into(),
        reason: "asked".into(),
    };
    let command = C::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents: 100,
        reason: "x".into(),
    };
    assert_eq!(
        code(Scenario::<Customer>::given([registered(), deleted]).when(&command)),
        "customer_deleted"
    );
}

#[test]
fn cancelling_an_active_subscription_then_reinstating_it_by_its_event_id() {
    let scenario = Scenario::<Customer>::given([registered(), started("s-1"), cancelled("s-1")]);
    assert_eq!(
        scenario.state().subscriptions["s-1"].status,
        SubscriptionStatus::Cancelled
    );
    let cancellation = scenario.event_id(2);

    let reinstate = C::ReinstateSubscription {
        subscription_id: "s-1".into(),
        compensates: cancellation,
    };
    let events = scenario.when(&reinstate).expect("reinstated");
    assert_eq!(
        events,
        [E::SubscriptionReinstated {
            customer_id: "c-1".into(),
            subscription_id: "s-1".into(),
            compensates: cancellation
        }]
    );
    assert_eq!(events[0].compensates(), Some(cancellation));
}

#[test]
fn a_reinstatement_must_name_the_cancellation_it_undoes() {
    let scenario = Scenario::<Customer>::given([registered(), started("s-1"), cancelled("s-1")]);
    let wrong = C::ReinstateSubscription {
        subscription_id: "s-1".into(),
        compensates: scenario.event_id(1),
    };
    assert_eq!(code(scenario.when(&wrong)), "compensation_mismatch");
}

#[test]
fn cancelling_twice_is_refused() {
    let scenario = Scenario::<Customer>::given([registered(), started("s-1"), cancelled("s-1")]);
    let again = C::CancelSubscription {
        subscription_id: "s-1".into(),
        reason: "again".into(),
    };
    assert_eq!(code(scenario.when(&again)), "subscription_not_active");
}

#[test]
fn reversing_a_refund_names_it_and_takes_its_amount_back() {
    let scenario = Scenario::<Customer>::given([registered(), refund("r-1", 2_500)]);
    assert_eq!(scenario.state().refunded_cents, 2_500);
    let issued = scenario.event_id(1);
    let events = scenario
        .when(&C::ReverseRefund {
            refund_id: "r-1".into(),
            compensates: issued,
        })
        .expect("reversed");
    assert_eq!(
        events,
        [E::RefundReversed {
            customer_id: "c-1".into(),
            refund_id: "r-1".into(),
            amount_cents: 2_500,
            compensates: issued
        }]
    );
}

#[test]
fn a_refund_must_be_positive_and_unique() {
    let scenario = Scenario::<Customer>::given([registered(), refund("r-1", 100)]);
    let zero = C::IssueRefund {
        refund_id: "r-2".into(),
        amount_cents: 0,
        reason: "x".into(),
    };
    let again = C::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents: 100,
        reason: "x".into(),
    };
    assert_eq!(code(scenario.when(&zero)), "invalid_amount");
    assert_eq!(code(scenario.when(&again)), "refund_exists");
}

#[test]
fn a_refund_is_bounded_so_that_no_total_overflows() {
    let scenario = Scenario::<Customer>::given([registered()]);
    let refund_of = |amount_cents| C::IssueRefund {
        refund_id: "r-9".into(),
        amount_cents,
        reason: "x".into(),
    };
    assert_eq!(code(scenario.when(&refund_of(i64::MAX))), "invalid_amount");
    assert_eq!(
        code(scenario.when(&refund_of(crate::MAX_REFUND_CENTS + 1))),
        "invalid_amount"
    );
    assert_eq!(
        scenario
            .when(&refund_of(crate::MAX_REFUND_CENTS))
            .map(|events| events.len()),
        Ok(1)
    );
}

#[test]
fn a_refund_exposes_its_amount_to_policy_limits() {
    let command = C::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents: 4_200,
        reason: "x".into(),
    };
    assert_eq!(command.quantity("amount_cents"), Some(4_200));
    assert_eq!(command.quantity("anything_else"), None);
    assert_eq!(command.command_type(), "IssueRefund");
}

#[test]
fn a_referral_carries_the_friends_data_under_the_friends_id() {
    let scenario = Scenario::<Customer>::given([registered()]);
    let command = C::ReferFriend {
        friend_id: "c-2".into(),
        friend_name: "Grace".into(),
        friend_email: "grace@example.com".into(),
        message: "You will like it, Ada".into(),
    };
    assert_eq!(
        scenario.when(&command),
        Ok(vec![E::FriendReferred {
            customer_id: "c-1".into(),
            friend_id: "c-2".into(),
            friend_name: "Grace".into(),
            friend_email: "grace@example.com".into(),
            message: "You will like it, Ada".into(),
        }])
    );
    let self_referral = C::ReferFriend {
        friend_id: "c-1".into(),
        friend_name: "Ada".into(),
        friend_email: "a@example.com".into(),
        message: "hi".into(),
    };
    assert_eq!(code(scenario.when(&self_referral)), "invalid_field");
}

#[test]
fn state_snapshots_hold_no_personal_data() -> Result<(), Box<dyn std::error::Error>> {
    let email = E::EmailSent {
        customer_id: "c-1".into(),
        email_id: "e-1".into(),
        to: "ada@example.com".into(),
        subject: "Your refund".into(),
        body: "Dear Ada Lovelace".into(),
    };
    let friend = E::FriendReferred {
        customer_id: "c-1".into(),
        friend_id: "c-2".into(),
        friend_name: "Grace Hopper".into(),
        friend_email: "grace@example.com".into(),
        message: "You will like it, Ada".into(),
    };
    let scenario = Scenario::<Customer>::given([registered(), email, friend]);
    let snapshot = serde_json::to_string(scenario.state())?;
    for personal in [
        "Ada",
        "Lovelace",
        "ada@example.com",
        "St James",
        "Your refund",
        "Grace",
        "grace@example.com",
    ] {
        assert!(
            !snapshot.contains(personal),
            "{personal:?} leaked into the snapshot: {snapshot}"
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum RefundStep {
    Issue(i64),
    Reverse(usize),
}

fn refund_steps() -> impl Strategy<Value = Vec<RefundStep>> {
    prop::collection::vec(
        prop_oneof![
            (1i64..1_000_000).prop_map(RefundStep::Issue),
            (0usize..20).prop_map(RefundStep::Reverse)
        ],
        0..40,
    )
}

proptest! {
    /// Whatever the order of issues and reversals, the running total is the sum of the
    /// refunds not reversed, and a refund is never reversed twice.
    #[test]
    fn refunded_total_is_the_sum_of_unreversed_refunds(steps in refund_steps()) {
        let mut history = vec![registered()];
        for step in steps {
            let scenario = Scenario::<Customer>::given(history.clone());
            let command = match step {
                RefundStep::Issue(amount) => C::IssueRefund {
                    refund_id: format!("r-{}", history.len()),
                    amount_cents: amount,
                    reason: "p".into(),
                },
                RefundStep::Reverse(index) => {
                    let Some((refund_id, refund)) = scenario.state().refunds.iter().nth(index) else { continue };
                    C::ReverseRefund { refund_id: refund_id.clone(), compensates: refund.issued_by }
                }
            };
            // Ids from `given` are fresh per scenario, so reversals are re-run against the
            // same scenario they were read from.
            if let Ok(events) = scenario.when(&command) {
                history.extend(events);
            }
        }
        let state = Scenario::<Customer>::given(history).state().clone();
        let expected: i64 = state.refunds.values().filter(|r| !r.reversed).map(|r| r.amount_cents).sum();
        prop_assert_eq!(state.refunded_cents, expected);
    }
}

#[test]
fn unknown_compensation_ids_are_refused() {
    let scenario = Scenario::<Customer>::given([registered(), refund("r-1", 100)]);
    let command = C::ReverseRefund {
        refund_id: "r-1".into(),
        compensates: Uuid::new_v4(),
    };
    assert_eq!(code(scenario.when(&command)), "compensation_mismatch");
}
