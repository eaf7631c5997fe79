//! How risky an action is, on a closed, ordered scale.

use serde::{Deserialize, Serialize};

/// The risk an agent assigns to an action it proposes, and the most a policy lets execute
/// without a human. Ordered: `Low < Medium < High`.
///
/// On the wire it is the Avro enum `Risk` (symbols `LOW`, `MEDIUM`, `HIGH`): a closed scale
/// that the policy's maximum is compared against, so the codec refuses any other symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Risk {
    /// Routine; reversible at little cost.
    Low,
    /// Worth a second look.
    Medium,
    /// Never without a human, unless a policy says so explicitly.
    High,
}

impl Risk {
    /// The Avro symbol, e.g. `MEDIUM`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }
}
