//! Sealing and opening event payloads.
//!
//! Layout of a [`SealedPayload`]: each personal field's value is Avro-encoded under its own
//! field schema and sealed with its subject's current data key into `sealed_fields`
//! (path, subject id, key id, nonce, ciphertext); in the payload it is replaced by a neutral
//! value (empty string, zero, first union branch...). The remaining payload is Avro-encoded
//! under the payload schema and sealed with the tenant's current data key. Associated data
//! binds tenant, stream, event id, field path (or schema name for the payload) and key id.
//!
//! Keys are zeroized when dropped; payload bytes are not. The caller's value holds the same
//! plaintext before sealing and after opening (Avro values do not zeroize), so wiping one
//! transient copy would protect nothing and cost a byte-wise pass over every payload.

use std::collections::BTreeSet;

use apache_avro::types::Value;
use keel_envelope::{Datum, KeyRef, KeyScope, SealedField, SealedPayload};

use crate::aead::{DataKey, TAG_LEN, associated_data};
use crate::schema::{PayloadSchema, get, get_mut, neutral};
use crate::{CryptoError, KeyId, KeyOwner, KeyRing, KeyVault, Kms};

/// Where a payload belongs; every part is bound into the associated data.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// Stream id.
    pub stream: &'a str,
    /// Event id.
    pub event_id: &'a str,
}

/// A sealed payload and the keys that sealed it, ready for the event envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    /// The envelope's `payload`.
    pub payload: SealedPayload,
    /// The envelope's `key_refs`: the tenant key, then one per subject key used.
    pub key_refs: Vec<KeyRef>,
    /// The data subjects whose fields were sealed, for the envelope's `data_subjects`.
    pub data_subjects: Vec<String>,
}

/// Whether a personal field could be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldState {
    /// Opened; its value is in the payload.
    Open,
    /// Its subject's key was destroyed; the payload holds the neutral value. Render as erased.
    Erased,
    /// Not opened: the caller asked for the payload only ([`KeyRing::open_payload`]); the
    /// payload holds the neutral value and the field's ciphertext is still in the envelope.
    Sealed,
}

/// One personal field after opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedField {
    /// Dotted path in the payload.
    pub path: String,
    /// Whose data it is.
    pub subject_id: String,
    /// Opened or erased.
    pub state: FieldState,
}

/// An opened payload: the value under the writer schema and the state of each personal field.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The payload; resolve it to the current schema and upcast as keel-envelope does.
    pub value: Value,
    /// Every personal field, open or erased.
    pub fields: Vec<OpenedField>,
}

impl Opened {
    /// Whether the field at `path` was erased.
    pub fn is_erased(&self, path: &str) -> bool {
        self.fields
            .iter()
            .any(|f| f.path == path && f.state == FieldState::Erased)
    }
}

fn payload_aad(ctx: &SealContext<'_>, schema_name: &str, key_id: &str) -> Vec<u8> {
    associated_data(
        "keel/payload/v1",
        &[ctx.tenant, ctx.stream, ctx.event_id, schema_name, key_id],
    )
}

fn field_aad(ctx: &SealContext<'_>, path: &str, subject: &str, key_id: &str) -> Vec<u8> {
    associated_data(
        "keel/field/v1",
        &[ctx.tenant, ctx.stream, ctx.event_id, path, subject, key_id],
    )
}

/// The subject id a personal field is sealed to, checked against the id grammar: it names
/// a key, a row of the vault and, later, an erasure.
fn subject_of(value: &Value, names: &[String], path: &str) -> Result<String, CryptoError> {
    let subject = match get(value, names) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Uuid(u)) => u.to_string(),
        Some(Value::Union(_, inner)) => match inner.as_ref() {
            Value::String(s) if !s.is_empty() => s.clone(),
            _ => return Err(CryptoError::Payload(format!("no subject id for personal field {path}"))),
        },
        _ => return Err(CryptoError::Payload(format!("no subject id for personal field {path}"))),
    };
    keel_ids::check("subject id", &subject).map_err(|error| CryptoError::InvalidSubject(format!("{path}: {error}")))?;
    Ok(subject)
}

