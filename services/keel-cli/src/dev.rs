//! Development tenants and credentials. Production tenants come from the operator's
//! identity provider: the tenants file then only lists its issuers' public keys.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::SigningKey;
use keel_auth::{
    Actor, ActorKind, Claims, Policy, PolicyRule, ReadRule, TenantAuth, TenantConfig, TenantKey, TenantsFile,
    TokenIssuer,
};

/// The development tenants.
pub const TENANTS: [&str; 2] = ["acme", "globex"];
/// What the development policy lets an AI agent refund, in cents.
pub const AGENT_REFUND_LIMIT: i64 = 5_000;
/// The largest action the development policy lets an AI agent propose, in cents.
pub const AGENT_PROPOSAL_LIMIT: i64 = 10_000_000;

/// `keel dev`.
#[derive(Debug, clap::Subcommand)]
pub enum Dev {
    /// Writes `tenants.json`, one signing key per tenant and the certificate signing key
    /// (`certificate.ed25519`, public half in `.pub`) into `--dir` (keys kept if present).
    Init {
        /// Where to write.
        #[arg(long, env = "KEEL_DEV_DIR", default_value = ".local/dev")]
        dir: PathBuf,
    },
}

impl Dev {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Init { dir } => {
                let tenants = init(&dir)?;
                println!("{}", tenants.display());
                Ok(())
            }
        }
    }
}

fn issuer(tenant: &str) -> String {
    format!("https://id.{tenant}.example")
}

/// The development policy of the worked domains. Customer support: the AI agent may
/// register customers, manage subscriptions, send emails and refund up to
/// [`AGENT_REFUND_LIMIT`]; a human supervisor may do anything, deleting a customer included.
/// Approvals: an agent with `approvals:agent` may propose actions up to
/// [`AGENT_PROPOSAL_LIMIT`] (the desk's own policy then decides which need a human); a human
/// with `approvals:approver` sets desk policies, approves, denies and reverts. A human
/// data-protection officer holding `keel:admin` may erase data subjects (the admin service
/// takes no other credential).
///
/// Reads: each of those roles sees its domain's personal fields in clear, except that an
/// approvals agent sees a beneficiary's name but not their account; any other credential
/// (one without these scopes) gets every personal field redacted. Reading the access log
/// takes `keel:privacy`, which no rule needs: it is checked on the credential.
pub fn support_policy(tenant: &str) -> Policy {
    let agent = [
        "RegisterCustomer",
        "StartSubscription",
        "CancelSubscription",
        "IssueRefund",
        "SendEmail",
        "ReferFriend",
    ];
    Policy {
        id: format!("{tenant}/dev-v1"),
        rules: vec![
            PolicyRule {
                id: "agent-support".into(),
                actor_kinds: vec![ActorKind::Agent],
                scope: Some("support:agent".into()),
                commands: agent.map(String::from).to_vec(),
                limits: BTreeMap::from([("amount_cents".to_owned(), AGENT_REFUND_LIMIT)]),
            },
            PolicyRule {
                id: "supervisor-all".into(),
                actor_kinds: vec![ActorKind::Human],
                scope: Some("support:supervisor".into()),
                commands: vec!["*".into()],
                limits: BTreeMap::new(),
            },
            PolicyRule {
                id: "agent-approvals".into(),
                actor_kinds: vec![ActorKind::Agent],
                scope: Some("approvals:agent".into()),
                commands: vec!["ProposeAction".into()],
                limits: BTreeMap::from([("amount_cents".to_owned(), AGENT_PROPOSAL_LIMIT)]),
            },
            PolicyRule {
                id: "approver".into(),
                actor_kinds: vec![ActorKind::Human],
                scope: Some("approvals:approver".into()),
                commands: ["SetApprovalPolicy", "ApproveAction", "DenyAction", "RevertAction"]
                    .map(String::from)
                    .to_vec(),
                limits: BTreeMap::new(),
            },
            PolicyRule {
                id: "data-protection".into(),
                actor_kinds: vec![ActorKind::Human],
                scope: Some(keel_erasure::ADMIN_SCOPE.into()),
                commands: vec!["EraseSubject".into(), "EraseTenant".into()],
                limits: BTreeMap::new(),
            },
        ],
        reads: vec![
            read_rule("support-agent-reads", ActorKind::Agent, "support:agent", &["*"]),
            read_rule("supervisor-reads", ActorKind::Human, "support:supervisor", &["*"]),
            read_rule("approver-reads", ActorKind::Human, "approvals:approver", &["*"]),
            // An agent proposing a payout sees whom it pays, not their account.
            read_rule(
                "approvals-agent-reads",
                ActorKind::Agent,
                "approvals:agent",
                &["beneficiary_name"],
            ),
        ],
    }
}

