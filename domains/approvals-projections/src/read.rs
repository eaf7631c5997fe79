//! Reads of the projections, as stored: the beneficiary's fields still sealed, totals summed
//! from their rows.

use std::collections::BTreeMap;

use keel_projection::StoredField;
use scylla::statement::prepared::PreparedStatement;
use serde::Serialize;
use uuid::Uuid;

use crate::{ApprovalProjections, ReadError, UtcDay};

/// Declares a public row type read from a statement, field by field in the order of its
/// selected columns, and, for the tests, the fields' names.
macro_rules! read_row {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, scylla::DeserializeRow)]
        #[scylla(flavor = "enforce_order", skip_name_checks)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        #[cfg(test)]
        impl $name {
            /// The fields' names, in column order.
            pub(crate) const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}

read_row! {
    /// An action of a desk, as it stands. Columns of events not (yet) applied are `None`.
    ActionRow {
        /// Its id.
        action_id: String,
        /// The actor that proposed it.
        agent_id: Option<String>,
        /// `payout`, `data_export` or `production_change`.
        kind: Option<String>,
        /// Amount in cents.
        amount_cents: Option<i64>,
        /// `LOW`, `MEDIUM` or `HIGH`.
        risk: Option<String>,
        /// The beneficiary's data-subject id.
        beneficiary_id: Option<String>,
        /// The beneficiary's name, sealed with the beneficiary's key.
        beneficiary_name: Option<StoredField>,
        /// The beneficiary's account, sealed with the beneficiary's key.
        beneficiary_account: Option<StoredField>,
        /// What it does and why.
        summary: Option<String>,
        /// When proposed, microseconds since the Unix epoch.
        proposed_at_micros: Option<i64>,
        /// `pending`, `executed`, `denied` or `reverted` ([`crate::Outcome`]).
        outcome: Option<String>,
        /// Who was asked to approve it, if anyone was.
        approver_id: Option<String>,
        /// When approval was asked.
        requested_at_micros: Option<i64>,
        /// `approved` or `denied`, once decided.
        decision: Option<String>,
        /// The actor who decided.
        decided_by: Option<String>,
        /// Why.
        decision_reason: Option<String>,
        /// When decided.
        decided_at_micros: Option<i64>,
        /// The `ActionExecuted` event, which a `RevertAction` must name.
        executed_by: Option<Uuid>,
        /// Whether it executed within the policy, without approval.
        automatic: Option<bool>,
        /// When executed.
        executed_at_micros: Option<i64>,
        /// The `ActionReverted` event.
        reverted_by: Option<Uuid>,
        /// Why it was reverted.
        revert_reason: Option<String>,
        /// When reverted.
        reverted_at_micros: Option<i64>,
        /// The stream version of the last event applied to the row.
        version: Option<i64>,
        /// Its partition of the events topic.
        partition: Option<i32>,
        /// Its offset there.
        offset: Option<i64>,
    }
}

read_row! {
    /// An action waiting for an approver.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    PendingApprovalRow {
        /// The desk.
        desk_id: String,
        /// The action.
        action_id: String,
        /// What it does.
        kind: Option<String>,
        /// Its amount in cents.
        amount_cents: Option<i64>,
        /// Its risk.
        risk: Option<String>,
        /// The `ApprovalRequested` event.
        requested_by: Option<Uuid>,
        /// When approval was asked, microseconds since the Unix epoch.
        requested_at_micros: Option<i64>,
        /// The stream version of the request.
        version: Option<i64>,
        /// Its partition of the events topic.
        partition: Option<i32>,
        /// Its offset there.
        offset: Option<i64>,
    }
}

read_row! {
    /// An action an agent proposed, and how it ended.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    AgentActionRow {
        /// The desk.
        desk_id: String,
        /// The action.
        action_id: String,
        /// What it does.
        kind: Option<String>,
        /// Its amount in cents.
        amount_cents: Option<i64>,
        /// Its risk.
        risk: Option<String>,
        /// `pending`, `executed`, `denied` or `reverted` ([`crate::Outcome`]).
        outcome: Option<String>,
        /// When proposed, microseconds since the Unix epoch.
        proposed_at_micros: Option<i64>,
        /// When the outcome last changed.
        updated_at_micros: Option<i64>,
        /// The stream version of the last event applied to the row.
        version: Option<i64>,
        /// Its partition of the events topic.
        partition: Option<i32>,
        /// Its offset there.
        offset: Option<i64>,
    }
}

