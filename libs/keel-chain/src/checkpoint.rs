//! Ed25519-signed checkpoints of chain heads, so a rewrite of a whole chain is detected.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::{ChainError, HASH_LEN};

/// A chain head at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Tenant.
    pub tenant: String,
    /// Stream.
    pub stream: String,
    /// Stream version of the head.
    pub version: i64,
    /// Hash of the event at `version`.
    pub head: [u8; HASH_LEN],
}

impl Checkpoint {
    /// The signed bytes: a domain tag, tenant and stream (each 4-byte big-endian length then
    /// UTF-8), version (8-byte big-endian) and head.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.tenant.len() + self.stream.len());
        for part in ["keel/checkpoint/v1", &self.tenant, &self.stream] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.head);
        out
    }
}

/// A checkpoint and its Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// Signature over [`Checkpoint::signing_bytes`].
    pub signature: [u8; 64],
}

impl SignedCheckpoint {
    /// Checks the signature against a published verifying key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ChainError> {
        key.verify(
            &self.checkpoint.signing_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| ChainError::BadSignature {
            tenant: self.checkpoint.tenant.clone(),
            stream: self.checkpoint.stream.clone(),
            version: self.checkpoint.version,
        })
    }
}

/// Signs checkpoints every `interval` versions. The signing key is zeroized on drop.
pub struct CheckpointSigner {
    key: SigningKey,
    interval: i64,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer with a given key, checkpointing every `interval` versions (at least 1).
    pub fn new(key: SigningKey, interval: i64) -> Self {
        Self {
            key,
            interval: interval.max(1),
        }
    }

    /// A signer with a fresh random key.
    pub fn generate(interval: i64) -> Self {
        Self::new(SigningKey::generate(&mut rand::rngs::OsRng), interval)
    }

    /// Whether a checkpoint is due at this stream version.
    pub fn due(&self, version: i64) -> bool {
        version > 0 && version % self.interval == 0
    }

    /// Signs a checkpoint.
    pub fn sign(&self, checkpoint: Checkpoint) -> SignedCheckpoint {
        let signature = self.key.sign(&checkpoint.signing_bytes()).to_bytes();
        SignedCheckpoint { checkpoint, signature }
    }

    /// The key verifiers need; publish it (e.g. [`publish_key`]).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

/// The verifying key as lowercase hex (32 bytes), as a service publishes it.
pub fn publish_key(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// Parses a key published by [`publish_key`].
pub fn parse_key(published: &str) -> Result<VerifyingKey, ChainError> {
    let bytes = hex::decode(published.trim()).map_err(|e| ChainError::InvalidKey(e.to_string()))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ChainError::InvalidKey("not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| ChainError::InvalidKey(e.to_string()))
}
