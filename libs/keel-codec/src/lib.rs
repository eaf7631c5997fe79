//! Keel's messages on the wire, whole: the Avro envelopes of keel-envelope around a domain's
//! own payload records, sealed with keel-crypto and chained with keel-chain.
//!
//! [`Wire`] knows the schemas and needs no keys: it encodes and decodes commands (what a
//! producer, the CLI or a test does) and reads event envelopes (what the trails, chain
//! verification and any auditor need: nothing there is secret but the payload). It is built
//! from a domain's Rust types ([`Wire::new`]) or from schema documents alone
//! ([`Wire::from_schemas`]), and then encodes commands given as JSON too
//! ([`Wire::encode_command_json`], through [`json`]).
//! [`EventCodec`] adds a [`KeyRing`] and a chain hasher: it seals and links events (the
//! command handler) and opens them (replays, projections, the query API).
//!
//! Domain types map to payload records by name: the variant `RefundIssued` of the domain's
//! event enum is the record `{EVENT_NAMESPACE}.RefundIssued` (see
//! [`keel_domain::WireSchemas`]); its fields are the record's fields.

mod actor;
pub mod bounds;
mod error;
pub mod json;
mod payload;

use std::collections::HashMap;
use std::sync::Arc;

use keel_chain::{ChainHasher, GENESIS, HASH_LEN};
use keel_crypto::{FieldState, KeyRing, KeyVault, Kms, PayloadSchema, SealContext};
use keel_domain::WireSchemas;
use keel_envelope::{
    COMMAND_ENVELOPE, CommandEnvelope, CommandPayload, EVENT_ENVELOPE, EventEnvelope, PinnedSchema, SchemaRegistry,
    Upcasters,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use actor::{from_wire_actor, to_wire_actor};
pub use error::{FieldError, WireError};

/// One payload schema version: its Avro identity and its personal fields.
#[derive(Debug, Clone)]
struct Payload {
    pinned: PinnedSchema,
    sealing: PayloadSchema,
}

/// The schemas of the envelopes and of one domain's payloads; encodes and decodes without keys.
#[derive(Debug, Clone)]
pub struct Wire {
    envelopes: SchemaRegistry,
    payloads: HashMap<(String, i32), Payload>,
    current: HashMap<String, i32>,
    command_namespace: String,
    event_namespace: String,
}

/// Who sends a command and about what: the envelope around a domain command.
#[derive(Debug, Clone)]
pub struct CommandHeader {
    /// The idempotency key.
    pub command_id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// The stream (aggregate id).
    pub stream: String,
    /// The version the sender saw, for optimistic concurrency.
    pub expected_version: Option<u64>,
    /// Microseconds since the Unix epoch.
    pub issued_at_micros: i64,
    /// The actor as the envelope carries it (its delegation included).
    pub actor: keel_envelope::Actor,
    /// The actor's signed credential.
    pub credential: String,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// What caused the command, if anything did.
    pub causation_id: Option<Uuid>,
}

/// A command that did not decode, with what could still be read of it.
#[derive(Debug)]
pub struct CommandDecodeError {
    /// The envelope, when it decoded and only the payload did not.
    pub envelope: Option<Box<CommandEnvelope>>,
    /// What was wrong.
    pub error: WireError,
}

impl Wire {
    /// The envelopes and the payload schemas of domain `D`.
    pub fn new<D: WireSchemas>() -> Result<Self, WireError> {
        Self::from_schemas(D::SCHEMAS, D::COMMAND_NAMESPACE, D::EVENT_NAMESPACE)
    }

    /// The envelopes and the payload schemas of a domain known only by its schema documents
    /// (`.avsc`, every version), e.g. read from `schemas/<domain>/` at run time: what
    /// [`Self::new`] does with a [`WireSchemas`] domain's constants.
    pub fn from_schemas<S: AsRef<str>>(
        schemas: impl IntoIterator<Item = S>,
        command_namespace: &str,
        event_namespace: &str,
    ) -> Result<Self, WireError> {
        let mut payloads = HashMap::new();
        let mut current: HashMap<String, i32> = HashMap::new();
        for avsc in schemas {
            let pinned = PinnedSchema::parse(avsc.as_ref())?;
            let sealing = PayloadSchema::new(pinned.datum.clone())?;
            let newest = current.entry(pinned.name.clone()).or_insert(pinned.version);
            *newest = (*newest).max(pinned.version);
            payloads.insert((pinned.name.clone(), pinned.version), Payload { pinned, sealing });
        }
        Ok(Self {
            envelopes: SchemaRegistry::with_envelopes()?,
            payloads,
            current,
            command_namespace: command_namespace.to_owned(),
            event_namespace: event_namespace.to_owned(),
        })
    }

    fn payload(&self, name: &str, version: i32) -> Result<&Payload, WireError> {
        self.payloads
            .get(&(name.to_owned(), version))
            .ok_or_else(|| WireError::UnknownPayload(format!("{name} version {version}")))
    }

    fn current_payload(&self, name: &str) -> Result<&Payload, WireError> {
        let version = self
            .current
            .get(name)
            .ok_or_else(|| WireError::UnknownPayload(name.to_owned()))?;
        self.payload(name, *version)
    }

    /// Encodes a command: the envelope, single-object encoded, around the Avro binary of
    /// `command` under its current payload schema.
    pub fn encode_command<C: Serialize>(&self, header: CommandHeader, command: &C) -> Result<Vec<u8>, WireError> {
        let (command_type, fields) = payload::split_tagged(command)?;
        let schema = self.command_schema(&command_type)?;
        let data = payload::encode(&schema.pinned.datum, fields)?;
        self.wrap_command(header, command_type, &schema.pinned, data)
    }

    /// Encodes a command of type `command_type` whose payload's fields are given as JSON
    /// (see [`json`]), under its current payload schema: the same message
    /// [`Self::encode_command`] makes of the domain's command with those fields. A field
    /// that does not fit is a [`WireError::Field`] naming it.
    pub fn encode_command_json(
        &self,
        header: CommandHeader,
        command_type: &str,
        fields: &serde_json::Value,
    ) -> Result<Vec<u8>, WireError> {
        let schema = self.command_schema(command_type)?;
        let value = json::to_avro(schema.pinned.schema(), fields)?;
        let data = payload::encode_value(&schema.pinned.datum, value)?;
        self.wrap_command(header, command_type.to_owned(), &schema.pinned, data)
    }

    fn command_schema(&self, command_type: &str) -> Result<&Payload, WireError> {
        self.current_payload(&format!("{}.{command_type}", self.command_namespace))
    }

    /// The single-object command envelope around `data`, the Avro binary of a payload
    /// under `schema`.
    fn wrap_command(
        &self,
        header: CommandHeader,
        command_type: String,
        schema: &PinnedSchema,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, WireError> {
        let envelope = CommandEnvelope {
            command_id: header.command_id.to_string(),
            tenant_id: header.tenant,
            stream_id: header.stream,
            command_type,
            expected_version: header.expected_version.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            issued_at: header.issued_at_micros,
            actor: header.actor,
            credential: header.credential,
            correlation_id: header.correlation_id.to_string(),
            causation_id: header.causation_id.map(|id| id.to_string()),
            payload: CommandPayload {
                schema_name: schema.name.clone(),
                schema_version: schema.version,
                data,
            },
        };
        Ok(self.envelopes.encode(COMMAND_ENVELOPE, &envelope)?)
    }

    /// Decodes a command envelope and its payload into the domain's command type.
    pub fn decode_command<C: DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<(CommandEnvelope, C), CommandDecodeError> {
        let envelope: CommandEnvelope =
            self.envelopes
                .decode(COMMAND_ENVELOPE, bytes)
                .map_err(|error| CommandDecodeError {
                    envelope: None,
                    error: error.into(),
                })?;
        // Bounds first: nothing reads an id (not even to name it in an error) before it
        // is known to be one.
        match bounds::check_envelope(&envelope).and_then(|()| self.command_payload(&envelope)) {
            Ok(command) => Ok((envelope, command)),
            Err(error) => Err(CommandDecodeError {
                envelope: Some(Box::new(envelope)),
                error,
            }),
        }
    }

    fn command_payload<C: DeserializeOwned>(&self, envelope: &CommandEnvelope) -> Result<C, WireError> {
        let payload = &envelope.payload;
        let namespace = self.command_namespace.as_str();
        let expected = format!("{namespace}.{}", envelope.command_type);
        if !payload
            .schema_name
            .strip_prefix(namespace)
            .is_some_and(|name| name.starts_with('.'))
        {
            return Err(WireError::UnknownCommand(format!(
                "payload schema {} is not a command of this domain, which takes {namespace}.*",
                payload.schema_name
            )));
        }
        if payload.schema_name != expected {
            return Err(WireError::Payload(format!(
                "command_type {} does not match payload schema {}",
                envelope.command_type, payload.schema_name
            )));
        }
        let writer = self
            .payload(&payload.schema_name, payload.schema_version)
            .map_err(|error| match error {
                WireError::UnknownPayload(schema) => {
                    WireError::UnknownCommand(format!("this domain knows no command {schema}"))
                }
                other => other,
            })?;
        let reader = self.current_payload(&payload.schema_name)?;
        let value = keel_envelope::codec::decode_value(&writer.pinned, &reader.pinned, &payload.data)?;
        payload::join_tagged(&envelope.command_type, value)
    }

    /// Encodes an event envelope as a single-object message.
    pub fn encode_event(&self, envelope: &EventEnvelope) -> Result<Vec<u8>, WireError> {
        Ok(self.envelopes.encode(EVENT_ENVELOPE, envelope)?)
    }

    /// Reads an event envelope; the payload stays sealed. Needs no keys.
    pub fn read_event(&self, bytes: &[u8]) -> Result<EventEnvelope, WireError> {
        Ok(self.envelopes.decode(EVENT_ENVELOPE, bytes)?)
    }

    /// The personal fields of the event payload schema `name` at `version`: dotted paths.
    pub fn personal_fields(&self, name: &str, version: i32) -> Result<Vec<String>, WireError> {
        Ok(self
            .payload(name, version)?
            .sealing
            .personal
            .iter()
            .map(|field| field.path.clone())
            .collect())
    }

    /// The full name of the event payload schema of `event_type`.
    pub fn event_schema_name(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.event_namespace)
    }
}

/// Where an event goes and who caused it: everything of the envelope but the payload and
/// the chain.
#[derive(Debug, Clone)]
pub struct EventHeader<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The stream.
    pub stream: &'a str,
    /// The event's version in its stream.
    pub version: u64,
    /// When recorded, microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// The command that caused it.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// Who did it, authorised.
    pub actor: keel_envelope::Actor,
    /// The earlier event it compensates, if any.
    pub compensates: Option<Uuid>,
}

