//! Decision tests: authentication, authorisation, versions, domain refusals and panics.

use ed25519_dalek::SigningKey;
use keel_customer_support::{Customer, CustomerState, SupportCommand, SupportEvent};
use keel_domain::testing::Scenario;
use keel_domain::{Aggregate, DomainCommand, DomainError, DomainEvent, Recorded};

use super::Decision;
use crate::test_support::{NOW, agent, credential, credential_for, gatekeeper, incoming, key, supervisor};

fn registered() -> CustomerState {
    let event = SupportEvent::CustomerRegistered {
        customer_id: "c-1".into(),
        name: "Ada".into(),
        email: "ada@example.com".into(),
        address: "London".into(),
    };
    Scenario::<Customer>::given([event]).state().clone()
}

fn refund(amount_cents: i64) -> SupportCommand {
    SupportCommand::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents,
        reason: "late".into(),
    }
}

fn rejection<E>(decision: Decision<E>) -> (String, Option<u64>) {
    match decision {
        Decision::Rejected(rejection) => (rejection.reason, rejection.current_version),
        Decision::Accepted { .. } => panic!("the command should have been refused"),
    }
}

#[test]
fn an_authorised_refund_is_accepted_with_its_rule_and_actor() {
    let decision = gatekeeper().decide::<Customer>(&incoming(refund(4_000), Some(1)), &registered(), 1, NOW);
    let Decision::Accepted {
        events,
        principal,
        authorization,
    } = decision
    else {
        panic!("expected acceptance, got {decision:?}");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type(), "RefundIssued");
    assert_eq!(principal.actor, agent());
    assert_eq!(principal.on_behalf_of, [supervisor()]);
    assert_eq!(authorization.rule, "agent-support");
}

#[test]
fn a_refund_over_the_agents_limit_is_refused() {
    let decision = gatekeeper().decide::<Customer>(&incoming(refund(9_000), None), &registered(), 1, NOW);
    assert_eq!(rejection(decision).0, "limit_exceeded");
}

#[test]
fn a_stale_expected_version_is_a_conflict_naming_the_current_version() {
    let decision = gatekeeper().decide::<Customer>(&incoming(refund(100), Some(0)), &registered(), 1, NOW);
    assert_eq!(rejection(decision), ("version_conflict".to_owned(), Some(1)));
}

#[test]
fn a_forged_credential_is_refused_before_the_domain_runs() {
    let mut command = incoming(refund(100), None);
    command.credential = credential(&SigningKey::from_bytes(&[8; 32]));
    let decision = gatekeeper().decide::<Customer>(&command, &registered(), 1, NOW);
    assert_eq!(rejection(decision).0, "credential_invalid");
}

#[test]
fn a_system_stream_is_refused_to_domain_commands() {
    let mut command = incoming(refund(100), None);
    command.stream = "keel.erasure:c-1".into();
    let decision = gatekeeper().decide::<Customer>(&command, &registered(), 1, NOW);
    assert_eq!(rejection(decision).0, "reserved_stream");
}

#[test]
fn a_domain_refusal_keeps_its_code() {
    let decision = gatekeeper().decide::<Customer>(&incoming(refund(100), None), &CustomerState::default(), 0, NOW);
    assert_eq!(rejection(decision).0, "customer_not_registered");
}

#[test]
fn an_unconfigured_tenant_is_refused() {
    let mut command = incoming(refund(100), None);
    command.tenant = "globex".into();
    let decision = gatekeeper().decide::<Customer>(&command, &registered(), 1, NOW);
    assert_eq!(rejection(decision).0, "unknown_tenant");
}

#[test]
fn a_tenant_without_a_policy_refuses_everything() {
    let mut command = incoming(refund(100), None);
    command.tenant = "initech".into();
    command.credential = credential_for("initech", &key());
    let decision = gatekeeper().decide::<Customer>(&command, &registered(), 1, NOW);
    assert_eq!(rejection(decision).0, "no_policy");
}

/// An aggregate whose `handle` panics on command "boom", for fault isolation.
struct Fragile;

#[derive(Debug, Clone)]
struct Cmd(&'static str);

#[derive(Debug, Clone, PartialEq)]
struct Evt;

impl DomainCommand for Cmd {
    fn command_type(&self) -> &'static str {
        self.0
    }
}

impl DomainEvent for Evt {
    fn event_type(&self) -> &'static str {
        "Evt"
    }
}

impl Aggregate for Fragile {
    const NAME: &'static str = "fragile";
    type State = ();
    type Command = Cmd;
    type Event = Evt;

    fn handle((): &(), command: &Cmd) -> Result<Vec<Evt>, DomainError> {
        assert!(command.0 != "boom", "the domain blew up");
        Ok(vec![Evt])
    }

    fn apply((): (), _: &Evt, _: &Recorded) {}
}

#[test]
fn a_panicking_domain_refuses_that_command_and_the_next_one_is_decided() {
    let gatekeeper = gatekeeper();
    let boom = gatekeeper.decide::<Fragile>(&incoming(Cmd("boom"), None), &(), 0, NOW);
    assert_eq!(rejection(boom).0, "internal_error");
    let fine = gatekeeper.decide::<Fragile>(&incoming(Cmd("fine"), None), &(), 0, NOW);
    assert!(matches!(fine, Decision::Accepted { events, .. } if events == [Evt]));
}
