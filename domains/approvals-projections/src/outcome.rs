//! How an action stands, as the projections store it.

/// An action's outcome in the `outcome` columns: `pending` from its proposal until it
/// executes or is denied, `reverted` once an execution is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Proposed, not yet executed nor denied (waiting for the approver, or for the
    /// execution that follows in the same decision).
    Pending,
    /// Executed, on its own or once approved.
    Executed,
    /// Denied by the approver.
    Denied,
    /// Executed, then reverted.
    Reverted,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Executed, Self::Denied, Self::Reverted];

    /// As stored: `pending`, `executed`, `denied`, `reverted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Executed => "executed",
            Self::Denied => "denied",
            Self::Reverted => "reverted",
        }
    }

    /// The outcome stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == text)
    }
}
