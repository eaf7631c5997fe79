//! The rows each event plans: keyed by what they describe, stamped with the event's offset,
//! personal fields as the envelope carries them sealed.

use keel_approvals::{ActionKind, ApprovalEvent as E, Risk};
use keel_envelope::{Actor, ActorKind, EventEnvelope, SealedField, SealedPayload};
use keel_projection::{ProjectionError, StoredField};
use uuid::Uuid;

use crate::plan::{Write, plan};
use crate::{LoggedEvent, UtcDay};

/// 2026-03-01T23:59:59Z, in microseconds.
const LATE: i64 = 1_772_409_599_000_000;

/// An event as logged: its envelope (sealed fields as given) and its opened payload.
struct Logged {
    envelope: EventEnvelope,
    event: E,
    offset: i64,
}

impl Logged {
    fn as_logged(&self) -> LoggedEvent<'_> {
        LoggedEvent {
            partition: 3,
            offset: self.offset,
            bytes: &[],
            envelope: &self.envelope,
            event: Some(&self.event),
        }
    }
}

fn sealed_field(path: &str) -> SealedField {
    SealedField {
        path: path.into(),
        subject_id: "b-1".into(),
        key_id: "s1".into(),
        nonce: vec![7; 12],
        ciphertext: format!("ciphertext of {path}").into_bytes(),
    }
}

/// `event` logged at `offset` as version `version` of desk `payouts`, by `actor`.
fn logged(event: E, version: i64, offset: i64, actor: &str, recorded_at: i64) -> Logged {
    let sealed_fields = match event {
        E::ActionProposed { .. } => vec![sealed_field("beneficiary_name"), sealed_field("beneficiary_account")],
        _ => vec![],
    };
    let envelope = EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        tenant_id: "acme".into(),
        stream_id: "payouts".into(),
        stream_version: version,
        event_type: keel_domain::DomainEvent::event_type(&event).into(),
        schema_version: 1,
        recorded_at,
        command_id: Uuid::new_v4().to_string(),
        correlation_id: Uuid::new_v4().to_string(),
        actor: Actor {
            kind: if actor.starts_with("agent") {
                ActorKind::Agent
            } else {
                ActorKind::Human
            },
            id: actor.into(),
            delegation: vec![],
            authorization: None,
        },
        data_subjects: vec![],
        key_refs: vec![],
        payload: SealedPayload {
            schema_name: format!(
                "dev.keel.approvals.events.{}",
                keel_domain::DomainEvent::event_type(&event)
            ),
            key_id: "t1".into(),
            nonce: vec![0; 12],
            ciphertext: vec![1, 2, 3],
            sealed_fields,
        },
        compensates: None,
        prev_hash: vec![],
        hash: vec![],
    };
    Logged {
        envelope,
        event,
        offset,
    }
}

fn proposed() -> E {
    E::ActionProposed {
        action_id: "a-1".into(),
        kind: ActionKind::Payout,
        amount_cents: 50_000,
        risk: Risk::Medium,
        beneficiary_id: "b-1".into(),
        beneficiary_name: String::new(),
        beneficiary_account: String::new(),
        summary: "Invoice 42".into(),
    }
}

fn requested() -> E {
    E::ApprovalRequested {
        action_id: "a-1".into(),
        approver_id: "ana".into(),
        kind: ActionKind::Payout,
        amount_cents: 50_000,
        risk: Risk::Medium,
    }
}

fn executed(automatic: bool) -> E {
    E::ActionExecuted {
        action_id: "a-1".into(),
        automatic,
        kind: ActionKind::Payout,
        amount_cents: 50_000,
    }
}

fn plan_of(events: &[&Logged]) -> Result<Vec<Write>, ProjectionError> {
    let logged: Vec<LoggedEvent<'_>> = events.iter().map(|event| event.as_logged()).collect();
    plan(&logged)
}

