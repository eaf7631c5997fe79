//! The trails' `EnvelopeReader` port over the production wire format: Avro event envelopes
//! as the command handler writes them.

use keel_codec::{Wire, from_wire_actor};
use keel_trails::{EnvelopeReader, EventMeta};

/// Reads Avro event envelopes (keyless: the trails need no payload).
#[derive(Debug, Clone)]
pub struct AvroEnvelopes(pub Wire);

impl EnvelopeReader for AvroEnvelopes {
    fn read(&self, bytes: &[u8]) -> Result<EventMeta, String> {
        let envelope = self.0.read_event(bytes).map_err(|error| error.to_string())?;
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
            authorization: authorization.ok_or_else(|| format!("event {} has no authorisation", envelope.event_id))?,
            compensates: envelope
                .compensates
                .as_deref()
                .map(|id| uuid("compensates", id))
                .transpose()?,
            hash: hex::encode(&envelope.hash),
            prev_hash: hex::encode(&envelope.prev_hash),
            event_type: envelope.event_type,
            tenant: envelope.tenant_id,
            stream: envelope.stream_id,
        })
    }
}
