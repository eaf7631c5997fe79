//! Credential and policy tests.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use keel_customer_support::SupportCommand;
use proptest::prelude::*;

use crate::{
    Actor, ActorKind, AuthError, Authenticator, Authorization, Claims, Policy, PolicyRule, Principal, ReadRule,
    TenantAuth, TenantKey, TokenIssuer,
};

const NOW: u64 = 1_800_000_000;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn agent() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "support-bot".into(),
    }
}

fn supervisor() -> Actor {
    Actor {
        kind: ActorKind::Human,
        id: "alice".into(),
    }
}

fn claims(tenant: &str) -> Claims {
    Claims {
        iss: format!("https://id.{tenant}.example"),
        sub: "support-bot".into(),
        tenant: tenant.into(),
        actor_kind: ActorKind::Agent,
        on_behalf_of: vec![supervisor()],
        scopes: vec!["support:agent".into()],
        exp: NOW + 600,
        nbf: Some(NOW - 5),
        iat: Some(NOW - 5),
    }
}

/// Tenants `acme` (EdDSA, key seed 1) and `globex` (HS256).
fn authenticator() -> Authenticator {
    let mut tenants = HashMap::new();
    tenants.insert(
        "acme".to_owned(),
        TenantAuth {
            issuer: "https://id.acme.example".into(),
            keys: vec![TenantKey::ed25519("acme-1", &signing_key(1).verifying_key())],
        },
    );
    tenants.insert(
        "globex".to_owned(),
        TenantAuth {
            issuer: "https://id.globex.example".into(),
            keys: vec![TenantKey::hs256("globex-1", b"globex secret")],
        },
    );
    Authenticator::new(&tenants).expect("valid configuration")
}

fn sign_ed25519(seed: u8, claims: &Claims) -> String {
    TokenIssuer::ed25519("acme-1", &signing_key(seed))
        .and_then(|issuer| issuer.issue(claims))
        .expect("signed")
}

fn authenticate(tenant: &str, token: &str) -> Result<Principal, AuthError> {
    authenticator().authenticate(tenant, token, &agent(), &[supervisor()], NOW)
}

fn refusal(tenant: &str, token: &str) -> &'static str {
    authenticate(tenant, token)
        .expect_err("the credential should be refused")
        .code()
}

#[test]
fn a_valid_eddsa_credential_names_the_actor_delegation_and_scopes() {
    let principal = authenticate("acme", &sign_ed25519(1, &claims("acme"))).expect("authenticated");
    assert_eq!(principal.tenant, "acme");
    assert_eq!(principal.actor, agent());
    assert_eq!(principal.on_behalf_of, [supervisor()]);
    assert_eq!(principal.scopes, ["support:agent"]);
}

#[test]
fn a_valid_hs256_credential_is_accepted() {
    let token = TokenIssuer::hs256("globex-1", b"globex secret")
        .issue(&claims("globex"))
        .expect("signed");
    assert!(authenticate("globex", &token).is_ok());
}

#[test]
fn a_credential_signed_with_another_key_is_forged() {
    assert_eq!(refusal("acme", &sign_ed25519(2, &claims("acme"))), "credential_invalid");
}

#[test]
fn a_tampered_claim_breaks_the_signature() {
    let token = sign_ed25519(1, &claims("acme"));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let bytes = URL_SAFE_NO_PAD.decode(&parts[1]).expect("base64");
    let mut payload: Claims = serde_json::from_slice(&bytes).expect("json");
    payload.scopes.push("support:supervisor".into());
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).expect("json"));
    assert_eq!(refusal("acme", &parts.join(".")), "credential_invalid");
}

#[test]
fn an_unsigned_alg_none_credential_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("acme")).expect("json"));
    assert_eq!(refusal("acme", &format!("{header}.{payload}.")), "credential_malformed");
}