/// An event opened: its envelope, the domain event, and which personal fields were erased.
#[derive(Debug, Clone)]
pub struct OpenedEvent<E> {
    /// The envelope as it is in the log (payload still sealed).
    pub envelope: EventEnvelope,
    /// The domain event, in the current schema version. Erased personal fields hold the
    /// schema's neutral value (an empty string): render them from [`Self::erased`].
    pub event: E,
    /// Dotted paths of the personal fields whose subject key is destroyed.
    pub erased: Vec<String>,
}

/// Seals, links and opens events of one domain with a key ring.
pub struct EventCodec<K, V> {
    wire: Wire,
    keys: Arc<KeyRing<K, V>>,
    hasher: ChainHasher,
    upcasters: Upcasters,
}

impl<K, V> std::fmt::Debug for EventCodec<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCodec")
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

impl<K: Kms, V: KeyVault> EventCodec<K, V> {
    /// A codec for domain `D` over `keys`, with `upcasters` for old payload versions.
    pub fn new<D: WireSchemas>(keys: Arc<KeyRing<K, V>>, upcasters: Upcasters) -> Result<Self, WireError> {
        Ok(Self {
            wire: Wire::new::<D>()?,
            keys,
            hasher: ChainHasher::new()?,
            upcasters,
        })
    }

