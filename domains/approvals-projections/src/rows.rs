//! The rows the projections write, one type per statement, bound in the order of the
//! statement's bind markers (a test reads the markers' names from the `.cql` files and
//! checks them against the fields).

use keel_projection::StoredField;
use scylla::value::CqlDate;
use uuid::Uuid;

/// Declares a row type bound to one statement, field by field in the order of its bind
/// markers (the write timestamp included), and, for the tests, the fields' names.
macro_rules! bound_row {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, scylla::SerializeRow)]
        #[scylla(flavor = "enforce_order", skip_name_checks)]
        pub(crate) struct $name {
            $($(#[$field_meta])* pub(crate) $field: $ty,)*
        }

        #[cfg(test)]
        impl $name {
            /// The fields' names, in binding order.
            pub(crate) const MARKERS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}

/// Where an action's row sits: its tenant, desk and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ActionKey {
    pub(crate) tenant: String,
    pub(crate) desk_id: String,
    pub(crate) action_id: String,
}

bound_row! {
    /// `action_proposed.cql`: an action's row as proposed.
    ProposedRow {
        tenant: String,
        desk_id: String,
        action_id: String,
        agent_id: String,
        kind: String,
        amount_cents: i64,
        risk: String,
        beneficiary_id: String,
        beneficiary_name: StoredField,
        beneficiary_account: StoredField,
        summary: String,
        proposed_at_micros: i64,
        outcome: String,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `action_requested.cql`: who was asked to approve.
    RequestedRow {
        tenant: String,
        desk_id: String,
        action_id: String,
        approver_id: String,
        requested_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `action_decided.cql`: the approver's decision, and who made it (the event's actor).
    DecisionRow {
        tenant: String,
        desk_id: String,
        action_id: String,
        decision: String,
        decided_by: String,
        decision_reason: String,
        decided_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `action_outcome.cql`: how an action ended, where nothing else changes (a denial).
    OutcomeRow {
        tenant: String,
        desk_id: String,
        action_id: String,
        outcome: String,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `action_executed.cql`: the execution, whose event id a revert names.
    ExecutedRow {
        tenant: String,
        desk_id: String,
        action_id: String,
        outcome: String,
        executed_by: Uuid,
        automatic: bool,
        executed_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `action_reverted.cql`: the revert.
    RevertedRow {
        tenant: String,
        desk_id: String,
        action_id: String,
        outcome: String,
        reverted_by: Uuid,
        revert_reason: String,
        reverted_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `pending_added.cql`: an action waiting for an approver.
    PendingRow {
        tenant: String,
        approver_id: String,
        desk_id: String,
        action_id: String,
        kind: String,
        amount_cents: i64,
        risk: String,
        requested_by: Uuid,
        requested_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `pending_removed.cql`: the approver decided; the action no longer waits.
    PendingRemoval {
        timestamp: i64,
        tenant: String,
        approver_id: String,
        desk_id: String,
        action_id: String,
    }
}

bound_row! {
    /// `agent_action_proposed.cql`: what an agent proposed.
    AgentProposedRow {
        tenant: String,
        agent_id: String,
        desk_id: String,
        action_id: String,
        kind: String,
        amount_cents: i64,
        risk: String,
        outcome: String,
        proposed_at_micros: i64,
        updated_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `agent_action_outcome.cql`: how an agent's action ended.
    AgentOutcomeRow {
        tenant: String,
        agent_id: String,
        desk_id: String,
        action_id: String,
        outcome: String,
        updated_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `day_executed.cql`: an execution, on the UTC day it happened.
    DayExecutedRow {
        tenant: String,
        day: CqlDate,
        kind: String,
        desk_id: String,
        action_id: String,
        amount_cents: i64,
        automatic: bool,
        event_id: Uuid,
        recorded_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

bound_row! {
    /// `day_reverted.cql`: a revert, on the UTC day it happened.
    DayRevertedRow {
        tenant: String,
        day: CqlDate,
        kind: String,
        desk_id: String,
        action_id: String,
        amount_cents: i64,
        event_id: Uuid,
        recorded_at_micros: i64,
        version: i64,
        partition: i32,
        offset: i64,
        timestamp: i64,
    }
}

impl AgentOutcomeRow {
    /// The action the row is about (without its agent).
    pub(crate) fn action(&self) -> ActionKey {
        ActionKey {
            tenant: self.tenant.clone(),
            desk_id: self.desk_id.clone(),
            action_id: self.action_id.clone(),
        }
    }
}
