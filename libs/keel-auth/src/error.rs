//! Why a credential or a command was refused.

/// A refusal by authentication or authorisation. Each variant has a stable
/// [`AuthError::code`] that command results and HTTP errors carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential, or one that is not a well-formed JWT.
    #[error("credential is malformed: {0}")]
    Malformed(String),
    /// The signature does not verify with any key of the tenant (forged, or another
    /// tenant's key).
    #[error("credential signature does not verify for tenant {tenant}")]
    BadSignature {
        /// The tenant whose keys were tried.
        tenant: String,
    },
    /// The tenant has no credential configuration.
    #[error("tenant {0} is not configured")]
    UnknownTenant(String),
    /// Expired (`exp` passed).
    #[error("credential expired")]
    Expired,
    /// Not valid yet (`nbf` in the future).
    #[error("credential is not valid yet")]
    NotYetValid,
    /// Issued by someone else than the tenant's issuer.
    #[error("credential issuer is not trusted for tenant {tenant}")]
    WrongIssuer {
        /// The tenant.
        tenant: String,
    },
    /// Issued for another tenant than the command's.
    #[error("credential is for tenant {credential}, the command for tenant {command}")]
    WrongTenant {
        /// The tenant in the credential.
        credential: String,
        /// The tenant of the command.
        command: String,
    },
    /// The command claims another actor (or delegation) than the credential names.
    #[error("command actor does not match the credential: {0}")]
    ActorMismatch(String),
    /// No policy rule allows this actor this command type.
    #[error("{actor_kind} actor {actor} may not issue {command_type}")]
    NotPermitted {
        /// The actor's kind.
        actor_kind: &'static str,
        /// The actor's id.
        actor: String,
        /// The command type refused.
        command_type: String,
    },
    /// A rule allows the command type, but the command exceeds its limit.
    #[error("{quantity} {value} exceeds the limit {limit} of rule {rule}")]
    LimitExceeded {
        /// The rule that would have allowed it.
        rule: String,
        /// The limited quantity, e.g. `amount_cents`.
        quantity: String,
        /// The command's value.
        value: i64,
        /// The rule's limit.
        limit: i64,
    },
}

impl AuthError {
    /// Stable snake_case reason for command results and HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "credential_malformed",
            Self::BadSignature { .. } => "credential_invalid",
            Self::UnknownTenant(_) => "unknown_tenant",
            Self::Expired => "credential_expired",
            Self::NotYetValid => "credential_not_yet_valid",
            Self::WrongIssuer { .. } => "credential_wrong_issuer",
            Self::WrongTenant { .. } => "wrong_tenant",
            Self::ActorMismatch(_) => "actor_mismatch",
            Self::NotPermitted { .. } => "not_permitted",
            Self::LimitExceeded { .. } => "limit_exceeded",
        }
    }
}
