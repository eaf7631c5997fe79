//! Why a read of the projections failed. (Writes fail with the projection port's
//! `keel_projection::ProjectionError`.)

use scylla::errors::ExecutionError;

/// A read of the projections that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed the request; `keel_cql::is_permanent` tells whether a retry may help.
    #[error(transparent)]
    Store(Box<ExecutionError>),
    /// A stored row does not read as this release expects; retrying will not help.
    #[error("reading {table}: {reason}")]
    Row {
        /// The table read.
        table: &'static str,
        /// What did not fit.
        reason: String,
    },
}

impl From<ExecutionError> for ReadError {
    fn from(error: ExecutionError) -> Self {
        Self::Store(Box::new(error))
    }
}