#[test]
fn an_expired_credential_is_refused() {
    let mut expired = claims("acme");
    expired.exp = NOW - 120;
    assert_eq!(refusal("acme", &sign_ed25519(1, &expired)), "credential_expired");
}

#[test]
fn a_credential_not_valid_yet_is_refused() {
    let mut early = claims("acme");
    early.nbf = Some(NOW + 3_600);
    assert_eq!(refusal("acme", &sign_ed25519(1, &early)), "credential_not_yet_valid");
}

#[test]
fn another_tenants_credential_does_not_verify_with_this_tenants_keys() {
    let token = TokenIssuer::hs256("globex-1", b"globex secret")
        .issue(&claims("globex"))
        .expect("signed");
    assert_eq!(refusal("acme", &token), "credential_invalid");
}

#[test]
fn a_credential_naming_another_tenant_is_refused_even_if_signed_by_this_one() {
    let mut other = claims("globex");
    other.iss = "https://id.acme.example".into();
    assert_eq!(refusal("acme", &sign_ed25519(1, &other)), "wrong_tenant");
}

#[test]
fn an_untrusted_issuer_is_refused() {
    let mut claims = claims("acme");
    claims.iss = "https://evil.example".into();
    assert_eq!(refusal("acme", &sign_ed25519(1, &claims)), "credential_wrong_issuer");
}

#[test]
fn an_unknown_tenant_is_refused() {
    assert_eq!(refusal("initech", &sign_ed25519(1, &claims("acme"))), "unknown_tenant");
}

#[test]
fn a_command_claiming_another_actor_or_delegation_is_refused() {
    let token = sign_ed25519(1, &claims("acme"));
    let auth = authenticator();
    let as_supervisor = auth.authenticate("acme", &token, &supervisor(), &[], NOW);
    assert_eq!(as_supervisor.map_err(|e| e.code()).err(), Some("actor_mismatch"));
    let bob = Actor {
        kind: ActorKind::Human,
        id: "bob".into(),
    };
    let other_delegation = auth.authenticate("acme", &token, &agent(), &[bob], NOW);
    assert_eq!(other_delegation.map_err(|e| e.code()).err(), Some("actor_mismatch"));
}

fn support_policy() -> Policy {
    let agent_commands = [
        "RegisterCustomer",
        "StartSubscription",
        "CancelSubscription",
        "IssueRefund",
        "SendEmail",
    ];
    Policy {
        id: "acme/v1".into(),
        rules: vec![
            PolicyRule {
                id: "agent-support".into(),
                actor_kinds: vec![ActorKind::Agent],
                scope: Some("support:agent".into()),
                commands: agent_commands.map(String::from).to_vec(),
                limits: BTreeMap::from([("amount_cents".to_owned(), 5_000)]),
            },
            PolicyRule {
                id: "supervisor-all".into(),
                actor_kinds: vec![ActorKind::Human],
                scope: Some("support:supervisor".into()),
                commands: vec!["*".into()],
                limits: BTreeMap::new(),
            },
        ],
        reads: vec![
            ReadRule {
                id: "agent-contact".into(),
                actor_kinds: vec![ActorKind::Agent],
                scope: Some("support:agent".into()),
                fields: vec!["name".into(), "email".into()],
                purpose: None,
            },
            ReadRule {
                id: "supervisor-casework".into(),
                actor_kinds: vec![ActorKind::Human],
                scope: Some("support:supervisor".into()),
                fields: vec!["*".into()],
                purpose: Some("casework".into()),
            },
        ],
    }
}

