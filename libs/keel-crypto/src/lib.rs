//! Envelope encryption for Keel events.
//!
//! Key hierarchy: a [`Kms`] (master-key provider) holds each tenant's key-encryption keys
//! (KEKs) by epoch and wraps data keys with them; a [`KeyVault`] stores the wrapped data
//! keys: one tenant data key (sealing payloads) and one key per data subject (sealing that
//! subject's personal fields), each versioned. The [`KeyRing`] ties them together: it picks
//! or rotates the key to seal with ([`RotationPolicy`]), unwraps and caches keys to open
//! with, re-wraps keys under a new KEK epoch, and erases subjects and tenants.
//! [`KeyRing::seal`] and [`KeyRing::open`] turn a payload into the envelope's
//! [`keel_envelope::SealedPayload`] and back; personal fields are found from the payload
//! schema's `keel.subject` property ([`PayloadSchema`]).
//!
//! Everything here is pure except [`LocalFileKms`], the development KMS, and the key ring's
//! counters ([`KEY_CACHE_HITS`], [`KEY_CACHE_MISSES`], [`KEY_SEAL_RESERVATIONS`]) on the
//! `metrics` facade.

mod aead;
mod cache;
mod error;
mod ids;
mod keyring;
mod kms;
mod local_file_kms;
mod schema;
mod sealer;
mod sealing;
mod vault;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use aead::{DataKey, KEY_LEN, NONCE_LEN, associated_data};
pub use error::CryptoError;
pub use ids::{KekEpoch, KeyId, KeyOwner};
pub use keyring::{
    DEFAULT_CACHE_TTL, KEY_CACHE_HITS, KEY_CACHE_MISSES, KEY_SEAL_RESERVATIONS, KeyRing, Retirement, RotationPolicy,
    SEALING_OWNERS,
};
pub use kms::{InMemoryKms, Kms};
pub use local_file_kms::LocalFileKms;
pub use schema::{FOREIGN_SUBJECT_PROPERTY, PayloadSchema, PersonalField, SUBJECT_PROPERTY};
pub use sealer::{FieldState, Opened, OpenedField, SealContext, Sealed};
pub use vault::{CREATOR_SEALS, InMemoryKeyVault, KeyLookup, KeyVault, WrappedKey};
