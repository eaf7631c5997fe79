//! Policies: which actors may issue which command types, within which limits.

use std::collections::BTreeMap;

use keel_domain::DomainCommand;
use serde::{Deserialize, Serialize};

use crate::{ActorKind, AuthError, Principal};

/// A tenant's policy: an ordered list of allow rules. Anything no rule allows is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's id and version, recorded in every event it allows (e.g. `acme/2026-11`).
    pub id: String,
    /// Allow rules.
    pub rules: Vec<PolicyRule>,
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// The rule's id, recorded in the events it allows.
    pub id: String,
    /// Actor kinds the rule applies to.
    pub actor_kinds: Vec<ActorKind>,
    /// A scope the credential must grant, if any.
    #[serde(default)]
    pub scope: Option<String>,
    /// Command types allowed; `"*"` allows every type.
    pub commands: Vec<String>,
    /// Upper bounds on named command quantities, e.g. `{"amount_cents": 5000}`. A limit
    /// applies to commands that have that quantity.
    #[serde(default)]
    pub limits: BTreeMap<String, i64>,
}

/// Why a command was allowed: recorded in its events as the authorisation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// The policy's id.
    pub policy: String,
    /// The rule that allowed it.
    pub rule: String,
    /// The scope the rule required, if any.
    pub scope: Option<String>,
}

impl PolicyRule {
    fn applies(&self, principal: &Principal, command_type: &str) -> bool {
        self.actor_kinds.contains(&principal.actor.kind)
            && self.scope.as_ref().is_none_or(|scope| principal.scopes.contains(scope))
            && self
                .commands
                .iter()
                .any(|allowed| allowed == "*" || allowed == command_type)
    }

    fn exceeded(&self, command: &impl DomainCommand) -> Option<AuthError> {
        self.limits.iter().find_map(|(quantity, &limit)| {
            let value = command.quantity(quantity)?;
            (value > limit).then(|| AuthError::LimitExceeded {
                rule: self.id.clone(),
                quantity: quantity.clone(),
                value,
                limit,
            })
        })
    }
}

impl Policy {
    /// Allows `command` for `principal` by the first rule that applies and whose limits hold.
    /// If rules apply but each limit is exceeded, the refusal says which limit.
    pub fn authorize(&self, principal: &Principal, command: &impl DomainCommand) -> Result<Authorization, AuthError> {
        let command_type = command.command_type();
        let mut over_limit = None;
        for rule in self.rules.iter().filter(|rule| rule.applies(principal, command_type)) {
            match rule.exceeded(command) {
                None => {
                    return Ok(Authorization {
                        policy: self.id.clone(),
                        rule: rule.id.clone(),
                        scope: rule.scope.clone(),
                    });
                }
                Some(refusal) => over_limit = over_limit.or(Some(refusal)),
            }
        }
        Err(over_limit.unwrap_or_else(|| AuthError::NotPermitted {
            actor_kind: principal.actor.kind.as_str(),
            actor: principal.actor.id.clone(),
            command_type: command_type.to_owned(),
        }))
    }
}
