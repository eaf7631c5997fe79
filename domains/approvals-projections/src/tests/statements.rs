//! The `.cql` files agree with each other and with the row types: every table is a
//! projection's, every statement binds the fields of its row type in order, and names only
//! columns its table has.

use crate::rows::{
    AgentOutcomeRow, AgentProposedRow, DayExecutedRow, DayRevertedRow, DecisionRow, ExecutedRow, OutcomeRow,
    PendingRemoval, PendingRow, ProposedRow, RequestedRow, RevertedRow,
};
use crate::{ALL, ActionRow, AgentActionRow, DayEntry, PendingApprovalRow, SCHEMA};

/// The statement, with its whitespace collapsed.
fn flat(cql: &str) -> String {
    cql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map_or(0, |at| at + open.len());
    let end = text[start..].find(close).map_or(text.len(), |at| start + at);
    &text[start..end]
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(|item| item.trim().to_owned()).collect()
}

/// The names of a statement's bind markers, in order: the column a `?` is bound to, and
/// `timestamp` for `USING TIMESTAMP ?`.
fn bind_names(cql: &str) -> Vec<String> {
    let cql = flat(cql);
    let timestamp = cql.contains("USING TIMESTAMP ?");
    let mut names = Vec::new();
    if cql.starts_with("INSERT") {
        let columns = list(between(&cql, "(", ")"));
        let values = list(between(&cql, "VALUES (", ")"));
        assert_eq!(columns.len(), values.len(), "{cql}");
        names.extend(
            columns
                .into_iter()
                .zip(values)
                .filter(|(_, value)| value == "?")
                .map(|(column, _)| column),
        );
        if timestamp {
            names.push("timestamp".into());
        }
    } else {
        if timestamp {
            names.push("timestamp".into());
        }
        let condition = cql.split(" WHERE ").nth(1).unwrap_or_default();
        for term in condition.split(" AND ") {
            if let Some(column) = term.strip_suffix(" = ?") {
                names.push(column.trim().to_owned());
            }
        }
    }
    names
}

/// The table a statement reads or writes.
fn table_of(cql: &str) -> String {
    let cql = flat(cql);
    let after = if cql.starts_with("INSERT") {
        "INSERT INTO "
    } else {
        "FROM "
    };
    between(&cql, after, " ").trim_end_matches('(').to_owned()
}

/// The columns of `table` in the schema file.
fn columns_of(table: &str) -> Vec<String> {
    let statement = keel_cql::statements(SCHEMA)
        .find(|statement| flat(statement).starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} (")))
        .unwrap_or_else(|| panic!("no table {table} in the schema"));
    statement
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("PRIMARY KEY") && !line.starts_with(')'))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Every write statement and the fields of its row type.
const WRITES: [(&str, &str, &[&str]); 12] = [
    (
        "action_proposed",
        include_str!("../cql/action_proposed.cql"),
        ProposedRow::MARKERS,
    ),
    (
        "action_requested",
        include_str!("../cql/action_requested.cql"),
        RequestedRow::MARKERS,
    ),
    (
        "action_decided",
        include_str!("../cql/action_decided.cql"),
        DecisionRow::MARKERS,
    ),
    (
        "action_outcome",
        include_str!("../cql/action_outcome.cql"),
        OutcomeRow::MARKERS,
    ),
    (
        "action_executed",
        include_str!("../cql/action_executed.cql"),
        ExecutedRow::MARKERS,
    ),
    (
        "action_reverted",
        include_str!("../cql/action_reverted.cql"),
        RevertedRow::MARKERS,
    ),
    (
        "pending_added",
        include_str!("../cql/pending_added.cql"),
        PendingRow::MARKERS,
    ),
    (
        "pending_removed",
        include_str!("../cql/pending_removed.cql"),
        PendingRemoval::MARKERS,
    ),
    (
        "agent_action_proposed",
        include_str!("../cql/agent_action_proposed.cql"),
        AgentProposedRow::MARKERS,
    ),
    (
        "agent_action_outcome",
        include_str!("../cql/agent_action_outcome.cql"),
        AgentOutcomeRow::MARKERS,
    ),
    (
        "day_executed",
        include_str!("../cql/day_executed.cql"),
        DayExecutedRow::MARKERS,
    ),
    (
        "day_reverted",
        include_str!("../cql/day_reverted.cql"),
        DayRevertedRow::MARKERS,
    ),
];

/// Every read statement and the columns its row type reads, in order.
const READS: [(&str, &str, &[&str]); 6] = [
    // `ApprovalProjections::agent_of` reads it as a one-column tuple.
    ("select_agent", include_str!("../cql/select_agent.cql"), &["agent_id"]),
    (
        "select_action",
        include_str!("../cql/select_action.cql"),
        ActionRow::COLUMNS,
    ),
    (
        "select_desk_actions",
        include_str!("../cql/select_desk_actions.cql"),
        ActionRow::COLUMNS,
    ),
    (
        "select_pending",
        include_str!("../cql/select_pending.cql"),
        PendingApprovalRow::COLUMNS,
    ),
    (
        "select_agent_actions",
        include_str!("../cql/select_agent_actions.cql"),
        AgentActionRow::COLUMNS,
    ),
    ("select_day", include_str!("../cql/select_day.cql"), DayEntry::COLUMNS),
];

#[test]
fn each_table_is_a_projection_named_after_it() {
    let tables = keel_cql::table_names(SCHEMA);
    let expected: Vec<String> = ALL.iter().map(|name| name.replace('.', "_")).collect();
    assert_eq!(tables, expected);
}

#[test]
fn every_write_binds_its_row_in_order_and_names_only_columns_of_its_table() {
    for (name, cql, fields) in WRITES {
        assert_eq!(bind_names(cql), fields, "{name}: bind markers and row fields differ");
        let table = table_of(cql);
        let columns = columns_of(&table);
        let flat = flat(cql);
        let named: Vec<String> = if flat.starts_with("INSERT") {
            list(between(&flat, "(", ")"))
        } else {
            bind_names(cql).into_iter().filter(|name| name != "timestamp").collect()
        };
        for column in named {
            assert!(columns.contains(&column), "{name}: {table} has no column {column}");
        }
        assert!(
            flat.contains("USING TIMESTAMP ?"),
            "{name} is not written at its offset"
        );
    }
}

#[test]
fn every_read_selects_its_row_in_order_from_columns_of_its_table() {
    for (name, cql, row) in READS {
        let flat = flat(cql);
        let selected = between(&flat, "SELECT ", " FROM");
        assert_eq!(list(selected), row, "{name}: selected columns and row fields differ");
        let columns = columns_of(&table_of(cql));
        for column in list(selected) {
            assert!(columns.contains(&column), "{name}: no column {column}");
        }
    }
}

#[test]
fn every_table_is_keyed_by_tenant_first() {
    for table in keel_cql::table_names(SCHEMA) {
        let statement = keel_cql::statements(SCHEMA)
            .find(|statement| statement.contains(&format!("EXISTS {table} (")))
            .map(|statement| flat(&statement))
            .unwrap_or_default();
        assert!(statement.contains("PRIMARY KEY ((tenant, "), "{table}");
    }
}