fn read_rule(id: &str, kind: ActorKind, scope: &str, fields: &[&str]) -> ReadRule {
    ReadRule {
        id: id.into(),
        actor_kinds: vec![kind],
        scope: Some(scope.into()),
        fields: fields.iter().map(|field| (*field).to_owned()).collect(),
        purpose: None,
    }
}

fn key_path(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("{tenant}.ed25519"))
}

/// The key the admin service signs erasure certificates with, in `dir`, created
/// (owner-only) if absent, with its public key beside it (`.pub`, 64 hex digits).
pub fn certificate_key(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = seed_file(&dir.join("certificate.ed25519"))?;
    let public = dir.join("certificate.ed25519.pub");
    std::fs::write(&public, hex::encode(key.verifying_key().as_bytes()))?;
    Ok((dir.join("certificate.ed25519"), public))
}

/// The tenant's signing key in `dir`, created (owner-only) if absent.
fn signing_key(dir: &Path, tenant: &str) -> anyhow::Result<SigningKey> {
    seed_file(&key_path(dir, tenant))
}

/// The Ed25519 key whose hex seed `path` holds, created (owner-only) if absent.
fn seed_file(path: &Path) -> anyhow::Result<SigningKey> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| format!("{} is not a hex Ed25519 seed", path.display()))?;
        return Ok(SigningKey::from_bytes(&seed));
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    write_private(path, hex::encode(key.to_bytes()).as_bytes())?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Writes the tenants file and the signing keys; returns the tenants file's path.
pub fn init(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tenants = BTreeMap::new();
    for tenant in TENANTS {
        let key = signing_key(dir, tenant)?;
        let auth = TenantAuth {
            issuer: issuer(tenant),
            keys: vec![TenantKey::ed25519(format!("{tenant}-dev"), &key.verifying_key())],
        };
        tenants.insert(
            tenant.to_owned(),
            TenantConfig {
                auth,
                policy: support_policy(tenant),
            },
        );
    }
    certificate_key(dir)?;
    let path = dir.join("tenants.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&TenantsFile { tenants })?)?;
    Ok(path)
}

/// `kind:id`, e.g. `agent:support-bot` or `human:alice`.
pub fn parse_actor(text: &str) -> Result<Actor, String> {
    let (kind, id) = text.split_once(':').ok_or_else(|| format!("{text:?} is not kind:id"))?;
    let kind = match kind {
        "human" => ActorKind::Human,
        "agent" => ActorKind::Agent,
        "service" => ActorKind::Service,
        "system" => ActorKind::System,
        other => return Err(format!("unknown actor kind {other:?} (human, agent, service, system)")),
    };
    Ok(Actor {
        kind,
        id: id.to_owned(),
    })
}

/// A development credential of `tenant` for `actor`, signed with the tenant's key in `dir`
/// (one hour).
pub fn issue(
    dir: &Path,
    tenant: &str,
    actor: Actor,
    on_behalf_of: Vec<Actor>,
    scopes: Vec<String>,
) -> anyhow::Result<String> {
    TokenArgs {
        tenant: tenant.to_owned(),
        actor,
        on_behalf_of,
        scopes,
        ttl: 3_600,
        dir: dir.to_owned(),
    }
    .issue()
}

/// `keel token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Who acts, `kind:id`.
    #[arg(long, value_parser = parse_actor)]
    actor: Actor,
    /// On whose behalf, `kind:id`, outermost first; repeat for a chain.
    #[arg(long = "on-behalf-of", value_parser = parse_actor)]
    on_behalf_of: Vec<Actor>,
    /// Scopes granted; repeat for several.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3_600)]
    ttl: u64,
    /// The development directory holding the signing keys.
    #[arg(long, env = "KEEL_DEV_DIR", default_value = ".local/dev")]
    dir: PathBuf,
}

impl TokenArgs {
    /// Signs the credential.
    pub fn issue(&self) -> anyhow::Result<String> {
        let path = key_path(&self.dir, &self.tenant);
        anyhow::ensure!(
            path.exists(),
            "no signing key for tenant {} at {} (run `keel dev init`)",
            self.tenant,
            path.display()
        );
        let key = signing_key(&self.dir, &self.tenant)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let claims = Claims {
            iss: issuer(&self.tenant),
            sub: self.actor.id.clone(),
            tenant: self.tenant.clone(),
            actor_kind: self.actor.kind,
            on_behalf_of: self.on_behalf_of.clone(),
            scopes: self.scopes.clone(),
            exp: now + self.ttl,
            nbf: None,
            iat: Some(now),
        };
        TokenIssuer::ed25519(format!("{}-dev", self.tenant), &key)
            .and_then(|issuer| issuer.issue(&claims))
            .map_err(anyhow::Error::msg)
    }
}
