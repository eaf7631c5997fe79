//! The authenticated actor (keel-auth) as the envelopes carry it, and back.
//!
//! keel-auth lists delegation outermost first (`[human, service]` for an agent acting for a
//! service acting for a human); the envelope lists it nearest first (`[service, human]`).
//! The envelope's authorisation `policy` is `<policy id>/<rule>`.

use keel_auth::{Actor, ActorKind, Authorization};
use keel_envelope::{ActorKind as WireKind, ActorRef};

fn to_kind(kind: ActorKind) -> WireKind {
    match kind {
        ActorKind::Human => WireKind::Human,
        ActorKind::Agent => WireKind::Agent,
        ActorKind::Service => WireKind::Service,
        ActorKind::System => WireKind::System,
    }
}

fn from_kind(kind: WireKind) -> ActorKind {
    match kind {
        WireKind::Human => ActorKind::Human,
        WireKind::Agent => ActorKind::Agent,
        WireKind::Service => ActorKind::Service,
        WireKind::System => ActorKind::System,
    }
}

/// The envelope's actor: who acts, on whose behalf (outermost first, as keel-auth has it),
/// and the rule that allowed it once authorised.
pub fn to_wire_actor(
    actor: &Actor,
    on_behalf_of: &[Actor],
    authorization: Option<&Authorization>,
) -> keel_envelope::Actor {
    keel_envelope::Actor {
        kind: to_kind(actor.kind),
        id: actor.id.clone(),
        delegation: on_behalf_of
            .iter()
            .rev()
            .map(|principal| ActorRef {
                kind: to_kind(principal.kind),
                id: principal.id.clone(),
            })
            .collect(),
        authorization: authorization.map(|authorization| keel_envelope::Authorization {
            policy: format!("{}/{}", authorization.policy, authorization.rule),
            scope: authorization.scope.clone().unwrap_or_default(),
        }),
    }
}

/// The actor, its delegation (outermost first) and its authorisation from an envelope.
pub fn from_wire_actor(actor: &keel_envelope::Actor) -> (Actor, Vec<Actor>, Option<Authorization>) {
    let acting = Actor {
        kind: from_kind(actor.kind),
        id: actor.id.clone(),
    };
    let on_behalf_of = actor
        .delegation
        .iter()
        .rev()
        .map(|principal| Actor {
            kind: from_kind(principal.kind),
            id: principal.id.clone(),
        })
        .collect();
    let authorization = actor.authorization.as_ref().map(|authorization| {
        let (policy, rule) = authorization
            .policy
            .rsplit_once('/')
            .unwrap_or((authorization.policy.as_str(), ""));
        Authorization {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            scope: Some(authorization.scope.clone()).filter(|scope| !scope.is_empty()),
        }
    });
    (acting, on_behalf_of, authorization)
}
