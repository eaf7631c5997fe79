//! The one error type of keel-envelope.

/// Why an envelope could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes do not start with the Avro single-object marker `C3 01`, or are too short.
    #[error("not an avro single-object message: {0}")]
    NotSingleObject(&'static str),
    /// The message names a writer schema this registry does not know.
    #[error("unknown writer schema fingerprint {0:#018x}")]
    UnknownFingerprint(u64),
    /// No reader schema is registered under this full name.
    #[error("no reader schema registered for {0}")]
    UnknownSchema(String),
    /// A schema file did not parse or a schema could not be registered.
    #[error("invalid schema {name}: {reason}")]
    InvalidSchema {
        /// The schema's file or full name.
        name: String,
        /// What the parser said.
        reason: String,
    },
    /// The body did not decode under the writer schema, or did not resolve to the reader schema.
    #[error("malformed avro body for {schema}: {reason}")]
    Malformed {
        /// The reader schema's full name.
        schema: String,
        /// What the decoder said.
        reason: String,
    },
    /// A value could not be encoded under its schema (a bug in the caller's types).
    #[error("cannot encode {schema}: {reason}")]
    Encode {
        /// The writer schema's full name.
        schema: String,
        /// What the encoder said.
        reason: String,
    },
    /// No upcaster turns this payload version into the current one.
    #[error("no upcaster from {schema} version {from} to version {to}")]
    NoUpcaster {
        /// Payload schema full name.
        schema: String,
        /// Version found in the event.
        from: i32,
        /// Version the reader wants.
        to: i32,
    },
}
