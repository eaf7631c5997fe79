//! Decision-state errors, split by whether a retry may help.

/// A failure reading or writing the decision state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store is unreachable or overloaded; retry with backoff.
    #[error("decision state unavailable while {action}: {message}")]
    Transient {
        /// What was being done.
        action: &'static str,
        /// The store's error.
        message: String,
    },
    /// The store refused the request or returned something unreadable; retrying will not help.
    #[error("decision state failed while {action}: {message}")]
    Permanent {
        /// What was being done.
        action: &'static str,
        /// The store's error.
        message: String,
    },
}

impl StateError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}
