//! The one error type of keel-codec.

use keel_chain::ChainError;
use keel_crypto::CryptoError;
use keel_envelope::EnvelopeError;
use keel_results::Reason;

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
    /// An id breaks the grammar every entry point enforces (`keel-ids`).
    #[error(transparent)]
    InvalidId(#[from] keel_ids::InvalidId),
    /// A field is larger than Keel takes (a credential, a delegation chain).
    #[error("{0}")]
    OutOfBounds(String),
}

impl WireError {
    /// The stable reason of a refusal for this error (command results, DLQ headers).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidId(_) => Reason::InvalidId.code(),
            Self::OutOfBounds(_) => Reason::OutOfBounds.code(),
            Self::Crypto(keel_crypto::CryptoError::InvalidSubject(_)) => Reason::InvalidId.code(),
            _ => Reason::Undecodable.code(),
        }
    }
}
