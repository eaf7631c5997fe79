//! Avro single-object encoding and the registry of pinned writer schemas.
//!
//! A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the
//! writer schema's Parsing Canonical Form, then the Avro binary body. The registry knows
//! every writer schema ever pinned, so a message written under an old version resolves to
//! the current reader schema.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Datum, EnvelopeError};

/// The two marker bytes that open every single-object message.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// CRC-64-AVRO fingerprint of a schema's Parsing Canonical Form, as an integer.
pub fn fingerprint(schema: &Schema) -> u64 {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

/// Splits a single-object message into its writer fingerprint and Avro body.
pub fn split_header(message: &[u8]) -> Result<(u64, &[u8]), EnvelopeError> {
    if message.len() < HEADER_LEN {
        return Err(EnvelopeError::NotSingleObject("shorter than the 10-byte header"));
    }
    if message[..2] != MAGIC {
        return Err(EnvelopeError::NotSingleObject("missing the c3 01 marker"));
    }
    let mut le = [0u8; 8];
    le.copy_from_slice(&message[2..HEADER_LEN]);
    Ok((u64::from_le_bytes(le), &message[HEADER_LEN..]))
}

/// A schema the registry knows, with its identity.
#[derive(Debug, Clone)]
pub struct PinnedSchema {
    /// The parsed schema, resolved once for every message written or read under it.
    pub datum: Datum,
    /// Its CRC-64-AVRO fingerprint.
    pub fingerprint: u64,
    /// Full name, e.g. `dev.keel.EventEnvelope`.
    pub name: String,
    /// Its `keel.schema_version` (1 when absent).
    pub version: i32,
}

impl PinnedSchema {
    /// Parses an `.avsc` document and computes its identity.
    pub fn parse(avsc: &str) -> Result<Self, EnvelopeError> {
        let invalid = |reason: String| EnvelopeError::InvalidSchema {
            name: avsc.chars().take(60).collect(),
            reason,
        };
        let json: serde_json::Value = serde_json::from_str(avsc).map_err(|e| invalid(e.to_string()))?;
        let schema = Schema::parse(&json).map_err(|e| invalid(e.to_string()))?;
        let name = match &schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => return Err(invalid("top-level schema must be a record".into())),
        };
        let version = json
            .get("keel.schema_version")
            .and_then(serde_json::Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(1);
        Ok(Self {
            fingerprint: fingerprint(&schema),
            datum: Datum::new(schema).map_err(|e| invalid(e.to_string()))?,
            name,
            version,
        })
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        self.datum.schema()
    }
}

/// Every pinned writer schema by fingerprint, and the current reader schema by name.
#[derive(Debug, Clone, Default)]
pub struct SchemaRegistry {
    writers: HashMap<u64, PinnedSchema>,
    current: HashMap<String, u64>,
}

impl SchemaRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with Keel's envelope schemas from `schemas/envelope/`.
    pub fn with_envelopes() -> Result<Self, EnvelopeError> {
        let mut registry = Self::new();
        for avsc in crate::ENVELOPE_SCHEMAS {
            registry.register(avsc)?;
        }
        Ok(registry)
    }

    /// Registers a writer schema; the highest version of a name becomes its reader schema.
    pub fn register(&mut self, avsc: &str) -> Result<&PinnedSchema, EnvelopeError> {
        let pinned = PinnedSchema::parse(avsc)?;
        let fp = pinned.fingerprint;
        let newer = match self.current.get(&pinned.name).and_then(|f| self.writers.get(f)) {
            Some(existing) => pinned.version >= existing.version,
            None => true,
        };
        if newer {
            self.current.insert(pinned.name.clone(), fp);
        }
        Ok(self.writers.entry(fp).or_insert(pinned))
    }

    /// The writer schema pinned under a fingerprint.
    pub fn writer(&self, fingerprint: u64) -> Option<&PinnedSchema> {
        self.writers.get(&fingerprint)
    }

    /// The current (reader) schema of a full name.
    pub fn current(&self, name: &str) -> Result<&PinnedSchema, EnvelopeError> {
        self.current
            .get(name)
            .and_then(|fp| self.writers.get(fp))
            .ok_or_else(|| EnvelopeError::UnknownSchema(name.to_owned()))
    }

    /// Every pinned schema, e.g. to compare against `schemas/fingerprints.json`.
    pub fn pinned(&self) -> impl Iterator<Item = &PinnedSchema> {
        self.writers.values()
    }

    /// Encodes a value as a single-object message under the current schema of `name`.
    pub fn encode<T: Serialize>(&self, name: &str, value: &T) -> Result<Vec<u8>, EnvelopeError> {
        let pinned = self.current(name)?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&pinned.fingerprint.to_le_bytes());
        write_body(pinned, value, &mut out)?;
        Ok(out)
    }

    /// Decodes a single-object message into the current schema of `name`, resolving from
    /// whichever pinned writer schema the message names.
    pub fn decode<T: DeserializeOwned>(&self, name: &str, message: &[u8]) -> Result<T, EnvelopeError> {
        let (fp, body) = split_header(message)?;
        let writer = self.writer(fp).ok_or(EnvelopeError::UnknownFingerprint(fp))?;
        let reader = self.current(name)?;
        decode_body(writer, reader, body)
    }
}

