//! What the unit tests of deciding and of planning share: a gatekeeper over tenants `acme`
//! (with a policy) and `initech` (without), credentials its key signs, and commands of an
//! agent acting for a human.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::SigningKey;
use keel_auth::{Actor, ActorKind, Authenticator, Claims, Policy, PolicyRule, TenantAuth, TenantKey, TokenIssuer};
use uuid::Uuid;

use crate::decide::{Gatekeeper, IncomingCommand};

/// The tests' clock: seconds since the Unix epoch.
pub(crate) const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://id.acme.example";

/// The key the tenants' credentials are signed with.
pub(crate) fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The agent every test command comes from.
pub(crate) fn agent() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "support-bot".into(),
    }
}

/// The human the agent acts for.
pub(crate) fn supervisor() -> Actor {
    Actor {
        kind: ActorKind::Human,
        id: "alice".into(),
    }
}

/// Tenants `acme` (with a policy: agents may do anything, refunds up to 5,000 cents) and
/// `initech` (keys, but no policy).
pub(crate) fn gatekeeper() -> Gatekeeper {
    let auth = || TenantAuth {
        issuer: ISSUER.into(),
        keys: vec![TenantKey::ed25519("k1", &key().verifying_key())],
    };
    let tenants = HashMap::from([("acme".to_owned(), auth()), ("initech".to_owned(), auth())]);
    let policy = Policy {
        id: "acme/v1".into(),
        rules: vec![PolicyRule {
            id: "agent-support".into(),
            actor_kinds: vec![ActorKind::Agent],
            scope: Some("support:agent".into()),
            commands: vec!["*".into()],
            limits: BTreeMap::from([("amount_cents".to_owned(), 5_000)]),
        }],
        reads: Vec::new(),
    };
    let authenticator = Authenticator::new(&tenants).expect("valid keys");
    Gatekeeper::new(authenticator, HashMap::from([("acme".to_owned(), policy)]))
}

/// A credential of tenant `acme` signed with `signing`, valid at [`NOW`].
pub(crate) fn credential(signing: &SigningKey) -> String {
    credential_for("acme", signing)
}

/// A credential of `tenant` signed with `signing`, valid at [`NOW`].
pub(crate) fn credential_for(tenant: &str, signing: &SigningKey) -> String {
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "support-bot".into(),
        tenant: tenant.into(),
        actor_kind: ActorKind::Agent,
        on_behalf_of: vec![supervisor()],
        scopes: vec!["support:agent".into()],
        exp: NOW + 600,
        nbf: None,
        iat: Some(NOW),
    };
    TokenIssuer::ed25519("k1", signing)
        .and_then(|issuer| issuer.issue(&claims))
        .expect("signed")
}

/// `command` to stream `acme/c-1` under a new command id, with a valid credential.
pub(crate) fn incoming<C>(command: C, expected_version: Option<u64>) -> IncomingCommand<C> {
    IncomingCommand {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "c-1".into(),
        expected_version,
        actor: agent(),
        on_behalf_of: vec![supervisor()],
        credential: credential(&key()),
        command,
    }
}
