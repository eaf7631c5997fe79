//! The one error type of keel-chain.

/// Why chaining or checkpoint verification could not proceed (as opposed to a broken chain,
/// which is a [`crate::ChainBreak`]).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The envelope could not be encoded to its canonical bytes.
    #[error("cannot encode event {event_id} canonically: {source}")]
    Encode {
        /// The event.
        event_id: String,
        /// What the encoder said.
        source: keel_envelope::EnvelopeError,
    },
    /// The envelope schema is missing from the registry.
    #[error(transparent)]
    Schema(#[from] keel_envelope::EnvelopeError),
    /// A checkpoint signature does not verify under the given key.
    #[error("checkpoint of {tenant}/{stream} at version {version} has a bad signature")]
    BadSignature {
        /// Tenant.
        tenant: String,
        /// Stream.
        stream: String,
        /// Version.
        version: i64,
    },
    /// A published verifying key could not be parsed.
    #[error("invalid verifying key: {0}")]
    InvalidKey(String),
}
