//! Tamper evidence for Keel streams.
//!
//! Each stream is a hash chain: an event's `hash` is SHA-256 over its `prev_hash` and its
//! canonical bytes (the Avro envelope with `hash` emptied, ciphertext included), so chains
//! verify even after keys are destroyed ([`ChainHasher`]). [`verify_stream`] walks a stream
//! and names the first broken link ([`BreakKind`]). A [`CheckpointSigner`] signs chain heads
//! with Ed25519 at intervals, so rewriting a whole chain, or cutting its tail, is detected
//! by anyone holding the published verifying key. Pure: no I/O.

mod checkpoint;
mod error;
mod hash;
mod verify;

pub use checkpoint::{Checkpoint, CheckpointSigner, SignedCheckpoint, parse_key, publish_key};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::ChainError;
pub use hash::{ChainHasher, GENESIS, HASH_LEN};
pub use verify::{BreakKind, ChainBreak, Verdict, verify_stream};