#[test]
fn a_proposal_executed_at_once_writes_the_action_the_agents_row_and_the_days_total() -> Result<(), ProjectionError> {
    let proposal = logged(proposed(), 2, 40, "agent-7", LATE);
    let execution = logged(executed(true), 3, 41, "agent-7", LATE + 1_000_000);
    let writes = plan_of(&[&proposal, &execution])?;
    assert_eq!(writes.len(), 5, "{writes:#?}");

    let Write::ActionProposed(row) = &writes[0] else {
        panic!("{:?}", writes[0])
    };
    assert_eq!(
        (row.tenant.as_str(), row.desk_id.as_str(), row.action_id.as_str()),
        ("acme", "payouts", "a-1")
    );
    assert_eq!(row.agent_id, "agent-7", "the agent is the proposal's actor");
    assert_eq!(
        (row.kind.as_str(), row.risk.as_str(), row.amount_cents),
        ("payout", "MEDIUM", 50_000)
    );
    assert_eq!(
        row.beneficiary_name,
        StoredField::of(&proposal.envelope, "beneficiary_name").expect("sealed")
    );
    assert_eq!(
        row.beneficiary_account.ciphertext,
        b"ciphertext of beneficiary_account".to_vec()
    );
    assert_eq!(
        (
            row.outcome.as_str(),
            row.version,
            row.partition,
            row.offset,
            row.timestamp
        ),
        ("pending", 2, 3, 40, 40)
    );

    let Write::AgentProposed(row) = &writes[1] else {
        panic!("{:?}", writes[1])
    };
    assert_eq!(
        (row.agent_id.as_str(), row.outcome.as_str(), row.timestamp),
        ("agent-7", "pending", 40)
    );

    let Write::ActionExecuted(row) = &writes[2] else {
        panic!("{:?}", writes[2])
    };
    let execution_id = Uuid::parse_str(&execution.envelope.event_id).expect("a uuid");
    assert_eq!(row.executed_by, execution_id, "a revert names this event");
    assert!(row.automatic);
    assert_eq!((row.outcome.as_str(), row.timestamp), ("executed", 41));

    let Write::AgentOutcome(row) = &writes[3] else {
        panic!("{:?}", writes[3])
    };
    assert_eq!(
        (row.agent_id.as_str(), row.outcome.as_str(), row.timestamp),
        ("agent-7", "executed", 41)
    );

    let Write::DayExecuted(row) = &writes[4] else {
        panic!("{:?}", writes[4])
    };
    let next_day = UtcDay::from_ymd(2026, 3, 2).expect("a day").to_cql();
    assert_eq!(row.day, next_day, "executed a second after midnight UTC");
    assert_eq!(
        (row.kind.as_str(), row.amount_cents, row.automatic, row.event_id),
        ("payout", 50_000, true, execution_id)
    );
    Ok(())
}

#[test]
fn a_request_adds_a_pending_row_that_the_decision_removes_at_a_later_timestamp() -> Result<(), ProjectionError> {
    let request = logged(requested(), 3, 41, "agent-7", LATE);
    let approval = logged(
        E::ActionApproved {
            action_id: "a-1".into(),
            approver_id: "ana".into(),
            reason: "checked".into(),
        },
        4,
        90,
        "ana",
        LATE + 60_000_000,
    );
    let writes = plan_of(&[&request, &approval])?;
    let Some(Write::PendingAdded(added)) = writes.iter().find(|w| matches!(w, Write::PendingAdded(_))) else {
        panic!("{writes:#?}")
    };
    let Some(Write::PendingRemoved(removed)) = writes.iter().find(|w| matches!(w, Write::PendingRemoved(_))) else {
        panic!("{writes:#?}")
    };
    let key = |tenant: &str, approver: &str, desk: &str, action: &str| {
        (
            tenant.to_owned(),
            approver.to_owned(),
            desk.to_owned(),
            action.to_owned(),
        )
    };
    assert_eq!(
        key(&added.tenant, &added.approver_id, &added.desk_id, &added.action_id),
        key(
            &removed.tenant,
            &removed.approver_id,
            &removed.desk_id,
            &removed.action_id
        ),
        "the removal deletes the row the request added"
    );
    assert_eq!(added.requested_by.to_string(), request.envelope.event_id);
    assert_eq!(
        (added.amount_cents, added.risk.as_str(), added.timestamp),
        (50_000, "MEDIUM", 41)
    );
    assert!(
        removed.timestamp > added.timestamp,
        "the tombstone outlives a replayed request"
    );

    let Some(Write::ActionDecided(decision)) = writes.iter().find(|w| matches!(w, Write::ActionDecided(_))) else {
        panic!("{writes:#?}")
    };
    assert_eq!(
        (decision.decision.as_str(), decision.decided_by.as_str()),
        ("approved", "ana")
    );
    assert!(
        !writes
            .iter()
            .any(|w| matches!(w, Write::AgentOutcome(_) | Write::AgentOutcomeOfStoredAction(_))),
        "an approval alone changes no outcome: the execution does"
    );
    Ok(())
}

