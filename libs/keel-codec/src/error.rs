//! The one error type of keel-codec.

use keel_chain::ChainError;
use keel_crypto::CryptoError;
use keel_envelope::EnvelopeError;

/// Why a message could not be encoded, decoded, sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The envelope did not encode or decode.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Sealing or opening failed: tampering, a destroyed tenant, an unreachable vault.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The chain could not be computed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// No payload schema of this name and version is known.
    #[error("unknown payload schema {0}")]
    UnknownPayload(String),
    /// The payload does not fit its schema or the domain's type.
    #[error("bad payload: {0}")]
    Payload(String),
}
