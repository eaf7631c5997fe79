//! What an action does.

use serde::{Deserialize, Serialize};

/// The kinds of action an agent may propose.
///
/// On the wire a kind is a string (`payout`, `data_export`, `production_change`) that the
/// domain checks: the set grows with the domain, and a new kind should not need a new schema
/// version. A command naming another kind is refused with `invalid_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Money leaves the tenant to a beneficiary.
    Payout,
    /// Data leaves the tenant to a beneficiary.
    DataExport,
    /// A change to a production system.
    ProductionChange,
}

impl ActionKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Payout, Self::DataExport, Self::ProductionChange];

    /// The wire name, e.g. `data_export`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payout => "payout",
            Self::DataExport => "data_export",
            Self::ProductionChange => "production_change",
        }
    }

    /// The kind named `name` on the wire, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}
