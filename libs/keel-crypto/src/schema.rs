//! Which payload fields are personal, read from the payload's Avro schema.
//!
//! A field is personal when it carries the property `"keel.subject": "<sibling>"`, naming
//! the field of the same record that holds the data subject's id. Personal fields may sit
//! in nested records (inline record types); not inside arrays, maps or unions.
//!
//! **Subjects are bound to their stream.** By default the subject a personal field is sealed
//! to must be the stream's own id (a customer's data on the customer's stream), so no event
//! can seal a stream's data under another subject's key, where erasing that other subject
//! would erase it and erasing the stream's would not. A subject id field that names someone
//! else (a referred friend, a payout's beneficiary, a badge's visitor) says so with
//! `"keel.foreign_subject": true`.

use apache_avro::Schema;
use apache_avro::types::Value;
use keel_envelope::Datum;

use crate::CryptoError;

/// The schema property that marks a personal field.
pub const SUBJECT_PROPERTY: &str = "keel.subject";

/// The schema property of a subject id field whose subject is not the stream's own.
pub const FOREIGN_SUBJECT_PROPERTY: &str = "keel.foreign_subject";

/// One personal field of a payload schema.
#[derive(Debug, Clone)]
pub struct PersonalField {
    /// Dotted path, e.g. `to.name`.
    pub path: String,
    /// Names from the root to the field.
    pub(crate) names: Vec<String>,
    /// Names from the root to the field holding the subject id.
    pub(crate) subject_names: Vec<String>,
    /// Whether the subject may be another than the stream's own (`keel.foreign_subject`).
    pub(crate) foreign: bool,
    /// The field's own schema, to encode its value alone.
    pub(crate) datum: Datum,
}

/// A payload schema with its personal fields found.
#[derive(Debug, Clone)]
pub struct PayloadSchema {
    /// Full name of the payload record.
    pub name: String,
    /// The Avro schema, resolved once.
    pub datum: Datum,
    /// Its personal fields, in schema order.
    pub personal: Vec<PersonalField>,
}

impl PayloadSchema {
    /// Reads the personal fields of a record schema; a `keel.subject` naming no sibling
    /// field is an error.
    pub fn new(datum: Datum) -> Result<Self, CryptoError> {
        let Schema::Record(record) = datum.schema() else {
            return Err(CryptoError::Payload("payload schema is not a record".into()));
        };
        let name = record.name.fullname(None);
        let mut personal = Vec::new();
        walk(datum.schema(), &mut Vec::new(), &mut personal)?;
        Ok(Self { name, datum, personal })
    }

    /// Parses an `.avsc` document.
    pub fn parse(avsc: &str) -> Result<Self, CryptoError> {
        let bad = |e: apache_avro::Error| CryptoError::Payload(format!("bad payload schema: {e}"));
        Self::new(Datum::new(Schema::parse_str(avsc).map_err(bad)?).map_err(bad)?)
    }

    /// The Avro schema.
    pub fn schema(&self) -> &Schema {
        self.datum.schema()
    }

    /// The personal field at a dotted path.
    pub fn personal_field(&self, path: &str) -> Option<&PersonalField> {
        self.personal.iter().find(|p| p.path == path)
    }
}

fn walk(schema: &Schema, prefix: &mut Vec<String>, out: &mut Vec<PersonalField>) -> Result<(), CryptoError> {
    let Schema::Record(record) = schema else { return Ok(()) };
    for field in &record.fields {
        prefix.push(field.name.clone());
        if let Some(subject) = field.custom_attributes.get(SUBJECT_PROPERTY) {
            let subject = subject
                .as_str()
                .filter(|s| record.lookup.contains_key(*s))
                .ok_or_else(|| CryptoError::Payload(format!("{} names no sibling subject field", prefix.join("."))))?;
            let foreign = record
                .lookup
                .get(subject)
                .and_then(|&index| record.fields[index].custom_attributes.get(FOREIGN_SUBJECT_PROPERTY))
                .is_some_and(|value| value == &serde_json::Value::Bool(true));
            let mut subject_names = prefix[..prefix.len() - 1].to_vec();
            subject_names.push(subject.to_owned());
            let path = prefix.join(".");
            // A field typed by a name defined elsewhere in the payload is not supported: the
            // field is encoded alone, under its own schema.
            let datum = Datum::new(field.schema.clone())
                .map_err(|e| CryptoError::Payload(format!("personal field {path}: {e}")))?;
            out.push(PersonalField {
                path,
                names: prefix.clone(),
                subject_names,
                foreign,
                datum,
            });
        } else {
            walk(&field.schema, prefix, out)?;
        }
        prefix.pop();
    }
    Ok(())
}

/// The value at a path of names inside a record value.
pub(crate) fn get<'v>(value: &'v Value, names: &[String]) -> Option<&'v Value> {
    names.iter().try_fold(value, |v, name| match v {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    })
}

/// The mutable value at a path of names inside a record value.
pub(crate) fn get_mut<'v>(value: &'v mut Value, names: &[String]) -> Option<&'v mut Value> {
    names.iter().try_fold(value, |v, name| match v {
        Value::Record(fields) => fields.iter_mut().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    })
}

/// The neutral value a sealed personal field leaves in the payload.
pub(crate) fn neutral(schema: &Schema) -> Result<Value, CryptoError> {
    Ok(match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(false),
        Schema::Int => Value::Int(0),
        Schema::Long => Value::Long(0),
        Schema::Float => Value::Float(0.0),
        Schema::Double => Value::Double(0.0),
        Schema::Bytes => Value::Bytes(Vec::new()),
        Schema::String => Value::String(String::new()),
        Schema::Uuid(_) => Value::Uuid(apache_avro::Uuid::nil()),
        Schema::Date => Value::Date(0),
        Schema::TimestampMillis => Value::TimestampMillis(0),
        Schema::TimestampMicros => Value::TimestampMicros(0),
        Schema::Array(_) => Value::Array(Vec::new()),
        Schema::Map(_) => Value::Map(Default::default()),
        Schema::Fixed(f) => Value::Fixed(f.size, vec![0; f.size]),
        Schema::Enum(e) => match e.symbols.first() {
            Some(s) => Value::Enum(0, s.clone()),
            None => return Err(CryptoError::Payload("enum without symbols".into())),
        },
        Schema::Union(u) => match u.variants().first() {
            Some(first) => Value::Union(0, Box::new(neutral(first)?)),
            None => return Err(CryptoError::Payload("empty union".into())),
        },
        Schema::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| Ok((f.name.clone(), neutral(&f.schema)?)))
                .collect::<Result<_, CryptoError>>()?,
        ),
        other => {
            return Err(CryptoError::Payload(format!(
                "personal field of unsupported type {other:?}"
            )));
        }
    })
}
