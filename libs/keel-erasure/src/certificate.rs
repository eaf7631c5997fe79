//! The erasure certificate: what was erased, by whom, why, when, and where the log records
//! it, signed with Ed25519.
//!
//! The signature covers the certificate's canonical JSON: the `certificate` object with its
//! keys sorted and no whitespace (RFC 8785 JCS for documents without floating-point
//! numbers, which this one never has). A verifier in any language re-serializes the object
//! the same way and checks the signature with the service's public key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use keel_auth::{Actor, Authorization};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies this document format; bumped when a field changes meaning.
pub const FORMAT: &str = "keel.erasure-certificate.v1";

/// Where the erasure's event sits in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRef {
    /// The `SubjectErased` event's id.
    pub event_id: Uuid,
    /// Its stream (`keel.erasure:<subject>`).
    pub stream: String,
    /// The events topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset: a projection that reached it has applied the erasure.
    pub offset: i64,
    /// The event's chain hash, hex.
    pub hash: String,
}

/// The certified facts of one erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Always [`FORMAT`].
    pub format: String,
    /// The tenant.
    pub tenant: String,
    /// The erased subject's reference; `*` when the whole tenant was erased.
    pub subject: String,
    /// When the keys were destroyed, microseconds since the Unix epoch.
    pub erased_at_micros: i64,
    /// Who asked, authenticated.
    pub requested_by: Actor,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// The policy rule that allowed it.
    pub authorization: Authorization,
    /// Why, as the request said.
    pub reason: String,
    /// The erase command's id.
    pub command_id: Uuid,
    /// Every subject key version destroyed (a subject's erasure; empty for a tenant's,
    /// which destroys every key of the tenant).
    pub destroyed_key_ids: Vec<String>,
    /// How many data key versions were destroyed.
    pub destroyed_key_count: u64,
    /// How many events referenced the subject (listed it among their data subjects), as the
    /// projections had applied them when it was erased: events not projected by then are
    /// not counted. `None` for a whole tenant.
    pub referencing_events: Option<u64>,
    /// The `SubjectErased` (or `TenantErased`) event.
    pub event: EventRef,
    /// When erasure is final against copies on disk (old SSTables, snapshots, the commands
    /// topic), microseconds since the Unix epoch; `None` while no KEK rotation is scheduled
    /// to make the destroyed keys' old wrapped copies useless.
    pub final_by_micros: Option<i64>,
}

/// The signature block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The signing key's id: the hex of its public key's first 8 bytes.
    pub key_id: String,
    /// The signature, base64 (standard alphabet, padded).
    pub value: String,
}

/// A certificate and its signature: the document the admin service returns and keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCertificate {
    /// The certified facts.
    pub certificate: Certificate,
    /// The signature over their canonical JSON.
    pub signature: SignatureBlock,
}

/// Why a certificate does not verify.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// Not a certificate document.
    #[error("not an erasure certificate: {0}")]
    Malformed(String),
    /// Signed by another key than the one given.
    #[error("signed by key {found}, not by {expected}")]
    WrongKey {
        /// The key id the document names.
        found: String,
        /// The key id of the key given.
        expected: String,
    },
    /// The signature does not match the content: the document was altered.
    #[error("the signature does not match the certificate: it was altered or forged")]
    BadSignature,
    /// A key file that is not a key.
    #[error("bad key: {0}")]
    Key(String),
}

/// The canonical JSON of `certificate`: sorted keys, no whitespace.
pub fn canonical_json(certificate: &Certificate) -> Result<Vec<u8>, CertificateError> {
    // serde_json's Value keeps object keys sorted (no `preserve_order`), so writing the value
    // gives the canonical form.
    let value = serde_json::to_value(certificate).map_err(|e| CertificateError::Malformed(e.to_string()))?;
    serde_json::to_vec(&value).map_err(|e| CertificateError::Malformed(e.to_string()))
}

/// The id of a verifying key: hex of its first 8 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&key.as_bytes()[..8])
}

/// Signs certificates with the service's Ed25519 key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &key_id(&self.key.verifying_key()))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer over `key`.
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// A signer from a key file: the 32-byte Ed25519 seed as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, CertificateError> {
        let bytes = hex::decode(text.trim()).map_err(|e| CertificateError::Key(e.to_string()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CertificateError::Key("an Ed25519 seed is 32 bytes".into()))?;
        Ok(Self::new(SigningKey::from_bytes(&seed)))
    }

    /// The public key that checks this signer's certificates.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `certificate`.
    pub fn sign(&self, certificate: Certificate) -> Result<SignedCertificate, CertificateError> {
        use ed25519_dalek::Signer as _;
        let signature = self.key.sign(&canonical_json(&certificate)?);
        Ok(SignedCertificate {
            certificate,
            signature: SignatureBlock {
                algorithm: "Ed25519".into(),
                key_id: key_id(&self.key.verifying_key()),
                value: BASE64.encode(signature.to_bytes()),
            },
        })
    }
}