impl<K: Kms, V: KeyVault> KeyRing<K, V> {
    /// Seals a payload value (a record of `schema`) for one event.
    pub async fn seal(
        &self,
        schema: &PayloadSchema,
        ctx: SealContext<'_>,
        value: Value,
    ) -> Result<Sealed, CryptoError> {
        // A record already in the schema's shape is taken as it is; resolving copies it.
        let mut value = if matches!(value, Value::Record(_)) && schema.datum.fits(&value) {
            value
        } else {
            schema
                .datum
                .resolve(value)
                .map_err(|e| CryptoError::Payload(format!("value does not fit {}: {e}", schema.name)))?
        };
        let mut sealed_fields = Vec::with_capacity(schema.personal.len());
        let mut key_refs = Vec::new();
        let mut subjects = BTreeSet::new();
        for field in &schema.personal {
            let subject = subject_of(&value, &field.subject_names, &field.path)?;
            if !field.foreign && subject != ctx.stream {
                return Err(CryptoError::SubjectNotBound(format!(
                    "{} would be sealed to subject {subject}, not to the stream's own {}; a schema \
                     declares another subject with keel.foreign_subject",
                    field.path, ctx.stream
                )));
            }
            let slot = get_mut(&mut value, &field.names)
                .ok_or_else(|| CryptoError::Payload(format!("missing personal field {}", field.path)))?;
            let plain = std::mem::replace(slot, neutral(field.datum.schema())?);
            let bytes = encode(&field.datum, &plain, &field.path)?;
            let (id, key) = self.seal_key(ctx.tenant, &KeyOwner::Subject(subject.clone())).await?;
            let key_id = id.short();
            let (nonce, ciphertext) = key.seal(&field_aad(&ctx, &field.path, &subject, &key_id), bytes)?;
            if !key_refs
                .iter()
                .any(|r: &KeyRef| r.key_id == key_id && r.subject_id.as_deref() == Some(subject.as_str()))
            {
                key_refs.push(key_ref(&id, key_id.clone()));
            }
            subjects.insert(subject.clone());
            sealed_fields.push(SealedField {
                path: field.path.clone(),
                subject_id: subject,
                key_id,
                nonce: nonce.to_vec(),
                ciphertext,
            });
        }
        let body = encode(&schema.datum, &value, &schema.name)?;
        let (id, key) = self.seal_key(ctx.tenant, &KeyOwner::Tenant).await?;
        let key_id = id.short();
        let (nonce, ciphertext) = key.seal(&payload_aad(&ctx, &schema.name, &key_id), body)?;
        key_refs.insert(0, key_ref(&id, key_id.clone()));
        Ok(Sealed {
            payload: SealedPayload {
                schema_name: schema.name.clone(),
                key_id,
                nonce: nonce.to_vec(),
                ciphertext,
                sealed_fields,
            },
            key_refs,
            data_subjects: subjects.into_iter().collect(),
        })
    }

    /// Opens a sealed payload with its writer schema. A field whose subject key was destroyed
    /// comes back [`FieldState::Erased`]; any tampering is [`CryptoError::Open`]; a destroyed
    /// tenant is [`CryptoError::TenantDestroyed`].
    pub async fn open(
        &self,
        schema: &PayloadSchema,
        ctx: SealContext<'_>,
        sealed: &SealedPayload,
    ) -> Result<Opened, CryptoError> {
        self.open_with(schema, ctx, sealed, true).await
    }

    /// Opens a sealed payload's tenant layer only: every personal field stays sealed
    /// ([`FieldState::Sealed`], the neutral value in the payload) and no subject key is
    /// looked up. For readers that copy personal fields sealed (projectors): they never hold
    /// a subject key, and an event costs one key lookup whatever its subjects.
    pub async fn open_payload(
        &self,
        schema: &PayloadSchema,
        ctx: SealContext<'_>,
        sealed: &SealedPayload,
    ) -> Result<Opened, CryptoError> {
        self.open_with(schema, ctx, sealed, false).await
    }

