//! The trails' view of an Avro event envelope, as the command handler writes them.

use keel_codec::from_wire_actor;
use keel_envelope::EventEnvelope;
use keel_trails::EventMeta;

/// The metadata of `envelope`, which holds no personal data.
pub fn meta_of(envelope: &EventEnvelope) -> Result<EventMeta, String> {
    let uuid = |field: &str, text: &str| {
        text.parse()
            .map_err(|_| format!("{field} of event {} is not a UUID", envelope.event_id))
    };
    let (actor, on_behalf_of, authorization) = from_wire_actor(&envelope.actor);
    Ok(EventMeta {
        event_id: uuid("event_id", &envelope.event_id)?,
        version: u64::try_from(envelope.stream_version).map_err(|error| error.to_string())?,
        recorded_at_micros: envelope.recorded_at,
        command_id: uuid("command_id", &envelope.command_id)?,
        correlation_id: uuid("correlation_id", &envelope.correlation_id)?,
        actor,
        on_behalf_of,
        data_subjects: envelope.data_subjects.clone(),
        authorization: authorization.ok_or_else(|| format!("event {} has no authorisation", envelope.event_id))?,
        compensates: envelope
            .compensates
            .as_deref()
            .map(|id| uuid("compensates", id))
            .transpose()?,
        hash: hex::encode(&envelope.hash),
        prev_hash: hex::encode(&envelope.prev_hash),
        event_type: envelope.event_type.clone(),
        tenant: envelope.tenant_id.clone(),
        stream: envelope.stream_id.clone(),
    })
}
