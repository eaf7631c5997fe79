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
    /// A command this domain does not take: another domain's (its payload schema is in
    /// another namespace), or of a type or version this release does not know.
    #[error("{0}")]
    UnknownCommand(String),
    /// The payload does not fit its schema or the domain's type.
    #[error("bad payload: {0}")]
    Payload(String),
    /// A field of a payload given as JSON does not fit its schema (see [`crate::json`]).
    #[error("bad payload: {0}")]
    Field(FieldError),
    /// An id breaks the grammar every entry point enforces (`keel-ids`).
    #[error(transparent)]
    InvalidId(#[from] keel_ids::InvalidId),
    /// A field is larger than Keel takes (a credential, a delegation chain).
    #[error("{0}")]
    OutOfBounds(String),
}

// Not `#[from]`, which would make the field error also the source and print it twice.
impl From<FieldError> for WireError {
    fn from(error: FieldError) -> Self {
        Self::Field(error)
    }
}

impl WireError {
    /// The stable reason of a refusal for this error (command results, DLQ headers).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidId(_) => Reason::InvalidId.code(),
            Self::OutOfBounds(_) => Reason::OutOfBounds.code(),
            Self::UnknownCommand(_) => Reason::UnknownCommand.code(),
            Self::Crypto(keel_crypto::CryptoError::InvalidSubject(_)) => Reason::InvalidId.code(),
            Self::Crypto(keel_crypto::CryptoError::SubjectNotBound(_)) => Reason::SubjectNotBound.code(),
            _ => Reason::Undecodable.code(),
        }
    }
}

/// Which field of a payload given as JSON does not fit its Avro schema, and how. A field is
/// named by its dotted path from the payload record (`refund.amount_cents`, `lines[2].sku`,
/// a map's key as a segment); the payload itself is `the payload`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A field the schema has, without a default, is absent.
    #[error("missing field {0}")]
    Missing(String),
    /// A field the schema does not have.
    #[error("unknown field {0}")]
    Unknown(String),
    /// A value of the wrong type, out of its type's range, or not one of an enum's symbols.
    #[error("{path}: expected {expected}, got {got}")]
    Mismatch {
        /// The field.
        path: String,
        /// What the schema takes there.
        expected: String,
        /// The value given (its first characters).
        got: String,
    },
    /// A field of a type that has no JSON form here (decimal, duration).
    #[error("{path}: {kind} cannot be given as JSON")]
    Unsupported {
        /// The field.
        path: String,
        /// Its type.
        kind: String,
    },
}

impl FieldError {
    /// The dotted path of the field.
    pub fn path(&self) -> &str {
        match self {
            Self::Missing(path) | Self::Unknown(path) => path,
            Self::Mismatch { path, .. } | Self::Unsupported { path, .. } => path,
        }
    }
}
