//! Policies: which actors may issue which command types, within which limits, and which
//! may see which personal fields in clear when they read.

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
    /// Read rules: who sees which personal fields in clear. A field no rule opens to the
    /// reader is answered redacted; with no read rules nobody sees personal fields.
    #[serde(default)]
    pub reads: Vec<ReadRule>,
}

/// One read rule: actors of these kinds, holding the scope, see these personal fields in
/// clear, for the stated purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRule {
    /// The rule's id, recorded in the access log with every read it allows.
    pub id: String,
    /// Actor kinds the rule applies to.
    pub actor_kinds: Vec<ActorKind>,
    /// A scope the credential must grant, if any.
    #[serde(default)]
    pub scope: Option<String>,
    /// Personal fields it opens, by their name in the event (`email`, `beneficiary_name`);
    /// `"*"` opens every one.
    pub fields: Vec<String>,
    /// The purpose the reader must state (the query API's `Keel-Purpose` header), if any.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// Why a personal field was shown in clear: recorded in the access log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAuthorization {
    /// The policy's id.
    pub policy: String,
    /// The read rule that allowed it.
    pub rule: String,
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

impl ReadRule {
    fn opens(&self, principal: &Principal, field: &str, purpose: Option<&str>) -> bool {
        self.actor_kinds.contains(&principal.actor.kind)
            && self.scope.as_ref().is_none_or(|scope| principal.scopes.contains(scope))
            && self.fields.iter().any(|allowed| allowed == "*" || allowed == field)
            && self.purpose.as_deref().is_none_or(|required| purpose == Some(required))
    }
}

impl Policy {
    /// The first read rule that shows `field` in clear to `principal` reading for `purpose`;
    /// `None`: the field is answered redacted.
    pub fn authorize_read(
        &self,
        principal: &Principal,
        field: &str,
        purpose: Option<&str>,
    ) -> Option<ReadAuthorization> {
        self.reads
            .iter()
            .find(|rule| rule.opens(principal, field, purpose))
            .map(|rule| ReadAuthorization {
                policy: self.id.clone(),
                rule: rule.id.clone(),
            })
    }

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
