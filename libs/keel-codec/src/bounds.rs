//! What a command envelope may carry, checked where it enters (before anything reads its
//! ids, looks up state or checks its credential): every id in the grammar of `keel-ids`,
//! a credential of at most [`MAX_CREDENTIAL_BYTES`], a delegation chain of at most
//! [`MAX_DELEGATION`] actors. The record as a whole is bounded by the consumer
//! (`KEEL_MAX_COMMAND_BYTES`).

use keel_envelope::CommandEnvelope;

use crate::WireError;

/// The most actors a command may act on behalf of.
pub const MAX_DELEGATION: usize = 8;

/// The most bytes of a command's credential (a JWT with a handful of claims is well under
/// 2 KiB).
pub const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// Checks the ids and sizes of a decoded command envelope.
pub(crate) fn check_envelope(envelope: &CommandEnvelope) -> Result<(), WireError> {
    keel_ids::check("command_id", &envelope.command_id)?;
    keel_ids::check("correlation_id", &envelope.correlation_id)?;
    if let Some(causation) = &envelope.causation_id {
        keel_ids::check("causation_id", causation)?;
    }
    keel_ids::check("tenant_id", &envelope.tenant_id)?;
    keel_ids::check_stream("stream_id", &envelope.stream_id)?;
    keel_ids::check("command_type", &envelope.command_type)?;
    keel_ids::check("payload.schema_name", &envelope.payload.schema_name)?;
    keel_ids::check("actor.id", &envelope.actor.id)?;
    let delegation = &envelope.actor.delegation;
    if delegation.len() > MAX_DELEGATION {
        return Err(WireError::OutOfBounds(format!(
            "actor.delegation has {} actors, over the limit of {MAX_DELEGATION}",
            delegation.len()
        )));
    }
    for principal in delegation {
        keel_ids::check("actor.delegation.id", &principal.id)?;
    }
    if envelope.credential.len() > MAX_CREDENTIAL_BYTES {
        return Err(WireError::OutOfBounds(format!(
            "credential is {} bytes, over the limit of {MAX_CREDENTIAL_BYTES}",
            envelope.credential.len()
        )));
    }
    Ok(())
}
