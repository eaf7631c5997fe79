//! Credentials: `Authenticator::authenticate`.

use super::*;

/// Algorithms a forged header may name.
pub(super) const ALGORITHMS: [&str; 12] = [
    "none", "None", "NONE", "nOnE", "HS256", "EdDSA", "RS256", "ES256", "HS512", "PS256", "", "ED25519",
];

/// Credentials of tenant `acme` (an Ed25519 and an HS256 key), for the support agent acting
/// for alice, judged at [`NOW`].
pub(super) struct CredentialTarget {
    pub(super) authenticator: Authenticator,
    /// acme's Ed25519 key: what it signs is genuine.
    pub(super) signing: SigningKey,
    /// acme's HS256 key, through keel-auth's issuer.
    pub(super) hs256: TokenIssuer,
    /// An Ed25519 key acme does not know.
    pub(super) forger: SigningKey,
    pub(super) corpus: Vec<Vec<u8>>,
    /// Tokens of the corpus signed with acme's keys.
    pub(super) genuine: HashSet<String>,
    /// The last generated token signed with acme's keys.
    pub(super) last_genuine: Option<String>,
}

impl CredentialTarget {
    pub(super) fn new() -> anyhow::Result<Self> {
        let signing = tenant_key();
        let auth = TenantAuth {
            issuer: ISSUER.into(),
            keys: vec![
                TenantKey::ed25519("acme-ed", &signing.verifying_key()),
                TenantKey::hs256("acme-hs", HS256_SECRET),
            ],
        };
        let authenticator =
            Authenticator::new(&[(TENANT.to_owned(), auth)].into_iter().collect()).map_err(anyhow::Error::msg)?;
        let ed25519 = TokenIssuer::ed25519("acme-ed", &signing).map_err(anyhow::Error::msg)?;
        let hs256 = TokenIssuer::hs256("acme-hs", HS256_SECRET);
        let base = agent_claims();
        let variants = [
            base.clone(),
            Claims {
                nbf: Some(NOW - 5),
                iat: Some(NOW - 5),
                ..base.clone()
            },
            Claims {
                sub: "alice".into(),
                actor_kind: ActorKind::Human,
                on_behalf_of: Vec::new(),
                scopes: vec!["support:supervisor".into(), keel_erasure::ADMIN_SCOPE.into()],
                ..base.clone()
            },
            Claims {
                exp: NOW - 100,
                ..base.clone()
            },
            Claims {
                iss: "https://id.globex.example".into(),
                ..base.clone()
            },
            Claims {
                tenant: "globex".into(),
                ..base.clone()
            },
        ];
        let mut genuine = HashSet::new();
        for claims in &variants {
            for issuer in [&ed25519, &hs256] {
                genuine.insert(issuer.issue(claims).map_err(anyhow::Error::msg)?);
            }
        }
        let unkeyed = sign_ed25519(&signing, br#"{"typ":"JWT","alg":"EdDSA"}"#, &claims_json(&base));
        genuine.insert(unkeyed);
        let public = signing.verifying_key();
        let mut forged = vec![
            TokenIssuer::ed25519("acme-ed", &SigningKey::from_bytes(&[99; 32]))
                .and_then(|issuer| issuer.issue(&base))
                .map_err(anyhow::Error::msg)?,
            TokenIssuer::hs256("acme-ed", public.as_bytes())
                .issue(&base)
                .map_err(anyhow::Error::msg)?,
            TokenIssuer::hs256("acme-hs", URL_SAFE_NO_PAD.encode(public.as_bytes()).as_bytes())
                .issue(&base)
                .map_err(anyhow::Error::msg)?,
        ];
        forged.push(unsigned(br#"{"alg":"none","typ":"JWT"}"#, &claims_json(&base), ""));
        let mut corpus: Vec<Vec<u8>> = genuine.iter().map(|token| token.clone().into_bytes()).collect();
        corpus.sort();
        corpus.extend(forged.into_iter().map(String::into_bytes));
        Ok(Self {
            authenticator,
            signing,
            hs256,
            forger: SigningKey::from_bytes(&[99; 32]),
            corpus,
            genuine,
            last_genuine: None,
        })
    }

    /// Odd but well-typed claims, signed by acme's keys: genuine.
    pub(super) fn signed_claims(&mut self, rng: &mut StdRng) -> Option<String> {
        let mut claims = agent_claims();
        match rng.gen_range(0..7) {
            0 => claims.sub = text(rng),
            1 => claims.iss = text(rng),
            2 => claims.tenant = text(rng),
            3 => {
                claims.on_behalf_of = (0..*pick(rng, &[0, 1, 2, 9, 1000]))
                    .map(|_| Actor {
                        kind: ActorKind::Human,
                        id: text(rng),
                    })
                    .collect();
            }
            4 => claims.scopes = (0..rng.gen_range(0..=500)).map(|_| text(rng)).collect(),
            5 => {
                claims.exp = odd_u64(rng);
                claims.nbf = rng.gen_bool(0.5).then(|| odd_u64(rng));
                claims.iat = rng.gen_bool(0.5).then(|| odd_u64(rng));
            }
            _ => {}
        }
        let token = if rng.gen_bool(0.5) {
            self.hs256.issue(&claims).ok()?
        } else {
            sign_ed25519(
                &self.signing,
                br#"{"typ":"JWT","alg":"EdDSA","kid":"acme-ed"}"#,
                &claims_json(&claims),
            )
        };
        self.last_genuine = Some(token.clone());
        Some(token)
    }

    /// Claims JSON of any shape, signed by acme's Ed25519 key: genuine, so they reach the
    /// claims' deserialisation.
    pub(super) fn signed_json(&mut self, rng: &mut StdRng) -> String {
        let claims = odd_claims_json(rng);
        let header: &[u8] = if rng.gen_bool(0.8) {
            br#"{"typ":"JWT","alg":"EdDSA","kid":"acme-ed"}"#
        } else {
            br#"{"alg":"EdDSA"}"#
        };
        let token = sign_ed25519(&self.signing, header, &claims);
        self.last_genuine = Some(token.clone());
        token
    }

    /// A token of the corpus with one segment edited (not signed again): forged.
    pub(super) fn edited(&self, rng: &mut StdRng) -> String {
        let token = String::from_utf8_lossy(pick(rng, &self.corpus).as_slice()).into_owned();
        let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
        let segment = rng.gen_range(0..segments.len());
        match rng.gen_range(0..9) {
            0 => {
                let mut header = decoded_object(&segments[0]);
                header["alg"] = json!(pick(rng, &ALGORITHMS));
                if rng.gen_bool(0.5) {
                    header["kid"] = json!(pick(rng, &["acme-ed", "acme-hs", "acme-1", ""]));
                }
                segments[0] = URL_SAFE_NO_PAD.encode(header.to_string());
                if header["alg"]
                    .as_str()
                    .is_some_and(|alg| alg.eq_ignore_ascii_case("none"))
                {
                    segments.truncate(2);
                    segments.push(String::new());
                }
            }
            1 => {
                let mut header = decoded_object(&segments[0]);
                let field = *pick(rng, &["kid", "typ", "cty", "jku", "x5u", "crit", "jwk", "x5c"]);
                header[field] = odd_json(rng, 3);
                segments[0] = URL_SAFE_NO_PAD.encode(header.to_string());
            }
            2 if segments.len() > 1 => segments[1] = URL_SAFE_NO_PAD.encode(odd_claims_json(rng)),
            3 => {
                let signature = match rng.gen_range(0..4) {
                    0 => Vec::new(),
                    1 => random_bytes(rng, 128),
                    2 => self.forger.sign(b"something else").to_bytes().to_vec(),
                    _ => vec![0; 100_000],
                };
                let last = segments.len() - 1;
                segments[last] = URL_SAFE_NO_PAD.encode(signature);
            }
            4 => {
                let alphabet = if rng.gen_bool(0.7) {
                    &b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[..]
                } else {
                    &b"+/=.!* \n\0%"[..]
                };
                let len = *pick(rng, &[0, 1, 2, 3, 5, 86, 87, 1000, 100_000]);
                segments[segment] = (0..len).map(|_| char::from(*pick(rng, alphabet))).collect();
            }
            5 => segments[segment].push_str(pick::<&str>(rng, &["=", "==", "===", "\n", " "])),
            6 => {
                let copies = *pick(rng, &[1, 2, 10, 1000]);
                let copied = segments[segment].clone();
                segments.splice(segment..segment, std::iter::repeat_n(copied, copies));
            }
            7 => {
                segments.remove(segment);
            }
            _ => return format!("{token}{}", ".".repeat(*pick(rng, &[1, 2, 100, 10_000]))),
        }
        segments.join(".")
    }
}

impl Decoder for CredentialTarget {
    fn corpus(&self) -> &[Vec<u8>] {
        &self.corpus
    }

    fn generate(&mut self, rng: &mut StdRng) -> Option<Vec<u8>> {
        self.last_genuine = None;
        let token = match rng.gen_range(0..10) {
            0 | 1 => self.signed_claims(rng)?,
            2 | 3 => self.signed_json(rng),
            4 => {
                let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, pick(rng, &ALGORITHMS[..4]));
                let signature = if rng.gen_bool(0.5) { "" } else { "c2lnbmF0dXJl" };
                unsigned(header.as_bytes(), &claims_json(&agent_claims()), signature)
            }
            5 => {
                // HS256 under the Ed25519 key's id, keyed with its public key: alg confusion.
                let public = self.signing.verifying_key();
                let secret = if rng.gen_bool(0.5) {
                    public.as_bytes().to_vec()
                } else {
                    URL_SAFE_NO_PAD.encode(public.as_bytes()).into_bytes()
                };
                let kid = *pick(rng, &["acme-ed", "acme-hs"]);
                TokenIssuer::hs256(kid, &secret).issue(&agent_claims()).ok()?
            }
            _ => self.edited(rng),
        };
        Some(token.into_bytes())
    }

    fn feed(&self, input: &[u8]) -> Result<Answer, String> {
        let token = String::from_utf8_lossy(input);
        match self
            .authenticator
            .authenticate(TENANT, &token, &agent(), &[supervisor()], NOW)
        {
            Ok(principal) => {
                let genuine = self.genuine.contains(token.as_ref()) || self.last_genuine.as_deref() == Some(&token);
                if !genuine {
                    return Err("a credential no key of the tenant signed was accepted".into());
                }
                if principal.tenant != TENANT || principal.actor != agent() {
                    return Err(format!(
                        "a credential was accepted for tenant {:?} and actor {:?}",
                        principal.tenant, principal.actor
                    ));
                }
                Ok(Answer::Accepted)
            }
            Err(error) => {
                // Services answer with the code and log the message.
                let _ = (error.code(), error.to_string());
                Ok(Answer::Refused)
            }
        }
    }
}

pub(super) fn claims_json(claims: &Claims) -> Vec<u8> {
    serde_json::to_vec(claims).unwrap_or_default()
}

/// `header.claims.signature`, signed by `key` as EdDSA.
pub(super) fn sign_ed25519(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
    let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

pub(super) fn unsigned(header: &[u8], claims: &[u8], signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// The JSON object a token segment encodes, or an empty one.
pub(super) fn decoded_object(segment: &str) -> Value {
    URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// A JSON value of any type, nested at most `depth` deep.
pub(super) fn odd_json(rng: &mut StdRng, depth: usize) -> Value {
    match rng.gen_range(0..9) {
        0 => Value::Null,
        1 => json!(rng.gen_bool(0.5)),
        2 => json!(odd_i64(rng)),
        3 => json!(odd_u64(rng)),
        4 => json!(*pick(rng, &[1.5, -0.0, 1e308, f64::MIN_POSITIVE])),
        5 if depth > 0 => Value::Array((0..rng.gen_range(0..4)).map(|_| odd_json(rng, depth - 1)).collect()),
        6 if depth > 0 => Value::Object(std::iter::once((text(rng), odd_json(rng, depth - 1))).collect()),
        _ => json!(text(rng)),
    }
}

/// Claims JSON text of any shape: the agent's claims with fields of the wrong type, extra
/// or missing fields, or text JSON values cannot hold (a duplicate key, a 400-digit number,
/// nesting past serde_json's limit).
pub(super) fn odd_claims_json(rng: &mut StdRng) -> Vec<u8> {
    let mut claims = serde_json::to_value(agent_claims()).unwrap_or_else(|_| json!({}));
    let fields = [
        "iss",
        "sub",
        "tenant",
        "actor_kind",
        "on_behalf_of",
        "scopes",
        "exp",
        "nbf",
        "iat",
        "aud",
    ];
    for _ in 0..rng.gen_range(1..=3) {
        let field = *pick(rng, &fields);
        if rng.gen_bool(0.2) {
            if let Some(map) = claims.as_object_mut() {
                map.remove(field);
            }
        } else {
            claims[field] = odd_json(rng, 3);
        }
    }
    let text = claims.to_string();
    let body = text.strip_prefix('{').unwrap_or(&text);
    match rng.gen_range(0..6) {
        0 => format!(r#"{{"exp":0,{body}"#).into_bytes(),
        1 => format!(r#"{{"exp":1{},{body}"#, "0".repeat(400)).into_bytes(),
        2 => {
            let depth = *pick(rng, &[127, 128, 129, 10_000]);
            format!(r#"{{"scopes":{}{},{body}"#, "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
        3 => (*pick(rng, &["", "null", "[]", "\"text\"", "{", "{}"]))
            .as_bytes()
            .to_vec(),
        _ => text.into_bytes(),
    }
}