    async fn open_with(
        &self,
        schema: &PayloadSchema,
        ctx: SealContext<'_>,
        sealed: &SealedPayload,
        personal_fields: bool,
    ) -> Result<Opened, CryptoError> {
        if sealed.schema_name != schema.name {
            return Err(CryptoError::Malformed(format!(
                "payload of {} opened with {}",
                sealed.schema_name, schema.name
            )));
        }
        let tenant_key = KeyId::parse(ctx.tenant, None, &sealed.key_id)?;
        let key = self
            .open_key(&tenant_key)
            .await?
            .ok_or_else(|| CryptoError::TenantDestroyed(ctx.tenant.to_owned()))?;
        let body = key.open(
            &payload_aad(&ctx, &schema.name, &sealed.key_id),
            &sealed.nonce,
            &sealed.ciphertext,
            "payload",
        )?;
        let mut value = decode(&schema.datum, &body, &schema.name)?;
        let mut fields = Vec::with_capacity(sealed.sealed_fields.len());
        for field in &sealed.sealed_fields {
            let personal = schema.personal_field(&field.path).ok_or_else(|| {
                CryptoError::Malformed(format!("{} is not a personal field of {}", field.path, schema.name))
            })?;
            let id = KeyId::parse(ctx.tenant, Some(&field.subject_id), &field.key_id)?;
            if !personal_fields {
                fields.push(OpenedField {
                    path: field.path.clone(),
                    subject_id: field.subject_id.clone(),
                    state: FieldState::Sealed,
                });
                continue;
            }
            let state = match self.open_key(&id).await? {
                None => FieldState::Erased,
                Some(key) => {
                    let plain = open_field(&key, &ctx, field)?;
                    let field_value = decode(&personal.datum, &plain, &field.path)?;
                    let slot = get_mut(&mut value, &personal.names)
                        .ok_or_else(|| CryptoError::Malformed(format!("missing field {}", field.path)))?;
                    *slot = field_value;
                    FieldState::Open
                }
            };
            fields.push(OpenedField {
                path: field.path.clone(),
                subject_id: field.subject_id.clone(),
                state,
            });
        }
        Ok(Opened { value, fields })
    }
}

impl<K: Kms, V: KeyVault> KeyRing<K, V> {
    /// Opens one personal field on its own, e.g. a ciphertext a projection copied from an
    /// event: `Ok(None)` when its subject key was destroyed (render it as erased). The
    /// context must be the event's (tenant, stream, event id): the field's associated data
    /// binds them.
    pub async fn open_sealed_field(
        &self,
        schema: &PayloadSchema,
        ctx: SealContext<'_>,
        field: &SealedField,
    ) -> Result<Option<Value>, CryptoError> {
        let personal = schema.personal_field(&field.path).ok_or_else(|| {
            CryptoError::Malformed(format!("{} is not a personal field of {}", field.path, schema.name))
        })?;
        let id = KeyId::parse(ctx.tenant, Some(&field.subject_id), &field.key_id)?;
        match self.open_key(&id).await? {
            None => Ok(None),
            Some(key) => {
                let plain = open_field(&key, &ctx, field)?;
                decode(&personal.datum, &plain, &field.path).map(Some)
            }
        }
    }
}

fn open_field(key: &DataKey, ctx: &SealContext<'_>, field: &SealedField) -> Result<Vec<u8>, CryptoError> {
    let aad = field_aad(ctx, &field.path, &field.subject_id, &field.key_id);
    key.open(&aad, &field.nonce, &field.ciphertext, &field.path)
}

/// The Avro binary of a value that fits `datum`, with room left for the AES-GCM tag so
/// sealing it in place does not copy it again.
fn encode(datum: &Datum, value: &Value, what: &str) -> Result<Vec<u8>, CryptoError> {
    datum
        .to_vec(value, TAG_LEN)
        .map_err(|e| CryptoError::Payload(format!("{what}: {e}")))
}

fn decode(datum: &Datum, bytes: &[u8], what: &str) -> Result<Value, CryptoError> {
    let mut cursor = bytes;
    let value = datum
        .read(&mut cursor)
        .map_err(|e| CryptoError::Malformed(format!("{what}: {e}")))?;
    if !cursor.is_empty() {
        return Err(CryptoError::Malformed(format!("{what}: trailing bytes")));
    }
    Ok(value)
}

/// The envelope's reference to key `id`, whose short id is `key_id`.
fn key_ref(id: &KeyId, key_id: String) -> KeyRef {
    let (scope, subject_id) = match &id.owner {
        KeyOwner::Tenant => (KeyScope::Tenant, None),
        KeyOwner::Subject(s) => (KeyScope::Subject, Some(s.clone())),
    };
    KeyRef {
        key_id,
        scope,
        subject_id,
        version: i32::try_from(id.version).unwrap_or(i32::MAX),
    }
}
