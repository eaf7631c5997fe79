//! The approvals domain's projections in the CQL store.
//!
//! They implement the projection port ([`keel_projection::Projections`]) for
//! `keel_approvals`: the projector runtime writes them from the events it has opened; a
//! query side reads them. One table per projection (`cql/schema.cql`), all keyed by tenant:
//!
//! - **actions** ([`ACTIONS`]): every action of a desk as it stands, with who proposed it,
//!   who decided, the execution event a revert must name, and the beneficiary's fields;
//! - **pending approvals** ([`PENDING`]): per approver, a row from `ApprovalRequested`
//!   until `ActionApproved` or `ActionDenied` deletes it;
//! - **agent actions** ([`AGENT_ACTIONS`]): per agent (the actor of `ActionProposed`), what
//!   it proposed and the outcome: `pending`, `executed`, `denied` or `reverted`;
//! - **daily totals** ([`DAILY_TOTALS`]): one row per execution and per revert, per tenant,
//!   UTC day and kind, summed on read ([`KindTotals`]), so no replay can count one twice.
//!
//! **Exactly once in effect.** Rows are keyed by what they describe and every write is
//! `USING TIMESTAMP <log offset>`: a replayed event rewrites the same cells with the same
//! values, and an old event applied late loses to newer ones (a pending approval is removed
//! by a tombstone at the decision's offset, which a replayed request cannot outlive). Every
//! row records the stream version, partition and offset it reflects.
//!
//! **Sealed at rest.** The beneficiary's name and account are stored as the ciphertext the
//! `ActionProposed` event carries ([`StoredField`]), never in plaintext; a query side opens
//! them with the beneficiary's key, and once that key is destroyed they are noise.
//!
//! **One read.** Events carry what their rows are keyed by, except the agent: the domain
//! never sees actors, and a person decides an agent's action. An outcome is filed under the
//! agent of the action's proposal, taken from the same batch or read from the action's row.

mod day;
mod error;
mod outcome;
mod plan;
mod read;
mod rows;
mod write;

pub use day::UtcDay;
pub use error::ReadError;
pub use keel_projection::StoredField;
pub use outcome::Outcome;
pub use read::{ActionRow, AgentActionRow, DayEntry, KindTotals, PendingApprovalRow};

use std::sync::Arc;

use keel_approvals::{ApprovalDesk, ApprovalEvent};
use keel_projection::{ProjectionError, Projections};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

/// An event as the projector hands it over, with this domain's events.
pub type LoggedEvent<'a> = keel_projection::LoggedEvent<'a, ApprovalEvent>;

/// Every action of a desk (table `approvals_actions_v1`).
pub const ACTIONS: &str = "approvals.actions.v1";
/// Pending approvals per approver (table `approvals_pending_v1`).
pub const PENDING: &str = "approvals.pending.v1";
/// Actions per agent with their outcome (table `approvals_agent_actions_v1`).
pub const AGENT_ACTIONS: &str = "approvals.agent_actions.v1";
/// Executions and reverts per UTC day (table `approvals_daily_totals_v1`).
pub const DAILY_TOTALS: &str = "approvals.daily_totals.v1";
/// Every projection of this crate, as checkpoints name them.
pub const ALL: [&str; 4] = [ACTIONS, PENDING, AGENT_ACTIONS, DAILY_TOTALS];

/// The projections' tables.
pub const SCHEMA: &str = include_str!("cql/schema.cql");

/// The prepared statements, one per `.cql` file.
struct Statements {
    action_proposed: PreparedStatement,
    action_requested: PreparedStatement,
    action_decided: PreparedStatement,
    action_outcome: PreparedStatement,
    action_executed: PreparedStatement,
    action_reverted: PreparedStatement,
    pending_added: PreparedStatement,
    pending_removed: PreparedStatement,
    agent_action_proposed: PreparedStatement,
    agent_action_outcome: PreparedStatement,
    day_executed: PreparedStatement,
    day_reverted: PreparedStatement,
    select_agent: PreparedStatement,
    select_action: PreparedStatement,
    select_desk_actions: PreparedStatement,
    select_pending: PreparedStatement,
    select_agent_actions: PreparedStatement,
    select_day: PreparedStatement,
}

/// The approvals domain's projections on a CQL session.
pub struct ApprovalProjections {
    session: Arc<Session>,
    statements: Statements,
}

impl std::fmt::Debug for ApprovalProjections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalProjections").finish_non_exhaustive()
    }
}

impl ApprovalProjections {
    /// Creates the tables if missing (in the session's keyspace) and prepares statements.
    pub async fn new(session: Arc<Session>) -> Result<Self, ProjectionError> {
        keel_cql::apply_schema(&session, SCHEMA)
            .await
            .map_err(|error| ProjectionError::Setup(format!("creating the approvals tables: {error}")))?;
        let prepare = async |name: &str, cql: &str| {
            session
                .prepare(cql.trim())
                .await
                .map_err(|error| ProjectionError::Setup(format!("preparing {name}: {error}")))
        };
        let statements = Statements {
            action_proposed: prepare("action_proposed", include_str!("cql/action_proposed.cql")).await?,
            action_requested: prepare("action_requested", include_str!("cql/action_requested.cql")).await?,
            action_decided: prepare("action_decided", include_str!("cql/action_decided.cql")).await?,
            action_outcome: prepare("action_outcome", include_str!("cql/action_outcome.cql")).await?,
            action_executed: prepare("action_executed", include_str!("cql/action_executed.cql")).await?,
            action_reverted: prepare("action_reverted", include_str!("cql/action_reverted.cql")).await?,
            pending_added: prepare("pending_added", include_str!("cql/pending_added.cql")).await?,
            pending_removed: prepare("pending_removed", include_str!("cql/pending_removed.cql")).await?,
            agent_action_proposed: prepare("agent_action_proposed", include_str!("cql/agent_action_proposed.cql"))
                .await?,
            agent_action_outcome: prepare("agent_action_outcome", include_str!("cql/agent_action_outcome.cql")).await?,
            day_executed: prepare("day_executed", include_str!("cql/day_executed.cql")).await?,
            day_reverted: prepare("day_reverted", include_str!("cql/day_reverted.cql")).await?,
            select_agent: prepare("select_agent", include_str!("cql/select_agent.cql")).await?,
            select_action: prepare("select_action", include_str!("cql/select_action.cql")).await?,
            select_desk_actions: prepare("select_desk_actions", include_str!("cql/select_desk_actions.cql")).await?,
            select_pending: prepare("select_pending", include_str!("cql/select_pending.cql")).await?,
            select_agent_actions: prepare("select_agent_actions", include_str!("cql/select_agent_actions.cql")).await?,
            select_day: prepare("select_day", include_str!("cql/select_day.cql")).await?,
        };
        Ok(Self { session, statements })
    }
}

impl Projections for ApprovalProjections {
    type Domain = ApprovalDesk;
    type Event = ApprovalEvent;

    const NAMES: &'static [&'static str] = &ALL;
    const SCHEMA: &'static str = SCHEMA;

    async fn connect(session: Arc<Session>) -> Result<Self, ProjectionError> {
        Self::new(session).await
    }

    async fn write(&self, events: &[LoggedEvent<'_>]) -> Result<(), ProjectionError> {
        self.write_events(events).await
    }
}

#[cfg(test)]
mod tests;
