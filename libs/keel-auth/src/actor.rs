//! Actors: who acts, and on whose behalf.

use serde::{Deserialize, Serialize};

/// What kind of actor acts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person.
    Human,
    /// An AI agent.
    Agent,
    /// A service or a scheduled job.
    Service,
    /// Keel itself (erasure, rotation).
    System,
}

impl ActorKind {
    /// The lowercase name used in tokens, policies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Agent => "agent",
            Self::Service => "service",
            Self::System => "system",
        }
    }
}

/// One identity: a kind and an id.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// What it is.
    pub kind: ActorKind,
    /// Its id within the tenant.
    pub id: String,
}

/// An authenticated actor: who acts, on whose behalf (outermost first: for an agent acting
/// for a supervisor, `[supervisor]`), with which scopes, for which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant the credential was issued for.
    pub tenant: String,
    /// Who acts.
    pub actor: Actor,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// Scopes granted by the credential.
    pub scopes: Vec<String>,
}
