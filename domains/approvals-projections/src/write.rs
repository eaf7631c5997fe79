//! Row writes to the store: the plan's writes, run together, once the agents of actions
//! proposed in earlier batches are read from their rows.

use futures::FutureExt;
use futures::future::{BoxFuture, try_join_all};
use keel_projection::ProjectionError;
use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryResult;

use crate::plan::{Write, plan};
use crate::rows::ActionKey;
use crate::{ApprovalProjections, LoggedEvent};

type Request<'a> = BoxFuture<'a, Result<QueryResult, ExecutionError>>;

impl ApprovalProjections {
    /// Writes every row `events` touch. Idempotent: applying an event again, or an older
    /// event after a newer one, leaves the tables as they are.
    ///
    /// An outcome of an action whose proposal is in no earlier batch nor this one (it was
    /// dead-lettered) has no agent to file it under: its agent row is skipped, the other
    /// rows are written, and the proposal waits in the dead-letter topic.
    pub async fn write_events(&self, events: &[LoggedEvent<'_>]) -> Result<(), ProjectionError> {
        let mut writes = plan(events)?;
        let lookups = writes.iter_mut().filter_map(|write| match write {
            Write::AgentOutcomeOfStoredAction(row) => Some(async move {
                row.agent_id = self.agent_of(&row.action()).await?.unwrap_or_default();
                Ok::<_, ProjectionError>(())
            }),
            _ => None,
        });
        try_join_all(lookups).await?;
        let session = &*self.session;
        let s = &self.statements;
        let mut requests: Vec<Request<'_>> = Vec::with_capacity(writes.len());
        for write in writes {
            requests.push(match write {
                Write::ActionProposed(row) => session.execute_unpaged(&s.action_proposed, *row).boxed(),
                Write::ActionRequested(row) => session.execute_unpaged(&s.action_requested, row).boxed(),
                Write::ActionDecided(row) => session.execute_unpaged(&s.action_decided, row).boxed(),
                Write::ActionOutcome(row) => session.execute_unpaged(&s.action_outcome, row).boxed(),
                Write::ActionExecuted(row) => session.execute_unpaged(&s.action_executed, row).boxed(),
                Write::ActionReverted(row) => session.execute_unpaged(&s.action_reverted, row).boxed(),
                Write::PendingAdded(row) => session.execute_unpaged(&s.pending_added, row).boxed(),
                Write::PendingRemoved(row) => session.execute_unpaged(&s.pending_removed, row).boxed(),
                Write::AgentProposed(row) => session.execute_unpaged(&s.agent_action_proposed, row).boxed(),
                Write::AgentOutcome(row) => session.execute_unpaged(&s.agent_action_outcome, row).boxed(),
                Write::AgentOutcomeOfStoredAction(row) if row.agent_id.is_empty() => continue,
                Write::AgentOutcomeOfStoredAction(row) => session.execute_unpaged(&s.agent_action_outcome, row).boxed(),
                Write::DayExecuted(row) => session.execute_unpaged(&s.day_executed, row).boxed(),
                Write::DayReverted(row) => session.execute_unpaged(&s.day_reverted, row).boxed(),
            });
        }
        try_join_all(requests).await?;
        Ok(())
    }

    /// The agent that proposed `action`, from its row; `None` if no proposal was projected.
    async fn agent_of(&self, action: &ActionKey) -> Result<Option<String>, ProjectionError> {
        let unreadable = |error: &dyn std::fmt::Display| {
            ProjectionError::Event(format!(
                "reading the agent of action {} of desk {}: {error}",
                action.action_id, action.desk_id
            ))
        };
        let result = self
            .session
            .execute_unpaged(
                &self.statements.select_agent,
                (&action.tenant, &action.desk_id, &action.action_id),
            )
            .await?
            .into_rows_result()
            .map_err(|error| unreadable(&error))?;
        let row = result
            .maybe_first_row::<(Option<String>,)>()
            .map_err(|error| unreadable(&error))?;
        Ok(row.and_then(|(agent,)| agent).filter(|agent| !agent.is_empty()))
    }
}
