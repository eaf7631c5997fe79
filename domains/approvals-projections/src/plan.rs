//! From opened events to row writes, without I/O: what each event changes in which table.
//!
//! Only ids, amounts, statuses and operational text are taken from the payload; the
//! beneficiary's fields are taken sealed from the envelope. Who proposed an action (its
//! agent) is the actor of its `ActionProposed` event, which later events of the action do
//! not carry (a person decides them): the plan takes it from a proposal earlier in the same
//! batch, or leaves it for the writer to read from the action's row.

use std::collections::HashMap;

use keel_approvals::ApprovalEvent;
use keel_envelope::EventEnvelope;
use keel_projection::{ProjectionError, StoredField};
use uuid::Uuid;

use crate::rows::{
    ActionKey, AgentOutcomeRow, AgentProposedRow, DayExecutedRow, DayRevertedRow, DecisionRow, ExecutedRow, OutcomeRow,
    PendingRemoval, PendingRow, ProposedRow, RequestedRow, RevertedRow,
};
use crate::{LoggedEvent, Outcome, UtcDay};

/// One row write of one event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    /// `action_proposed.cql`.
    ActionProposed(Box<ProposedRow>),
    /// `action_requested.cql`.
    ActionRequested(RequestedRow),
    /// `action_decided.cql`.
    ActionDecided(DecisionRow),
    /// `action_outcome.cql`.
    ActionOutcome(OutcomeRow),
    /// `action_executed.cql`.
    ActionExecuted(ExecutedRow),
    /// `action_reverted.cql`.
    ActionReverted(RevertedRow),
    /// `pending_added.cql`.
    PendingAdded(PendingRow),
    /// `pending_removed.cql`.
    PendingRemoved(PendingRemoval),
    /// `agent_action_proposed.cql`.
    AgentProposed(AgentProposedRow),
    /// `agent_action_outcome.cql`, the agent known from the batch.
    AgentOutcome(AgentOutcomeRow),
    /// `agent_action_outcome.cql` once the agent is read from the action's row; until
    /// then its `agent_id` is empty.
    AgentOutcomeOfStoredAction(AgentOutcomeRow),
    /// `day_executed.cql`.
    DayExecuted(DayExecutedRow),
    /// `day_reverted.cql`.
    DayReverted(DayRevertedRow),
}

