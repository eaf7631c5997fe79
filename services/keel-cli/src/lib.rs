//! The `keel` command line's parts, as a library so tests and the demo share them: the
//! development tenants and credentials ([`dev`]), the command client ([`command`]), which
//! sends commands of any domain through its schema files ([`schemas`]), and the admin
//! commands ([`admin`]).

pub mod admin;
pub mod command;
pub mod demo;
pub mod dev;
pub mod schemas;

/// Where the CQL store and its control keyspace are.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// CQL contact points, comma-separated.
    #[arg(
        long,
        env = "KEEL_CQL_NODES",
        default_value = "127.0.0.1:9042",
        value_delimiter = ','
    )]
    pub cql_nodes: Vec<String>,
    /// The control keyspace.
    #[arg(long, env = "KEEL_KEYSPACE", default_value = "keel")]
    pub keyspace: String,
}

impl ControlArgs {
    /// A session on the control keyspace.
    pub async fn connect(&self) -> anyhow::Result<scylla::client::session::Session> {
        keel_cql::connect(&self.cql_nodes, &self.keyspace)
            .await
            .map_err(anyhow::Error::msg)
    }
}
