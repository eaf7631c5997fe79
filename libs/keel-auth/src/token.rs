//! Credentials: JWTs signed per tenant, verified against the tenant's configured keys.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Actor, ActorKind, AuthError, Principal};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The claims of a Keel credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer; must be the tenant's configured issuer.
    pub iss: String,
    /// The actor's id.
    pub sub: String,
    /// The tenant the credential is for.
    pub tenant: String,
    /// The actor's kind.
    pub actor_kind: ActorKind,
    /// On whose behalf the actor acts, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_behalf_of: Vec<Actor>,
    /// Scopes granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// A tenant's credential configuration: who issues its tokens and with which keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantAuth {
    /// The only issuer (`iss`) accepted for this tenant.
    pub issuer: String,
    /// Verification keys; several during a key rollover.
    pub keys: Vec<TenantKey>,
}

/// One verification key of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantKey {
    /// Key id, matched against the token header's `kid` when it has one.
    pub kid: String,
    /// Signature algorithm.
    pub algorithm: KeyAlgorithm,
    /// EdDSA: the Ed25519 public key, base64url without padding (a JWK's `x`).
    /// HS256: the shared secret, standard base64.
    pub key: String,
}

/// Signature algorithms Keel accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// Ed25519 signatures: the tenant holds only the public key.
    EdDSA,
    /// HMAC-SHA256 with a shared secret.
    HS256,
}

impl KeyAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::HS256 => Algorithm::HS256,
        }
    }
}

impl TenantKey {
    /// The configuration entry for an Ed25519 verifying key.
    pub fn ed25519(kid: impl Into<String>, key: &ed25519_dalek::VerifyingKey) -> Self {
        Self {
            kid: kid.into(),
            algorithm: KeyAlgorithm::EdDSA,
            key: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }
    }

    /// The configuration entry for an HS256 secret.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            algorithm: KeyAlgorithm::HS256,
            key: STANDARD.encode(secret),
        }
    }

    fn decoding_key(&self) -> Result<DecodingKey, String> {
        match self.algorithm {
            KeyAlgorithm::EdDSA => DecodingKey::from_ed_components(&self.key).map_err(|error| error.to_string()),
            KeyAlgorithm::HS256 => DecodingKey::from_base64_secret(&self.key).map_err(|error| error.to_string()),
        }
    }
}

struct Verifier {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

struct TenantVerifiers {
    issuer: String,
    keys: Vec<Verifier>,
}

/// Verifies credentials against each tenant's configured issuer and keys.
pub struct Authenticator {
    tenants: HashMap<String, TenantVerifiers>,
}

impl Authenticator {
    /// Builds verifiers from per-tenant configuration; a key that does not parse is an error
    /// naming the tenant and key id, so bad configuration fails at start-up.
    pub fn new(tenants: &HashMap<String, TenantAuth>) -> Result<Self, String> {
        let mut verifiers = HashMap::with_capacity(tenants.len());
        for (tenant, auth) in tenants {
            let mut keys = Vec::with_capacity(auth.keys.len());
            for key in &auth.keys {
                let decoding = key
                    .decoding_key()
                    .map_err(|error| format!("tenant {tenant} key {}: {error}", key.kid))?;
                keys.push(Verifier {
                    kid: key.kid.clone(),
                    algorithm: key.algorithm.jwt(),
                    key: decoding,
                });
            }
            verifiers.insert(
                tenant.clone(),
                TenantVerifiers {
                    issuer: auth.issuer.clone(),
                    keys,
                },
            );
        }
        Ok(Self { tenants: verifiers })
    }

    /// Authenticates `token` for a command of `tenant` claiming to come from `actor` on behalf
    /// of `on_behalf_of`, at `now` (seconds since the Unix epoch): [`Authenticator::verify`],
    /// and the command's claimed actor and delegation must be the credential's.
    pub fn authenticate(
        &self,
        tenant: &str,
        token: &str,
        actor: &Actor,
        on_behalf_of: &[Actor],
        now: u64,
    ) -> Result<Principal, AuthError> {
        let principal = self.verify(tenant, token, now)?;
        if principal.actor != *actor {
            return Err(AuthError::ActorMismatch(format!(
                "the command claims {} {}, the credential names {} {}",
                actor.kind.as_str(),
                actor.id,
                principal.actor.kind.as_str(),
                principal.actor.id
            )));
        }
        if principal.on_behalf_of != on_behalf_of {
            return Err(AuthError::ActorMismatch(
                "the delegation chain differs from the credential's".into(),
            ));
        }
        Ok(principal)
    }

    /// Verifies a bearer `token` for `tenant` at `now` (seconds since the Unix epoch): signed
    /// by one of the tenant's keys, issued by its issuer, for this tenant, and valid now.
    pub fn verify(&self, tenant: &str, token: &str, now: u64) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| AuthError::Malformed(error.to_string()))?;
        let verifiers = self
            .tenants
            .get(tenant)
            .ok_or_else(|| AuthError::UnknownTenant(tenant.to_owned()))?;
        let claims = verifiers.verify(tenant, token, &header)?;
        if claims.tenant != tenant {
            return Err(AuthError::WrongTenant {
                credential: claims.tenant,
                command: tenant.to_owned(),
            });
        }
        if now > claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS)) {
            return Err(AuthError::NotYetValid);
        }
        Ok(Principal {
            tenant: claims.tenant,
            actor: Actor {
                kind: claims.actor_kind,
                id: claims.sub,
            },
            on_behalf_of: claims.on_behalf_of,
            scopes: claims.scopes,
        })
    }
}

impl TenantVerifiers {
    fn verify(&self, tenant: &str, token: &str, header: &Header) -> Result<Claims, AuthError> {
        let candidates = self
            .keys
            .iter()
            .filter(|key| key.algorithm == header.alg && header.kid.as_ref().is_none_or(|kid| *kid == key.kid));
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            validation.set_issuer(&[&self.issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            // Expiry and not-before are checked by the caller against its own clock.
            validation.validate_exp = false;
            validation.validate_nbf = false;
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => match error.kind() {
                    ErrorKind::InvalidSignature => continue,
                    ErrorKind::InvalidIssuer => {
                        return Err(AuthError::WrongIssuer {
                            tenant: tenant.to_owned(),
                        });
                    }
                    _ => return Err(AuthError::Malformed(error.to_string())),
                },
            }
        }
        Err(AuthError::BadSignature {
            tenant: tenant.to_owned(),
        })
    }
}

/// Signs credentials: for the `keel` CLI, the demo and tests. Production tokens come from
/// the tenant's identity provider; Keel only verifies them.
pub struct TokenIssuer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl TokenIssuer {
    /// An issuer signing with an Ed25519 key.
    pub fn ed25519(kid: impl Into<String>, key: &ed25519_dalek::SigningKey) -> Result<Self, String> {
        let der = key
            .to_pkcs8_der()
            .map_err(|error| format!("encoding the signing key: {error}"))?;
        Ok(Self {
            kid: kid.into(),
            algorithm: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    /// An issuer signing with an HS256 secret.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
        }
    }

    /// Signs `claims` into a compact JWT.
    pub fn issue(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|error| format!("signing a credential: {error}"))
    }
}