    /// The keyless half.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// The key ring.
    pub fn keys(&self) -> &Arc<KeyRing<K, V>> {
        &self.keys
    }

    /// The chain hasher.
    pub fn hasher(&self) -> &ChainHasher {
        &self.hasher
    }

    /// Seals `event` and links it after `prev_hash` (empty for a stream's first event).
    pub async fn seal_event<E: Serialize>(
        &self,
        header: &EventHeader<'_>,
        event: &E,
        prev_hash: &[u8],
    ) -> Result<EventEnvelope, WireError> {
        let (event_type, fields) = payload::split_tagged(event)?;
        let schema_name = self.wire.event_schema_name(&event_type);
        let schema = self.wire.current_payload(&schema_name)?;
        let value = payload::to_avro(fields)?;
        let event_id = Uuid::now_v7().to_string();
        let context = SealContext {
            tenant: header.tenant,
            stream: header.stream,
            event_id: &event_id,
        };
        let sealed = self.keys.seal(&schema.sealing, context, value).await?;
        let mut envelope = EventEnvelope {
            event_id,
            tenant_id: header.tenant.to_owned(),
            stream_id: header.stream.to_owned(),
            stream_version: i64::try_from(header.version).map_err(|_| WireError::Payload("version overflow".into()))?,
            event_type,
            schema_version: schema.pinned.version,
            recorded_at: header.recorded_at_micros,
            command_id: header.command_id.to_string(),
            correlation_id: header.correlation_id.to_string(),
            actor: header.actor.clone(),
            data_subjects: sealed.data_subjects,
            key_refs: sealed.key_refs,
            payload: sealed.payload,
            compensates: header.compensates.map(|id| id.to_string()),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        };
        let prev: [u8; HASH_LEN] = if prev_hash.is_empty() {
            GENESIS
        } else {
            prev_hash
                .try_into()
                .map_err(|_| WireError::Payload(format!("previous hash of {} bytes", prev_hash.len())))?
        };
        self.hasher.link(&mut envelope, &prev)?;
        Ok(envelope)
    }