/// Avro binary of a value under a schema (no header): what a sealed payload encrypts.
pub fn encode_body<T: Serialize>(schema: &PinnedSchema, value: &T) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(256);
    write_body(schema, value, &mut out)?;
    Ok(out)
}

fn write_body<T: Serialize>(schema: &PinnedSchema, value: &T, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
    let err = |reason: String| EnvelopeError::Encode {
        schema: schema.name.clone(),
        reason,
    };
    let value = apache_avro::to_value(value).map_err(|e| err(e.to_string()))?;
    let value = schema.datum.resolve(value).map_err(|e| err(e.to_string()))?;
    schema.datum.write(&value, out).map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Decodes an Avro body written under `writer` and resolves it to `reader`.
pub fn decode_body<T: DeserializeOwned>(
    writer: &PinnedSchema,
    reader: &PinnedSchema,
    body: &[u8],
) -> Result<T, EnvelopeError> {
    let value = decode_value(writer, reader, body)?;
    apache_avro::from_value(&value).map_err(|e| EnvelopeError::Malformed {
        schema: reader.name.clone(),
        reason: e.to_string(),
    })
}

/// Decodes an Avro body to a generic value (logical types flattened to their base types),
/// resolved to `reader` unless it was written under that very schema; trailing bytes are an
/// error.
pub fn decode_value(writer: &PinnedSchema, reader: &PinnedSchema, body: &[u8]) -> Result<Value, EnvelopeError> {
    let err = |reason: String| EnvelopeError::Malformed {
        schema: reader.name.clone(),
        reason,
    };
    let mut cursor = body;
    let value = writer.datum.read(&mut cursor).map_err(|e| err(e.to_string()))?;
    if !cursor.is_empty() {
        return Err(err(format!("{} trailing bytes", cursor.len())));
    }
    let value = if writer.fingerprint == reader.fingerprint {
        value
    } else {
        reader.datum.resolve(value).map_err(|e| err(e.to_string()))?
    };
    Ok(flatten_logical(value))
}

/// Replaces logical-type values by their base values so serde maps them to plain fields.
pub fn flatten_logical(mut value: Value) -> Value {
    flatten_in_place(&mut value);
    value
}

fn flatten_in_place(value: &mut Value) {
    match value {
        Value::Uuid(u) => *value = Value::String(u.to_string()),
        Value::TimestampMicros(t) | Value::TimestampMillis(t) | Value::LocalTimestampMicros(t) => {
            *value = Value::Long(*t);
        }
        Value::Record(fields) => fields.iter_mut().for_each(|(_, v)| flatten_in_place(v)),
        Value::Union(_, inner) => flatten_in_place(inner),
        Value::Array(items) => items.iter_mut().for_each(flatten_in_place),
        Value::Map(m) => m.values_mut().for_each(flatten_in_place),
        _ => {}
    }
}
