//! Checkpoint store errors.

/// A failure reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint store failed while {action}: {message}")]
pub struct CheckpointError {
    /// What was being done.
    pub action: &'static str,
    /// The store's error.
    pub message: String,
}
