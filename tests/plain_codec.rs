//! A plain codec for exercising the handler's exactly-once loop: JSON envelopes, a SHA-256
//! chain over the JSON, no encryption. It is a test adapter of the handler's `Codec` port,
//! not the product's wire format (Avro, sealed: the event core); Kafka and the CQL store
//! the loop runs against are real.

use keel_auth::{Actor, Authorization};
use keel_customer_support::{Customer, SupportCommand, SupportEvent};
use keel_domain::{DomainCommand, DomainEvent};
use keel_handler::Codec;
use keel_handler::codec::{
    AppendContext, ChainHead, CodecError, DecodedCommand, ReplayedEvent, SealedEvent, Undecodable,
};
use keel_handler::decide::IncomingCommand;
use keel_handler::result::CommandResult;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A command as producers send it, in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlainCommand {
    /// Idempotency key.
    pub command_id: Uuid,
    /// Tenant.
    pub tenant: String,
    /// Stream.
    pub stream: String,
    /// Command type.
    pub command_type: String,
    /// Expected version.
    pub expected_version: Option<u64>,
    /// Claimed actor.
    pub actor: Actor,
    /// On whose behalf.
    pub on_behalf_of: Vec<Actor>,
    /// Signed credential.
    pub credential: String,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// The domain command.
    pub payload: SupportCommand,
}

/// An event as the plain codec writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlainEvent {
    /// Event id.
    pub event_id: Uuid,
    /// Tenant.
    pub tenant: String,
    /// Stream.
    pub stream: String,
    /// Version, gapless from 1.
    pub version: u64,
    /// Event type.
    pub event_type: String,
    /// Causing command.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// When recorded, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// Acting actor.
    pub actor: Actor,
    /// On whose behalf.
    pub on_behalf_of: Vec<Actor>,
    /// The rule that allowed it.
    pub authorization: Authorization,
    /// The event it compensates.
    pub compensates: Option<Uuid>,
    /// The domain event.
    pub payload: SupportEvent,
    /// Hex hash of the previous event ("" for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of `prev_hash` and this event's JSON with `hash` empty.
    pub hash: String,
}

impl PlainEvent {
    /// The hash this event should carry.
    pub fn expected_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let json = serde_json::to_vec(&unhashed).unwrap_or_default();
        let mut digest = Sha256::new();
        digest.update(self.prev_hash.as_bytes());
        digest.update(&json);
        hex::encode(digest.finalize())
    }
}

/// The plain codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainCodec;

impl Codec<Customer> for PlainCodec {
    fn decode_command(&self, bytes: &[u8]) -> Result<DecodedCommand<SupportCommand>, Undecodable> {
        match serde_json::from_slice::<PlainCommand>(bytes) {
            Ok(command) if command.payload.command_type() == command.command_type => Ok(DecodedCommand {
                command_type: command.command_type,
                correlation_id: command.correlation_id,
                causation_id: None,
                incoming: IncomingCommand {
                    command_id: command.command_id,
                    tenant: command.tenant,
                    stream: command.stream,
                    expected_version: command.expected_version,
                    actor: command.actor,
                    on_behalf_of: command.on_behalf_of,
                    credential: command.credential,
                    command: command.payload,
                },
            }),
            Ok(command) => Err(Undecodable {
                command_id: Some(command.command_id),
                tenant: Some(command.tenant),
                stream: Some(command.stream),
                error: "command_type does not match the payload".into(),
            }),
            Err(error) => {
                // Whatever can still be read, so the sender gets an answer.
                let value: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
                let field = |name: &str| {
                    value
                        .as_ref()
                        .and_then(|v| v.get(name))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                Err(Undecodable {
                    command_id: field("command_id").and_then(|id| id.parse().ok()),
                    tenant: field("tenant"),
                    stream: field("stream"),
                    error: format!("not a command: {error}"),
                })
            }
        }
    }

    async fn seal_events(
        &self,
        context: &AppendContext<'_>,
        head: &ChainHead,
        events: &[SupportEvent],
    ) -> Result<Vec<SealedEvent>, CodecError> {
        let mut prev_hash = hex::encode(&head.hash);
        let mut sealed = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let mut plain = PlainEvent {
                event_id: Uuid::new_v4(),
                tenant: context.tenant.to_owned(),
                stream: context.stream.to_owned(),
                version: head.version + index as u64 + 1,
                event_type: event.event_type().to_owned(),
                command_id: context.command_id,
                correlation_id: context.correlation_id,
                recorded_at_micros: context.recorded_at_micros,
                actor: context.principal.actor.clone(),
                on_behalf_of: context.principal.on_behalf_of.clone(),
                authorization: context.authorization.clone(),
                compensates: event.compensates(),
                payload: event.clone(),
                prev_hash: prev_hash.clone(),
                hash: String::new(),
            };
            plain.hash = plain.expected_hash();
            prev_hash = plain.hash.clone();
            let hash = hex::decode(&plain.hash).map_err(|error| CodecError(error.to_string()))?;
            let bytes = serde_json::to_vec(&plain).map_err(|error| CodecError(error.to_string()))?;
            sealed.push(SealedEvent {
                event_id: plain.event_id,
                version: plain.version,
                hash,
                bytes,
            });
        }
        Ok(sealed)
    }

    async fn open_event(&self, bytes: &[u8]) -> Result<ReplayedEvent<SupportEvent>, CodecError> {
        let plain: PlainEvent = serde_json::from_slice(bytes).map_err(|error| CodecError(error.to_string()))?;
        Ok(ReplayedEvent {
            hash: hex::decode(&plain.hash).map_err(|error| CodecError(error.to_string()))?,
            tenant: plain.tenant,
            stream: plain.stream,
            version: plain.version,
            event_id: plain.event_id,
            event: plain.payload,
        })
    }

    fn encode_result(&self, result: &CommandResult) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(result).map_err(|error| CodecError(error.to_string()))
    }

    fn decode_result(&self, bytes: &[u8]) -> Result<CommandResult, CodecError> {
        serde_json::from_slice(bytes).map_err(|error| CodecError(error.to_string()))
    }
}

impl keel_trails::EnvelopeReader for PlainCodec {
    fn read(&self, bytes: &[u8]) -> Result<keel_trails::EventMeta, String> {
        let event: PlainEvent = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        Ok(keel_trails::EventMeta {
            event_id: event.event_id,
            tenant: event.tenant,
            stream: event.stream,
            version: event.version,
            event_type: event.event_type,
            recorded_at_micros: event.recorded_at_micros,
            command_id: event.command_id,
            correlation_id: event.correlation_id,
            actor: event.actor,
            on_behalf_of: event.on_behalf_of,
            authorization: event.authorization,
            compensates: event.compensates,
            hash: event.hash,
            prev_hash: event.prev_hash,
        })
    }
}