/// A verifying key from its 32 bytes as 64 hex digits.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, CertificateError> {
    let bytes = hex::decode(text.trim()).map_err(|e| CertificateError::Key(e.to_string()))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| CertificateError::Key("an Ed25519 public key is 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| CertificateError::Key(e.to_string()))
}

/// Parses a signed certificate document and checks its signature with `key`.
pub fn verify(document: &[u8], key: &VerifyingKey) -> Result<Certificate, CertificateError> {
    let signed: SignedCertificate =
        serde_json::from_slice(document).map_err(|e| CertificateError::Malformed(e.to_string()))?;
    if signed.signature.algorithm != "Ed25519" {
        return Err(CertificateError::Malformed(format!(
            "signature algorithm {} (expected Ed25519)",
            signed.signature.algorithm
        )));
    }
    let expected = key_id(key);
    if signed.signature.key_id != expected {
        return Err(CertificateError::WrongKey {
            found: signed.signature.key_id,
            expected,
        });
    }
    let bytes = BASE64
        .decode(&signed.signature.value)
        .map_err(|_| CertificateError::BadSignature)?;
    let signature = Signature::from_slice(&bytes).map_err(|_| CertificateError::BadSignature)?;
    key.verify_strict(&canonical_json(&signed.certificate)?, &signature)
        .map_err(|_| CertificateError::BadSignature)?;
    Ok(signed.certificate)
}

#[cfg(test)]
mod tests {
    use keel_auth::ActorKind;
    use proptest::prelude::*;

    use super::*;

    fn certificate() -> Certificate {
        Certificate {
            format: FORMAT.into(),
            tenant: "acme".into(),
            subject: "cust-7".into(),
            erased_at_micros: 1_764_000_000_000_000,
            requested_by: Actor {
                kind: ActorKind::Human,
                id: "dpo".into(),
            },
            on_behalf_of: Vec::new(),
            authorization: Authorization {
                policy: "acme/1".into(),
                rule: "admins".into(),
                scope: Some("keel:admin".into()),
            },
            reason: "ticket 42".into(),
            command_id: Uuid::nil(),
            destroyed_key_ids: vec!["acme/subject/cust-7/v1".into()],
            destroyed_key_count: 1,
            referencing_events: Some(10),
            event: EventRef {
                event_id: Uuid::nil(),
                stream: "keel.erasure:cust-7".into(),
                topic: "keel.events".into(),
                partition: 3,
                offset: 1234,
                hash: "00".repeat(32),
            },
            final_by_micros: None,
        }
    }

    fn signer() -> Signer {
        Signer::new(SigningKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn a_signed_certificate_verifies_with_the_signers_public_key() -> Result<(), CertificateError> {
        let signed = signer().sign(certificate())?;
        let document = serde_json::to_vec_pretty(&signed).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        assert_eq!(verify(&document, &signer().verifying_key())?, certificate());
        Ok(())
    }

    #[test]
    fn another_key_is_refused() -> Result<(), CertificateError> {
        let signed = signer().sign(certificate())?;
        let document = serde_json::to_vec(&signed).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(matches!(
            verify(&document, &other),
            Err(CertificateError::WrongKey { .. })
        ));
        Ok(())
    }

    #[test]
    fn an_added_field_is_refused() -> Result<(), CertificateError> {
        let signed = signer().sign(certificate())?;
        let mut value = serde_json::to_value(&signed).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        value["certificate"]["note"] = serde_json::json!("also erased cust-8");
        let document = serde_json::to_vec(&value).map_err(|e| CertificateError::Malformed(e.to_string()))?;
        assert!(matches!(
            verify(&document, &signer().verifying_key()),
            Err(CertificateError::Malformed(_))
        ));
        Ok(())
    }

    proptest! {
        /// Changing any one byte of the document's text makes it fail to verify (or fail to
        /// parse): nothing in it can be altered unnoticed.
        #[test]
        fn any_altered_byte_is_caught(index in 0usize..10_000, byte in any::<u8>()) {
            let signed = signer().sign(certificate()).expect("signs");
            let mut document = serde_json::to_vec(&signed).expect("serializes");
            let index = index % document.len();
            prop_assume!(document[index] != byte);
            let original = document[index];
            document[index] = byte;
            // Letter case in the hex hash or base64 padding variants are not the only
            // neutral edits: whitespace between tokens is. Those leave the content equal.
            let reparsed: Option<SignedCertificate> = serde_json::from_slice(&document).ok();
            if reparsed.as_ref() == Some(&signed) {
                return Ok(());
            }
            prop_assert!(
                verify(&document, &signer().verifying_key()).is_err(),
                "byte {index} changed from {original:#x} to {byte:#x} and the certificate still verifies"
            );
        }
    }
}
