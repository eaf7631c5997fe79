//! Who may do what in Keel.
//!
//! Every command carries its actor's credential: a JWT signed with a key of the command's
//! tenant (EdDSA or HS256, configured per tenant in [`TenantAuth`]). [`Authenticator`]
//! checks signature, issuer, tenant, expiry and not-before, and that the actor the command
//! claims to be (kind, id, on whose behalf) is the one the token names: an agent cannot
//! sign as itself and claim to be a supervisor.
//!
//! [`Policy`] then decides whether that actor may issue that command type, within which
//! limits (an AI agent may refund up to a limit and may not delete a customer), and
//! names the rule that allowed it, which the handler records in the event as the
//! authorisation.
//!
//! Pure: keys and policies come from configuration; no I/O.

mod actor;
mod error;
mod policy;
mod tenants;
mod token;

#[cfg(test)]
mod tests;

pub use actor::{Actor, ActorKind, Principal};
pub use error::AuthError;
pub use policy::{Authorization, Policy, PolicyRule, ReadAuthorization, ReadRule};
pub use tenants::{TenantConfig, TenantsFile};
pub use token::{Authenticator, Claims, KeyAlgorithm, TenantAuth, TenantKey, TokenIssuer};
