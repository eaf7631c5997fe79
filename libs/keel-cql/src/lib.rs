//! What Keel's CQL adapters share.
//!
//! Adapters keep their CQL in `.cql` files (`include_str!`); [`apply_schema`] runs a schema
//! file's statements, and [`is_permanent`] tells a request the server refused as wrong (retry
//! will not help) from a server in trouble (retry with backoff).

use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};

/// Where a service's CQL store is: flags, each also a `KEEL_*` variable, flattened into every
/// service's configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct CqlArgs {
    /// CQL contact points, comma-separated.
    #[arg(
        long = "cql-nodes",
        env = "KEEL_CQL_NODES",
        default_value = "127.0.0.1:9042",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,
    /// The service's keyspace: decision state, keys, erasures, projections and checkpoints
    /// (created if missing with replication factor 1; production keyspaces are created by
    /// deploy/).
    #[arg(long, env = "KEEL_KEYSPACE", default_value = "keel")]
    pub keyspace: String,
}

impl CqlArgs {
    /// The store at `nodes` with `keyspace` (see [`connect`]).
    pub fn new(nodes: Vec<String>, keyspace: impl Into<String>) -> Self {
        Self {
            nodes,
            keyspace: keyspace.into(),
        }
    }

    /// A session in the service's keyspace (see [`connect`]).
    pub async fn connect(&self) -> Result<Session, String> {
        connect(&self.nodes, &self.keyspace).await
    }
}

/// The statements of a `.cql` file: `--` comment lines dropped (a `;` in a comment ends
/// nothing), then split on `;`.
pub fn statements(file: &str) -> impl Iterator<Item = String> + '_ {
    let code: Vec<&str> = file
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect();
    code.join("\n")
        .split(';')
        .filter_map(|chunk| {
            let statement = chunk.trim().to_owned();
            (!statement.is_empty()).then_some(statement)
        })
        .collect::<Vec<_>>()
        .into_iter()
}

/// Runs every statement of a schema file (`CREATE ... IF NOT EXISTS`) in the session's keyspace.
pub async fn apply_schema(session: &Session, file: &str) -> Result<(), ExecutionError> {
    for statement in statements(file) {
        session.query_unpaged(statement, &[]).await?;
    }
    Ok(())
}

/// Whether the server refused the request itself (bad statement, not allowed), so that
/// retrying it cannot help; otherwise the failure may pass (timeouts, overload, no node).
pub fn is_permanent(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::BadQuery(_) | ExecutionError::PrepareError(_) => true,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::SyntaxError
                | DbError::Invalid
                | DbError::Unauthorized
                | DbError::ConfigError
                | DbError::AlreadyExists { .. }
                | DbError::AuthenticationError
                | DbError::ProtocolError
        ),
        _ => false,
    }
}

/// The statement that creates a local `keyspace` (replication factor 1). On ScyllaDB, tablets
/// are disabled: Keel's keyspaces hold the key vault, whose lightweight transactions
/// ScyllaDB does not support in keyspaces with tablets (the default in recent releases).
/// Cassandra has no such option and needs none.
pub fn create_keyspace(keyspace: &str, scylla: bool) -> String {
    let tablets = if scylla {
        " AND tablets = {'enabled': false}"
    } else {
        ""
    };
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}{tablets}"
    )
}

/// Whether the session's cluster is ScyllaDB (it has `system.scylla_local`; Cassandra does
/// not).
pub async fn is_scylla(session: &Session) -> Result<bool, ExecutionError> {
    let rows = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'system' AND table_name = 'scylla_local'",
            &[],
        )
        .await?
        .into_rows_result();
    Ok(rows.is_ok_and(|rows| rows.rows_num() > 0))
}

/// Connects to `nodes`, creates `keyspace` if it does not exist ([`create_keyspace`]), and
/// makes it the session's keyspace. Local keyspaces get replication factor 1; production
/// keyspaces are created beforehand by `deploy/` with the replication they need, and tablets
/// disabled on ScyllaDB (this then leaves them as they are).
pub async fn connect(nodes: &[String], keyspace: &str) -> Result<Session, String> {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(nodes)
        .build()
        .await
        .map_err(|error| format!("connecting to the CQL store at {nodes:?}: {error}"))?;
    let scylla = is_scylla(&session)
        .await
        .map_err(|error| format!("asking the CQL store at {nodes:?} what it is: {error}"))?;
    let create = create_keyspace(keyspace, scylla);
    session
        .query_unpaged(create, &[])
        .await
        .map_err(|error| format!("creating keyspace {keyspace}: {error}"))?;
    session
        .use_keyspace(keyspace, true)
        .await
        .map_err(|error| format!("using keyspace {keyspace}: {error}"))?;
    Ok(session)
}

/// The tables a schema file creates (`CREATE TABLE [IF NOT EXISTS] name`).
pub fn table_names(file: &str) -> Vec<String> {
    statements(file)
        .filter_map(|statement| {
            let words: Vec<&str> = statement.split_whitespace().collect();
            let rest = match words.as_slice() {
                [create, table, rest @ ..]
                    if create.eq_ignore_ascii_case("create") && table.eq_ignore_ascii_case("table") =>
                {
                    rest
                }
                _ => return None,
            };
            let name = match rest {
                [if_, not, exists, name, ..]
                    if if_.eq_ignore_ascii_case("if")
                        && not.eq_ignore_ascii_case("not")
                        && exists.eq_ignore_ascii_case("exists") =>
                {
                    name
                }
                [name, ..] => name,
                [] => return None,
            };
            name.split('(')
                .next()
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyspace_on_scylladb_has_tablets_disabled_and_on_cassandra_no_such_option() {
        assert!(create_keyspace("keel", true).ends_with("AND tablets = {'enabled': false}"));
        assert!(!create_keyspace("keel", false).contains("tablets"));
    }

    #[test]
    fn table_names_are_read_from_create_statements() {
        let file = "CREATE TYPE IF NOT EXISTS t (a int);\n-- c\nCREATE TABLE IF NOT EXISTS one (a int PRIMARY KEY);\ncreate table two(a int primary key);";
        assert_eq!(table_names(file), ["one", "two"]);
    }

    #[test]
    fn a_semicolon_in_a_comment_ends_no_statement() {
        let file = "-- first; then more\nCREATE TABLE a (k int PRIMARY KEY);";
        assert_eq!(
            statements(file).collect::<Vec<_>>(),
            ["CREATE TABLE a (k int PRIMARY KEY)"]
        );
    }

    #[test]
    fn statements_split_on_semicolons_and_drop_comments() {
        let file =
            "-- a comment\nCREATE TABLE a (k int PRIMARY KEY);\n\n-- another\nCREATE TABLE b (k int PRIMARY KEY);\n";
        let statements: Vec<String> = statements(file).collect();
        assert_eq!(
            statements,
            [
                "CREATE TABLE a (k int PRIMARY KEY)",
                "CREATE TABLE b (k int PRIMARY KEY)"
            ]
        );
    }
}