/// The row writes of `events`, in order. An event that cannot be turned into rows (a
/// proposal without its sealed fields, an event id that is no UUID) fails the plan with
/// [`ProjectionError::Event`].
pub(crate) fn plan(events: &[LoggedEvent<'_>]) -> Result<Vec<Write>, ProjectionError> {
    let mut agents = HashMap::new();
    let mut writes = Vec::with_capacity(events.len() * 3);
    for logged in events {
        rows(logged, &mut agents, &mut writes)?;
    }
    Ok(writes)
}

/// Where in the log an event sits, stamped on every row it writes.
#[derive(Debug, Clone, Copy)]
struct Position {
    version: i64,
    partition: i32,
    offset: i64,
    at: i64,
}

fn rows(
    logged: &LoggedEvent<'_>,
    agents: &mut HashMap<ActionKey, String>,
    writes: &mut Vec<Write>,
) -> Result<(), ProjectionError> {
    use ApprovalEvent as E;
    // A system event, or an event of an erased tenant: nothing to project.
    let Some(event) = logged.event else {
        return Ok(());
    };
    let envelope = logged.envelope;
    let Some(action_id) = event.action_id() else {
        // A policy: the audit trail keeps it; no read model here needs it.
        return Ok(());
    };
    let key = ActionKey {
        tenant: envelope.tenant_id.clone(),
        desk_id: envelope.stream_id.clone(),
        action_id: action_id.to_owned(),
    };
    let at = Position {
        version: envelope.stream_version,
        partition: logged.partition,
        offset: logged.offset,
        at: envelope.recorded_at,
    };
    match event {
        E::ApprovalPolicySet { .. } => {} // no action: returned above
        E::ActionProposed {
            kind,
            amount_cents,
            risk,
            beneficiary_id,
            summary,
            ..
        } => {
            let agent_id = envelope.actor.id.clone();
            agents.insert(key.clone(), agent_id.clone());
            writes.push(Write::ActionProposed(Box::new(ProposedRow {
                tenant: key.tenant.clone(),
                desk_id: key.desk_id.clone(),
                action_id: key.action_id.clone(),
                agent_id: agent_id.clone(),
                kind: kind.as_str().to_owned(),
                amount_cents: *amount_cents,
                risk: risk.as_str().to_owned(),
                beneficiary_id: beneficiary_id.clone(),
                beneficiary_name: sealed(envelope, "beneficiary_name")?,
                beneficiary_account: sealed(envelope, "beneficiary_account")?,
                summary: summary.clone(),
                proposed_at_micros: at.at,
                outcome: Outcome::Pending.as_str().to_owned(),
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            })));
            writes.push(Write::AgentProposed(AgentProposedRow {
                tenant: key.tenant,
                agent_id,
                desk_id: key.desk_id,
                action_id: key.action_id,
                kind: kind.as_str().to_owned(),
                amount_cents: *amount_cents,
                risk: risk.as_str().to_owned(),
                outcome: Outcome::Pending.as_str().to_owned(),
                proposed_at_micros: at.at,
                updated_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
        }
        E::ApprovalRequested {
            approver_id,
            kind,
            amount_cents,
            risk,
            ..
        } => {
            writes.push(Write::ActionRequested(RequestedRow {
                tenant: key.tenant.clone(),
                desk_id: key.desk_id.clone(),
                action_id: key.action_id.clone(),
                approver_id: approver_id.clone(),
                requested_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
            writes.push(Write::PendingAdded(PendingRow {
                tenant: key.tenant,
                approver_id: approver_id.clone(),
                desk_id: key.desk_id,
                action_id: key.action_id,
                kind: kind.as_str().to_owned(),
                amount_cents: *amount_cents,
                risk: risk.as_str().to_owned(),
                requested_by: event_uuid(envelope)?,
                requested_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
        }
        E::ActionApproved {
            approver_id, reason, ..
        } => {
            writes.push(Write::ActionDecided(decision(&key, "approved", envelope, reason, at)));
            writes.push(Write::PendingRemoved(removal(&key, approver_id, at)));
        }
        E::ActionDenied {
            approver_id, reason, ..
        } => {
            writes.push(Write::ActionDecided(decision(&key, "denied", envelope, reason, at)));
            writes.push(Write::ActionOutcome(OutcomeRow {
                tenant: key.tenant.clone(),
                desk_id: key.desk_id.clone(),
                action_id: key.action_id.clone(),
                outcome: Outcome::Denied.as_str().to_owned(),
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
            writes.push(Write::PendingRemoved(removal(&key, approver_id, at)));
            writes.push(agent_outcome(&key, agents, Outcome::Denied, at));
        }
        E::ActionExecuted {
            automatic,
            kind,
            amount_cents,
            ..
        } => {
            let event_id = event_uuid(envelope)?;
            writes.push(Write::ActionExecuted(ExecutedRow {
                tenant: key.tenant.clone(),
                desk_id: key.desk_id.clone(),
                action_id: key.action_id.clone(),
                outcome: Outcome::Executed.as_str().to_owned(),
                executed_by: event_id,
                automatic: *automatic,
                executed_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
            writes.push(agent_outcome(&key, agents, Outcome::Executed, at));
            writes.push(Write::DayExecuted(DayExecutedRow {
                tenant: key.tenant,
                day: UtcDay::of_micros(at.at).to_cql(),
                kind: kind.as_str().to_owned(),
                desk_id: key.desk_id,
                action_id: key.action_id,
                amount_cents: *amount_cents,
                automatic: *automatic,
                event_id,
                recorded_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
        }
        E::ActionReverted {
            reason,
            kind,
            amount_cents,
            ..
        } => {
            let event_id = event_uuid(envelope)?;
            writes.push(Write::ActionReverted(RevertedRow {
                tenant: key.tenant.clone(),
                desk_id: key.desk_id.clone(),
                action_id: key.action_id.clone(),
                outcome: Outcome::Reverted.as_str().to_owned(),
                reverted_by: event_id,
                revert_reason: reason.clone(),
                reverted_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
            writes.push(agent_outcome(&key, agents, Outcome::Reverted, at));
            writes.push(Write::DayReverted(DayRevertedRow {
                tenant: key.tenant,
                day: UtcDay::of_micros(at.at).to_cql(),
                kind: kind.as_str().to_owned(),
                desk_id: key.desk_id,
                action_id: key.action_id,
                amount_cents: *amount_cents,
                event_id,
                recorded_at_micros: at.at,
                version: at.version,
                partition: at.partition,
                offset: at.offset,
                timestamp: at.offset,
            }));
        }
    }
    Ok(())
}

fn decision(key: &ActionKey, decision: &str, envelope: &EventEnvelope, reason: &str, at: Position) -> DecisionRow {
    DecisionRow {
        tenant: key.tenant.clone(),
        desk_id: key.desk_id.clone(),
        action_id: key.action_id.clone(),
        decision: decision.to_owned(),
        decided_by: envelope.actor.id.clone(),
        decision_reason: reason.to_owned(),
        decided_at_micros: at.at,
        version: at.version,
        partition: at.partition,
        offset: at.offset,
        timestamp: at.offset,
    }
}

fn removal(key: &ActionKey, approver_id: &str, at: Position) -> PendingRemoval {
    PendingRemoval {
        timestamp: at.offset,
        tenant: key.tenant.clone(),
        approver_id: approver_id.to_owned(),
        desk_id: key.desk_id.clone(),
        action_id: key.action_id.clone(),
    }
}

fn agent_outcome(key: &ActionKey, agents: &HashMap<ActionKey, String>, outcome: Outcome, at: Position) -> Write {
    let agent = agents.get(key);
    let row = AgentOutcomeRow {
        tenant: key.tenant.clone(),
        agent_id: agent.cloned().unwrap_or_default(),
        desk_id: key.desk_id.clone(),
        action_id: key.action_id.clone(),
        outcome: outcome.as_str().to_owned(),
        updated_at_micros: at.at,
        version: at.version,
        partition: at.partition,
        offset: at.offset,
        timestamp: at.offset,
    };
    match agent {
        Some(_) => Write::AgentOutcome(row),
        None => Write::AgentOutcomeOfStoredAction(row),
    }
}

fn event_uuid(envelope: &EventEnvelope) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(&envelope.event_id)
        .map_err(|error| ProjectionError::Event(format!("event {} has no uuid id: {error}", envelope.event_id)))
}

fn sealed(envelope: &EventEnvelope, path: &str) -> Result<StoredField, ProjectionError> {
    StoredField::of(envelope, path).ok_or_else(|| {
        ProjectionError::Event(format!(
            "event {} ({}) lacks the sealed field {path}",
            envelope.event_id, envelope.event_type
        ))
    })
}
