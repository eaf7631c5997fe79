//! The production [`Codec`]: Avro envelopes whose payloads are sealed per tenant and per data
//! subject and chained per stream ([`keel_codec::EventCodec`]). Command results are JSON
//! (`docs/producing-commands.md` shows their shape): they carry ids and reasons only.

use keel_codec::{CommandDecodeError, EventCodec, EventHeader, WireError, from_wire_actor, to_wire_actor};
use keel_crypto::{CryptoError, KeyVault, Kms};
use keel_domain::{Aggregate, DomainEvent};
use keel_results::Reason;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::codec::{
    AppendContext, ChainHead, Codec, CodecError, DecodedCommand, ReplayedEvent, SealError, SealedEvent, Undecodable,
};
use crate::decide::IncomingCommand;
use keel_results::CommandResult;

fn uuid(field: &str, text: &str) -> Result<Uuid, String> {
    text.parse().map_err(|_| format!("{field} is not a UUID: {text:?}"))
}

/// What a refusal of undecodable input may say of it: the ids of its envelope that are
/// valid ids (an invalid one is never echoed back into a result, a key or a log).
fn readable(envelope: Option<&keel_envelope::CommandEnvelope>, reason: &'static str, error: String) -> Undecodable {
    let valid = |id: &str| keel_ids::is_valid(id).then(|| id.to_owned());
    Undecodable {
        command_id: envelope
            .filter(|e| keel_ids::is_valid(&e.command_id))
            .and_then(|e| e.command_id.parse().ok()),
        tenant: envelope.and_then(|e| valid(&e.tenant_id)),
        stream: envelope
            .filter(|e| keel_ids::check_stream("stream_id", &e.stream_id).is_ok())
            .map(|e| e.stream_id.clone()),
        reason,
        error,
    }
}

fn codec_error(error: impl std::fmt::Display) -> CodecError {
    CodecError(error.to_string())
}

impl<A, K, V> Codec<A> for EventCodec<K, V>
where
    A: Aggregate,
    A::Command: DeserializeOwned,
    A::Event: Serialize + DeserializeOwned,
    K: Kms + 'static,
    V: KeyVault + 'static,
{
    fn decode_command(&self, bytes: &[u8]) -> Result<DecodedCommand<A::Command>, Undecodable> {
        let (envelope, command) =
            self.wire()
                .decode_command::<A::Command>(bytes)
                .map_err(|CommandDecodeError { envelope, error }| {
                    readable(envelope.as_deref(), error.code(), error.to_string())
                })?;
        let unreadable = |error: String| readable(Some(&envelope), Reason::Undecodable.code(), error);
        let command_id = uuid("command_id", &envelope.command_id).map_err(&unreadable)?;
        let correlation_id = uuid("correlation_id", &envelope.correlation_id).map_err(&unreadable)?;
        let causation_id = envelope
            .causation_id
            .as_deref()
            .map(|id| uuid("causation_id", id))
            .transpose()
            .map_err(&unreadable)?;
        let expected_version = envelope
            .expected_version
            .map(|v| u64::try_from(v).map_err(|_| format!("expected_version {v} is negative")))
            .transpose()
            .map_err(&unreadable)?;
        let (actor, on_behalf_of, _) = from_wire_actor(&envelope.actor);
        Ok(DecodedCommand {
            command_type: envelope.command_type,
            correlation_id,
            causation_id,
            incoming: IncomingCommand {
                command_id,
                tenant: envelope.tenant_id,
                stream: envelope.stream_id,
                expected_version,
                actor,
                on_behalf_of,
                credential: envelope.credential,
                command,
            },
        })
    }

    async fn seal_events(
        &self,
        context: &AppendContext<'_>,
        head: &ChainHead,
        events: &[A::Event],
    ) -> Result<Vec<SealedEvent>, SealError> {
        let actor = to_wire_actor(
            &context.principal.actor,
            &context.principal.on_behalf_of,
            Some(context.authorization),
        );
        let mut prev = head.hash.clone();
        let mut sealed = Vec::with_capacity(events.len());
        for (version, event) in (head.version + 1..).zip(events) {
            let header = EventHeader {
                tenant: context.tenant,
                stream: context.stream,
                version,
                recorded_at_micros: context.recorded_at_micros,
                command_id: context.command_id,
                correlation_id: context.correlation_id,
                actor: actor.clone(),
                compensates: event.compensates(),
            };
            let envelope = match self.seal_event(&header, event, &prev).await {
                Ok(envelope) => envelope,
                Err(WireError::Crypto(CryptoError::TenantDestroyed(tenant))) => {
                    return Err(SealError::TenantErased(tenant));
                }
                Err(WireError::Crypto(error)) if error.is_transient() => {
                    return Err(SealError::Unavailable(error.to_string()));
                }
                Err(WireError::Crypto(CryptoError::InvalidSubject(message))) => {
                    return Err(SealError::Refused {
                        reason: Reason::InvalidId.code(),
                        message,
                    });
                }
                Err(WireError::Crypto(CryptoError::SubjectNotBound(message))) => {
                    return Err(SealError::Refused {
                        reason: Reason::SubjectNotBound.code(),
                        message,
                    });
                }
                Err(error) => return Err(codec_error(error).into()),
            };
            let bytes = self.wire().encode_event(&envelope).map_err(codec_error)?;
            prev.clone_from(&envelope.hash);
            sealed.push(SealedEvent {
                event_id: uuid("event_id", &envelope.event_id).map_err(CodecError)?,
                version,
                hash: envelope.hash,
                bytes,
            });
        }
        Ok(sealed)
    }

    async fn open_event(&self, bytes: &[u8]) -> Result<Option<ReplayedEvent<A::Event>>, CodecError> {
        let envelope = self.wire().read_event(bytes).map_err(codec_error)?;
        if keel_erasure::is_system_schema(&envelope.payload.schema_name) {
            return Ok(None);
        }
        let opened = EventCodec::open_event::<A::Event>(self, envelope)
            .await
            .map_err(codec_error)?;
        let envelope = opened.envelope;
        Ok(Some(ReplayedEvent {
            version: u64::try_from(envelope.stream_version)
                .map_err(|_| CodecError(format!("negative stream version in event {}", envelope.event_id)))?,
            event_id: uuid("event_id", &envelope.event_id).map_err(CodecError)?,
            tenant: envelope.tenant_id,
            stream: envelope.stream_id,
            hash: envelope.hash,
            event: opened.event,
        }))
    }

    fn encode_result(&self, result: &CommandResult) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(result).map_err(codec_error)
    }

    fn decode_result(&self, bytes: &[u8]) -> Result<CommandResult, CodecError> {
        serde_json::from_slice(bytes).map_err(codec_error)
    }
}