    /// Opens an event's payload into the domain's event type, upcast to the current
    /// version. Fields of erased subjects come back neutral and are listed in `erased`.
    pub async fn open_event<E: DeserializeOwned>(&self, envelope: EventEnvelope) -> Result<OpenedEvent<E>, WireError> {
        self.open_event_with(envelope, true).await
    }

    /// Like [`Self::open_event`], with every personal field left sealed (neutral in the
    /// event, its ciphertext still in the envelope) and no subject key looked up: for
    /// readers that keep personal fields as the ciphertext the event carries.
    pub async fn open_event_payload<E: DeserializeOwned>(
        &self,
        envelope: EventEnvelope,
    ) -> Result<OpenedEvent<E>, WireError> {
        self.open_event_with(envelope, false).await
    }

    async fn open_event_with<E: DeserializeOwned>(
        &self,
        envelope: EventEnvelope,
        personal_fields: bool,
    ) -> Result<OpenedEvent<E>, WireError> {
        let name = envelope.payload.schema_name.clone();
        if name != self.wire.event_schema_name(&envelope.event_type) {
            return Err(WireError::Payload(format!(
                "event_type {} does not match payload schema {name}",
                envelope.event_type
            )));
        }
        let writer = self.wire.payload(&name, envelope.schema_version)?;
        let context = SealContext {
            tenant: &envelope.tenant_id,
            stream: &envelope.stream_id,
            event_id: &envelope.event_id,
        };
        let opened = if personal_fields {
            self.keys.open(&writer.sealing, context, &envelope.payload).await?
        } else {
            self.keys
                .open_payload(&writer.sealing, context, &envelope.payload)
                .await?
        };
        let reader = self.wire.current_payload(&name)?;
        let value = if writer.pinned.version == reader.pinned.version {
            opened.value
        } else {
            let resolved = reader
                .pinned
                .datum
                .resolve(opened.value)
                .map_err(|error| WireError::Payload(format!("{name}: {error}")))?;
            self.upcasters
                .upcast(&name, writer.pinned.version, reader.pinned.version, resolved)?
        };
        let event = payload::join_tagged(&envelope.event_type, keel_envelope::codec::flatten_logical(value))?;
        let erased = opened
            .fields
            .into_iter()
            .filter(|field| field.state == FieldState::Erased)
            .map(|field| field.path)
            .collect();
        Ok(OpenedEvent {
            envelope,
            event,
            erased,
        })
    }
}

/// Where a personal field was sealed: what its associated data binds.
#[derive(Debug, Clone, Copy)]
pub struct FieldOrigin<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The stream.
    pub stream: &'a str,
    /// The event that carried the field.
    pub event_id: &'a str,
    /// The event type, which names its payload schema.
    pub event_type: &'a str,
    /// The payload schema version the event was written with.
    pub schema_version: i32,
}

impl<K: Kms, V: KeyVault> EventCodec<K, V> {
    /// Opens one personal field copied out of an event (a projection keeps them sealed at
    /// rest) into JSON; `Ok(None)` when its subject key was destroyed: the field is erased.
    pub async fn open_field(
        &self,
        origin: FieldOrigin<'_>,
        field: &keel_envelope::SealedField,
    ) -> Result<Option<serde_json::Value>, WireError> {
        let name = self.wire.event_schema_name(origin.event_type);
        let writer = self.wire.payload(&name, origin.schema_version)?;
        let context = SealContext {
            tenant: origin.tenant,
            stream: origin.stream,
            event_id: origin.event_id,
        };
        let Some(value) = self.keys.open_sealed_field(&writer.sealing, context, field).await? else {
            return Ok(None);
        };
        let value = keel_envelope::codec::flatten_logical(value);
        let json = serde_json::Value::try_from(value)
            .map_err(|error| WireError::Payload(format!("field {}: {error}", field.path)))?;
        Ok(Some(json))
    }
}

#[cfg(test)]
mod tests;
