//! The decision: may this actor do this to this stream now, and what happens if so.
//!
//! Pure: given the decoded command, the stream's folded state and the clock, it
//! authenticates the credential, authorises by policy, checks the expected version and runs
//! the domain's `handle`, isolated so that a panicking domain refuses one command instead
//! of stopping the partition. Deduplication of command ids happens before (it needs the
//! stored results; a duplicate is answered only once its credential authenticates, see
//! [`Gatekeeper::authenticate`]) and sealing and chaining after.

use keel_results::Reason;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use keel_auth::{Actor, AuthError, Authenticator, Authorization, Policy, Principal};
use keel_domain::{Aggregate, DomainCommand};
use uuid::Uuid;

/// A command as the handler sees it once decoded: the envelope's fields and the domain
/// command decoded from its payload.
#[derive(Debug, Clone)]
pub struct IncomingCommand<C> {
    /// The idempotency key.
    pub command_id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// The stream (aggregate id).
    pub stream: String,
    /// Optimistic concurrency: the version the sender saw, if it cares.
    pub expected_version: Option<u64>,
    /// Who claims to act.
    pub actor: Actor,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// The signed credential.
    pub credential: String,
    /// The domain command.
    pub command: C,
}

/// The outcome of deciding one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<E> {
    /// Accepted: these events follow the stream's current version.
    Accepted {
        /// The events, in order (possibly none).
        events: Vec<E>,
        /// Who acted, authenticated.
        principal: Principal,
        /// The policy rule that allowed it.
        authorization: Authorization,
    },
    /// Refused; nothing is written but the result.
    Rejected(Rejection),
}

/// Why a command was refused: a stable code and a message for people (no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason, e.g. `version_conflict`, `limit_exceeded`.
    pub reason: String,
    /// What happened.
    pub message: String,
    /// The stream's current version, for conflicts.
    pub current_version: Option<u64>,
}

impl Rejection {
    /// A refusal with `reason` and `message`.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            current_version: None,
        }
    }
}

impl From<AuthError> for Rejection {
    fn from(error: AuthError) -> Self {
        Self::new(error.code(), error.to_string())
    }
}

/// Credentials and policies of every tenant: what the decision needs besides the stream.
pub struct Gatekeeper {
    authenticator: Authenticator,
    policies: HashMap<String, Policy>,
}

impl Gatekeeper {
    /// A gatekeeper over configured credentials and policies.
    pub fn new(authenticator: Authenticator, policies: HashMap<String, Policy>) -> Self {
        Self {
            authenticator,
            policies,
        }
    }

    /// Decides `incoming` against a stream at `version` with folded `state`, at `now`
    /// (seconds since the Unix epoch).
    pub fn decide<A: Aggregate>(
        &self,
        incoming: &IncomingCommand<A::Command>,
        state: &A::State,
        version: u64,
        now: u64,
    ) -> Decision<A::Event> {
        match self.admit(incoming, version, now) {
            Err(rejection) => Decision::Rejected(rejection),
            Ok((principal, authorization)) => match run_domain::<A>(state, &incoming.command) {
                Ok(events) => Decision::Accepted {
                    events,
                    principal,
                    authorization,
                },
                Err(rejection) => Decision::Rejected(rejection),
            },
        }
    }

    /// Whether `incoming`'s credential authenticates its actor and delegation for its
    /// tenant at `now`: what a duplicate command id must show before it is answered with
    /// its original result.
    pub fn authenticate<C>(&self, incoming: &IncomingCommand<C>, now: u64) -> Result<Principal, Rejection> {
        self.authenticator
            .authenticate(
                &incoming.tenant,
                &incoming.credential,
                &incoming.actor,
                &incoming.on_behalf_of,
                now,
            )
            .map_err(Rejection::from)
    }

    fn admit<C: DomainCommand>(
        &self,
        incoming: &IncomingCommand<C>,
        version: u64,
        now: u64,
    ) -> Result<(Principal, Authorization), Rejection> {
        if incoming.stream.starts_with(keel_erasure::SYSTEM_STREAM_PREFIX) {
            return Err(Rejection::new(
                Reason::ReservedStream.code(),
                format!(
                    "streams named {}* belong to the system (erasures); domain commands cannot address them",
                    keel_erasure::SYSTEM_STREAM_PREFIX
                ),
            ));
        }
        let principal = self.authenticator.authenticate(
            &incoming.tenant,
            &incoming.credential,
            &incoming.actor,
            &incoming.on_behalf_of,
            now,
        )?;
        let policy = self.policies.get(&incoming.tenant).ok_or_else(|| {
            Rejection::new(
                Reason::NoPolicy.code(),
                format!("tenant {} has no policy: every command is refused", incoming.tenant),
            )
        })?;
        let authorization = policy.authorize(&principal, &incoming.command)?;
        if let Some(expected) = incoming.expected_version
            && expected != version
        {
            return Err(Rejection {
                reason: Reason::VersionConflict.code().into(),
                message: format!(
                    "stream {} is at version {version}, the command expected {expected}",
                    incoming.stream
                ),
                current_version: Some(version),
            });
        }
        Ok((principal, authorization))
    }
}

/// Runs the domain's `handle`, turning a panic into a refusal of this one command.
fn run_domain<A: Aggregate>(state: &A::State, command: &A::Command) -> Result<Vec<A::Event>, Rejection> {
    match catch_unwind(AssertUnwindSafe(|| A::handle(state, command))) {
        Ok(Ok(events)) => Ok(events),
        Ok(Err(refusal)) => Err(Rejection::new(refusal.code, refusal.message)),
        Err(panic) => {
            let what = panic_text(panic.as_ref());
            tracing::error!(panic = %what, "domain code panicked; the command is refused");
            metrics::counter!("keel_handler_domain_panics_total", "in" => "handle").increment(1);
            Err(Rejection::new(
                Reason::InternalError.code(),
                "the domain failed unexpectedly while handling this command",
            ))
        }
    }
}

/// What a caught panic says, for the log.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