read_row! {
    /// One row of the daily totals: an execution or a revert.
    DayEntry {
        /// The action's kind.
        kind: String,
        /// `executed` or `reverted`.
        entry: String,
        /// The amount, in cents.
        amount_cents: Option<i64>,
        /// For an execution, whether it needed no approval.
        automatic: Option<bool>,
    }
}

/// What executed, and what was reverted, of one kind on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KindTotals {
    /// The kind.
    pub kind: String,
    /// How many actions executed.
    pub executed_count: u64,
    /// Their amount, in cents.
    pub executed_cents: i64,
    /// How many of them executed within the policy, without approval.
    pub automatic_count: u64,
    /// Their amount, in cents.
    pub automatic_cents: i64,
    /// How many executions were reverted that day (whenever they executed).
    pub reverted_count: u64,
    /// Their amount, in cents.
    pub reverted_cents: i64,
}

impl KindTotals {
    /// The totals of `entries` by kind, in kind order. Sums saturate.
    pub fn sum(entries: impl IntoIterator<Item = DayEntry>) -> Vec<Self> {
        let mut by_kind: BTreeMap<String, Self> = BTreeMap::new();
        for entry in entries {
            let totals = by_kind.entry(entry.kind.clone()).or_insert_with(|| Self {
                kind: entry.kind.clone(),
                ..Self::default()
            });
            let cents = entry.amount_cents.unwrap_or(0);
            match entry.entry.as_str() {
                "executed" => {
                    totals.executed_count += 1;
                    totals.executed_cents = totals.executed_cents.saturating_add(cents);
                    if entry.automatic == Some(true) {
                        totals.automatic_count += 1;
                        totals.automatic_cents = totals.automatic_cents.saturating_add(cents);
                    }
                }
                "reverted" => {
                    totals.reverted_count += 1;
                    totals.reverted_cents = totals.reverted_cents.saturating_add(cents);
                }
                _ => {}
            }
        }
        by_kind.into_values().collect()
    }
}

impl ApprovalProjections {
    async fn rows<R>(
        &self,
        table: &'static str,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> Result<Vec<R>, ReadError>
    where
        R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
    {
        let unreadable = |error: &dyn std::fmt::Display| ReadError::Row {
            table,
            reason: error.to_string(),
        };
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await?
            .into_rows_result()
            .map_err(|error| unreadable(&error))?;
        let rows = result.rows::<R>().map_err(|error| unreadable(&error))?;
        rows.map(|row| row.map_err(|error| unreadable(&error))).collect()
    }

    /// One action of a desk, if it was proposed.
    pub async fn action(&self, tenant: &str, desk: &str, action_id: &str) -> Result<Option<ActionRow>, ReadError> {
        let rows = self
            .rows(
                "approvals_actions_v1",
                &self.statements.select_action,
                (tenant, desk, action_id),
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Every action of a desk, by id.
    pub async fn desk_actions(&self, tenant: &str, desk: &str) -> Result<Vec<ActionRow>, ReadError> {
        self.rows(
            "approvals_actions_v1",
            &self.statements.select_desk_actions,
            (tenant, desk),
        )
        .await
    }

    /// What waits for `approver`, oldest request first.
    pub async fn pending_approvals(&self, tenant: &str, approver: &str) -> Result<Vec<PendingApprovalRow>, ReadError> {
        let mut rows: Vec<PendingApprovalRow> = self
            .rows(
                "approvals_pending_v1",
                &self.statements.select_pending,
                (tenant, approver),
            )
            .await?;
        rows.sort_by_key(|row| (row.requested_at_micros, row.desk_id.clone(), row.action_id.clone()));
        Ok(rows)
    }

    /// What `agent` proposed, most recent first.
    pub async fn agent_actions(&self, tenant: &str, agent: &str) -> Result<Vec<AgentActionRow>, ReadError> {
        let mut rows: Vec<AgentActionRow> = self
            .rows(
                "approvals_agent_actions_v1",
                &self.statements.select_agent_actions,
                (tenant, agent),
            )
            .await?;
        rows.sort_by_key(|row| std::cmp::Reverse(row.proposed_at_micros));
        Ok(rows)
    }

    /// What executed and what was reverted on `day` (UTC), by kind.
    pub async fn day_totals(&self, tenant: &str, day: UtcDay) -> Result<Vec<KindTotals>, ReadError> {
        let entries: Vec<DayEntry> = self
            .rows(
                "approvals_daily_totals_v1",
                &self.statements.select_day,
                (tenant, day.to_cql()),
            )
            .await?;
        Ok(KindTotals::sum(entries))
    }
}