#[test]
fn a_read_rule_opens_its_fields_to_its_actors_with_its_scope_and_purpose() {
    let policy = support_policy();
    let bot = principal(agent(), &["support:agent"]);
    let rule = |principal: &Principal, field: &str, purpose: Option<&str>| {
        policy
            .authorize_read(principal, field, purpose)
            .map(|allowed| allowed.rule)
    };
    assert_eq!(rule(&bot, "email", None).as_deref(), Some("agent-contact"));
    assert_eq!(rule(&bot, "address", None), None, "a field the rule does not name");
    assert_eq!(rule(&principal(agent(), &[]), "email", None), None, "no scope");
    let supervisor = principal(supervisor(), &["support:supervisor"]);
    assert_eq!(rule(&supervisor, "address", None), None, "no purpose stated");
    assert_eq!(rule(&supervisor, "address", Some("marketing")), None, "another purpose");
    assert_eq!(
        rule(&supervisor, "address", Some("casework")).as_deref(),
        Some("supervisor-casework")
    );
    let unnamed = Principal {
        tenant: "acme".into(),
        actor: Actor {
            kind: ActorKind::Service,
            id: "scraper".into(),
        },
        on_behalf_of: vec![],
        scopes: vec![],
    };
    assert_eq!(
        rule(&unnamed, "name", None),
        None,
        "an actor no rule names sees nothing"
    );
}

#[test]
fn a_policy_without_read_rules_reads_as_one_that_opens_nothing() -> Result<(), serde_json::Error> {
    let policy: Policy = serde_json::from_str(r#"{"id": "acme/v0", "rules": []}"#)?;
    assert!(policy.reads.is_empty());
    assert_eq!(
        policy.authorize_read(
            &principal(supervisor(), &["support:supervisor"]),
            "name",
            Some("casework")
        ),
        None
    );
    Ok(())
}

fn principal(actor: Actor, scopes: &[&str]) -> Principal {
    Principal {
        tenant: "acme".into(),
        actor,
        on_behalf_of: vec![],
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn refund(amount_cents: i64) -> SupportCommand {
    SupportCommand::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents,
        reason: "late delivery".into(),
    }
}

#[test]
fn an_agent_may_refund_within_its_limit_and_the_rule_is_named() {
    let allowed = support_policy().authorize(&principal(agent(), &["support:agent"]), &refund(5_000));
    let expected = Authorization {
        policy: "acme/v1".into(),
        rule: "agent-support".into(),
        scope: Some("support:agent".into()),
    };
    assert_eq!(allowed, Ok(expected));
}

#[test]
fn an_agent_refund_above_the_limit_is_refused_with_the_limit() {
    let refused = support_policy().authorize(&principal(agent(), &["support:agent"]), &refund(5_001));
    let expected = AuthError::LimitExceeded {
        rule: "agent-support".into(),
        quantity: "amount_cents".into(),
        value: 5_001,
        limit: 5_000,
    };
    assert_eq!(refused, Err(expected));
}

#[test]
fn an_agent_may_not_delete_a_customer() {
    let delete = SupportCommand::DeleteCustomer { reason: "asked".into() };
    let refused = support_policy().authorize(&principal(agent(), &["support:agent"]), &delete);
    assert_eq!(refused.map_err(|e| e.code()).err(), Some("not_permitted"));
}

#[test]
fn a_supervisor_needs_the_scope_and_then_has_no_limit() {
    let delete = SupportCommand::DeleteCustomer { reason: "asked".into() };
    let policy = support_policy();
    let scoped = principal(supervisor(), &["support:supervisor"]);
    assert!(policy.authorize(&scoped, &delete).is_ok());
    assert!(policy.authorize(&scoped, &refund(1_000_000)).is_ok());
    let unscoped = policy.authorize(&principal(supervisor(), &[]), &delete);
    assert_eq!(unscoped.map_err(|e| e.code()).err(), Some("not_permitted"));
}

#[test]
fn a_policy_with_unknown_fields_does_not_load() {
    let json = r#"{"id":"p","rules":[],"allow_everything":true}"#;
    assert!(serde_json::from_str::<Policy>(json).is_err());
}

proptest! {
    /// No arbitrary string authenticates, and none panics the verifier.
    #[test]
    fn arbitrary_credentials_are_refused_without_panicking(token in ".{0,300}") {
        prop_assert!(authenticate("acme", &token).is_err());
    }
}