#[test]
fn an_outcome_of_a_proposal_from_an_earlier_batch_is_left_to_look_up_its_agent() -> Result<(), ProjectionError> {
    let execution = logged(executed(false), 5, 91, "ana", LATE);
    let writes = plan_of(&[&execution])?;
    let Some(Write::AgentOutcomeOfStoredAction(row)) = writes.get(1) else {
        panic!("{writes:#?}")
    };
    assert_eq!(
        row.agent_id, "",
        "not the approver: the agent is read from the action's row"
    );
    assert_eq!(row.outcome, "executed");
    Ok(())
}

#[test]
fn a_denial_ends_the_action_and_removes_it_from_the_approvers_queue() -> Result<(), ProjectionError> {
    let proposal = logged(proposed(), 2, 40, "agent-7", LATE);
    let denial = logged(
        E::ActionDenied {
            action_id: "a-1".into(),
            approver_id: "ana".into(),
            reason: "duplicate".into(),
        },
        4,
        60,
        "ana",
        LATE,
    );
    let writes = plan_of(&[&proposal, &denial])?;
    let outcomes: Vec<(&str, &str)> = writes
        .iter()
        .filter_map(|write| match write {
            Write::ActionOutcome(row) => Some(("action", row.outcome.as_str())),
            Write::AgentOutcome(row) => Some((row.agent_id.as_str(), row.outcome.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes, [("action", "denied"), ("agent-7", "denied")]);
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, Write::PendingRemoved(row) if row.approver_id == "ana"))
    );
    assert!(
        !writes
            .iter()
            .any(|w| matches!(w, Write::DayExecuted(_) | Write::DayReverted(_)))
    );
    Ok(())
}

#[test]
fn a_revert_counts_on_the_day_it_happens() -> Result<(), ProjectionError> {
    let compensates = Uuid::now_v7();
    let revert = logged(
        E::ActionReverted {
            action_id: "a-1".into(),
            compensates,
            reason: "paid twice".into(),
            kind: ActionKind::DataExport,
            amount_cents: 0,
        },
        6,
        120,
        "ana",
        LATE,
    );
    let writes = plan_of(&[&revert])?;
    let Some(Write::ActionReverted(row)) = writes.first() else {
        panic!("{writes:#?}")
    };
    assert_eq!(
        (row.outcome.as_str(), row.revert_reason.as_str()),
        ("reverted", "paid twice")
    );
    let Some(Write::DayReverted(day)) = writes.last() else {
        panic!("{writes:#?}")
    };
    assert_eq!(day.day, UtcDay::from_ymd(2026, 3, 1).expect("a day").to_cql());
    assert_eq!((day.kind.as_str(), day.timestamp), ("data_export", 120));
    Ok(())
}

#[test]
fn a_policy_a_system_event_and_an_erased_tenants_event_write_nothing() -> Result<(), ProjectionError> {
    let policy = logged(
        E::ApprovalPolicySet {
            approver_id: "ana".into(),
            auto_execute_max_cents: 1,
            auto_execute_max_risk: Risk::Low,
        },
        1,
        10,
        "ana",
        LATE,
    );
    assert_eq!(plan_of(&[&policy])?, []);
    let proposal = logged(proposed(), 2, 40, "agent-7", LATE);
    let unopened = LoggedEvent {
        event: None,
        ..proposal.as_logged()
    };
    assert_eq!(plan(&[unopened])?, []);
    Ok(())
}

#[test]
fn a_proposal_without_its_sealed_fields_cannot_be_projected() {
    let mut proposal = logged(proposed(), 2, 40, "agent-7", LATE);
    proposal.envelope.payload.sealed_fields.pop();
    let error = plan_of(&[&proposal]).expect_err("no plaintext fallback");
    assert!(
        matches!(&error, ProjectionError::Event(message) if message.contains("beneficiary_account")),
        "{error}"
    );
}

#[test]
fn an_event_id_that_is_no_uuid_cannot_be_projected() {
    let mut execution = logged(executed(true), 3, 41, "agent-7", LATE);
    execution.envelope.event_id = "e-1".into();
    assert!(matches!(plan_of(&[&execution]), Err(ProjectionError::Event(_))));
}
