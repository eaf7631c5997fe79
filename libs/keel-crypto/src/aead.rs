//! AES-256-GCM with a fresh random 96-bit nonce per seal and length-prefixed associated data.

use aes_gcm::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of the authentication tag AES-GCM appends to a ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a data key in bytes.
pub const KEY_LEN: usize = 32;

/// A plaintext data key, held only in memory; its cipher state is zeroized when dropped.
pub struct DataKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random key, with its raw bytes for wrapping (zeroized when dropped).
    pub fn generate() -> (Self, Zeroizing<Vec<u8>>) {
        let key = Aes256Gcm::generate_key(OsRng);
        let raw = Zeroizing::new(key.to_vec());
        (
            Self {
                cipher: Aes256Gcm::new(&key),
            },
            raw,
        )
    }

    /// A key from raw bytes (e.g. just unwrapped); rejects a wrong length.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, CryptoError> {
        if raw.len() != KEY_LEN {
            return Err(CryptoError::Malformed(format!("data key of {} bytes", raw.len())));
        }
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(raw)),
        })
    }

    /// Seals `plaintext` bound to `aad`, in place: returns the fresh nonce and the same
    /// buffer holding the ciphertext and tag (no plaintext is left in it).
    pub fn seal(&self, aad: &[u8], mut plaintext: Vec<u8>) -> Result<([u8; NONCE_LEN], Vec<u8>), CryptoError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        self.cipher
            .encrypt_in_place(&nonce, aad, &mut plaintext)
            .map_err(|_| CryptoError::Payload("aes-gcm refused to encrypt".into()))?;
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&nonce);
        Ok((n, plaintext))
    }

    /// Opens a ciphertext sealed with this key and the same `aad`; `what` names it in errors.
    /// The plaintext is not zeroized: wrap it in [`Zeroizing`] when it is key material.
    pub fn open(&self, aad: &[u8], nonce: &[u8], ciphertext: &[u8], what: &str) -> Result<Vec<u8>, CryptoError> {
        if nonce.len() != NONCE_LEN {
            return Err(CryptoError::Open { what: what.to_owned() });
        }
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| CryptoError::Open { what: what.to_owned() })
    }
}

/// Associated data: a domain tag, then each part as a 4-byte big-endian length and its bytes,
/// so no two different tuples share an encoding.
pub fn associated_data(domain: &str, parts: &[&str]) -> Vec<u8> {
    let len = domain.len() + parts.iter().map(|p| p.len()).sum::<usize>() + 4 * (1 + parts.len());
    let mut out = Vec::with_capacity(len);
    for part in std::iter::once(domain).chain(parts.iter().copied()) {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}
