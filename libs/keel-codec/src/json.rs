//! A payload given as JSON (the CLI's `--payload`, a request body) to the Avro value of its
//! payload schema, without the domain's Rust types; the first field that does not fit is
//! named by its dotted path: `amount_cents: expected a long, got "abc"`.
//!
//! Values are written as in Avro's JSON encoding, but for unions: a nullable field
//! (`["null", X]`) is `null` or a plain X, and any other union takes the first branch the
//! value fits. `int` and `long` (and the logical types built on them) are range-checked, a
//! `uuid` is its text form, `bytes` and `fixed` are strings whose characters are the bytes
//! (U+0000 to U+00FF). A missing field with a default takes its default.

use std::collections::HashMap;
use std::fmt::Display;

use apache_avro::Schema;
use apache_avro::schema::{Name, NamesRef, RecordSchema, ResolvedSchema, UnionSchema};
use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::{FieldError, WireError};

/// What a field's path is called when it is the payload itself.
const ROOT: &str = "the payload";
/// How much of an offending value an error repeats.
const SHOWN_CHARS: usize = 40;
const INT: (i32, i32) = (i32::MIN, i32::MAX);
const LONG: (i64, i64) = (i64::MIN, i64::MAX);

/// The Avro value of `json` under `schema`, ready to be resolved and written with it.
pub fn to_avro(schema: &Schema, json: &Json) -> Result<Value, WireError> {
    let resolved = ResolvedSchema::new(schema).map_err(|error| WireError::Payload(error.to_string()))?;
    let converter = Converter {
        names: resolved.get_names(),
    };
    Ok(converter.convert(schema, json, "")?)
}

struct Converter<'a, 's> {
    names: &'a NamesRef<'s>,
}

impl Converter<'_, '_> {
    fn convert(&self, schema: &Schema, json: &Json, path: &str) -> Result<Value, FieldError> {
        let mismatch = || mismatch(path, describe(schema), json);
        match schema {
            Schema::Null => json.is_null().then_some(Value::Null).ok_or_else(mismatch),
            Schema::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(mismatch),
            Schema::Int => integer(json, path, "an int", INT).map(Value::Int),
            Schema::Long => integer(json, path, "a long", LONG).map(Value::Long),
            Schema::Float => float(json, path),
            Schema::Double => json.as_f64().map(Value::Double).ok_or_else(mismatch),
            Schema::String => json.as_str().map(|s| Value::String(s.to_owned())).ok_or_else(mismatch),
            Schema::Bytes => latin1(json).map(Value::Bytes).ok_or_else(mismatch),
            Schema::Fixed(fixed) => match latin1(json) {
                Some(bytes) if bytes.len() == fixed.size => Ok(Value::Fixed(fixed.size, bytes)),
                _ => Err(mismatch()),
            },
            Schema::Uuid(_) => json
                .as_str()
                .and_then(|text| uuid::Uuid::parse_str(text).ok())
                .map(Value::Uuid)
                .ok_or_else(mismatch),
            Schema::Enum(enumeration) => {
                let symbol = json.as_str().ok_or_else(mismatch)?;
                let index = enumeration
                    .symbols
                    .iter()
                    .position(|known| known == symbol)
                    .ok_or_else(mismatch)?;
                Ok(Value::Enum(index_u32(index), symbol.to_owned()))
            }
            Schema::Array(array) => {
                let items = json.as_array().ok_or_else(mismatch)?;
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.convert(&array.items, item, &format!("{}[{i}]", shown(path))))
                    .collect::<Result<_, _>>()?;
                Ok(Value::Array(items))
            }
            Schema::Map(map) => {
                let entries = json.as_object().ok_or_else(mismatch)?;
                let entries = entries
                    .iter()
                    .map(|(key, value)| Ok((key.clone(), self.convert(&map.types, value, &child(path, key))?)))
                    .collect::<Result<HashMap<_, _>, FieldError>>()?;
                Ok(Value::Map(entries))
            }
            Schema::Record(record) => self.record(record, json, path),
            Schema::Union(union) => self.union(union, json, path),
            Schema::Ref { name } => match self.names.get(name) {
                Some(named) => self.convert(named, json, path),
                None => Err(unsupported(path, name)),
            },
            Schema::Date => integer(json, path, "an int (days since the epoch)", INT).map(Value::Date),
            Schema::TimeMillis => {
                integer(json, path, "an int (milliseconds after midnight)", INT).map(Value::TimeMillis)
            }
            Schema::TimeMicros => {
                integer(json, path, "a long (microseconds after midnight)", LONG).map(Value::TimeMicros)
            }
            Schema::TimestampMillis => {
                integer(json, path, "a long (milliseconds since the epoch)", LONG).map(Value::TimestampMillis)
            }
            Schema::TimestampMicros => {
                integer(json, path, "a long (microseconds since the epoch)", LONG).map(Value::TimestampMicros)
            }
            Schema::TimestampNanos => {
                integer(json, path, "a long (nanoseconds since the epoch)", LONG).map(Value::TimestampNanos)
            }
            Schema::LocalTimestampMillis => integer(json, path, "a long (local milliseconds since the epoch)", LONG)
                .map(Value::LocalTimestampMillis),
            Schema::LocalTimestampMicros => integer(json, path, "a long (local microseconds since the epoch)", LONG)
                .map(Value::LocalTimestampMicros),
            Schema::LocalTimestampNanos => {
                integer(json, path, "a long (local nanoseconds since the epoch)", LONG).map(Value::LocalTimestampNanos)
            }
            Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration(_) => Err(FieldError::Unsupported {
                path: shown(path).to_owned(),
                kind: describe(schema),
            }),
        }
    }

    /// A record from an object: every field the schema has (or its default), no other.
    fn record(&self, record: &RecordSchema, json: &Json, path: &str) -> Result<Value, FieldError> {
        let Json::Object(object) = json else {
            return Err(mismatch(path, describe_record(record), json));
        };
        // An unknown field first: a misspelt field is also a missing one, and its own name
        // says more.
        if let Some(unknown) = object
            .keys()
            .find(|key| !record.fields.iter().any(|field| &field.name == *key))
        {
            return Err(FieldError::Unknown(child(path, unknown)));
        }
        let fields = record
            .fields
            .iter()
            .map(|field| {
                let at = child(path, &field.name);
                let value = match (object.get(&field.name), &field.default) {
                    (Some(value), _) => self.convert(&field.schema, value, &at)?,
                    (None, Some(default)) => self.convert(&field.schema, default, &at)?,
                    (None, None) => return Err(FieldError::Missing(at)),
                };
                Ok((field.name.clone(), value))
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Value::Record(fields))
    }

    /// `null` to the null branch; anything else to the first other branch it fits.
    fn union(&self, union: &UnionSchema, json: &Json, path: &str) -> Result<Value, FieldError> {
        let branches = union.variants();
        let null = branches.iter().position(|branch| matches!(branch, Schema::Null));
        if let (Some(index), Json::Null) = (null, json) {
            return Ok(Value::Union(index_u32(index), Box::new(Value::Null)));
        }
        let others: Vec<(usize, &Schema)> = branches
            .iter()
            .enumerate()
            .filter(|(_, branch)| !matches!(branch, Schema::Null))
            .collect();
        let mut errors = Vec::with_capacity(others.len());
        for (index, branch) in &others {
            match self.convert(branch, json, path) {
                Ok(value) => return Ok(Value::Union(index_u32(*index), Box::new(value))),
                Err(error) => errors.push(error),
            }
        }
        match (errors.pop(), others.len()) {
            // A nullable X: what was wrong with it as an X, deep inside it if need be.
            (
                Some(FieldError::Mismatch {
                    path: at,
                    expected,
                    got,
                }),
                1,
            ) if at == shown(path) && null.is_some() => Err(FieldError::Mismatch {
                path: at,
                expected: format!("null or {expected}"),
                got,
            }),
            (Some(error), 1) => Err(error),
            _ => {
                let kinds: Vec<String> = branches.iter().map(describe).collect();
                Err(mismatch(path, format!("one of: {}", kinds.join("; ")), json))
            }
        }
    }
}

/// The path of field `name` of the value at `path`.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { ROOT } else { path }
}

fn mismatch(path: &str, expected: String, json: &Json) -> FieldError {
    let mut got = json.to_string();
    if got.chars().count() > SHOWN_CHARS {
        got = got.chars().take(SHOWN_CHARS).chain(std::iter::once('…')).collect();
    }
    FieldError::Mismatch {
        path: shown(path).to_owned(),
        expected,
        got,
    }
}

fn unsupported(path: &str, name: &Name) -> FieldError {
    FieldError::Unsupported {
        path: shown(path).to_owned(),
        kind: format!("an unresolved type {}", name.fullname(None)),
    }
}

/// An integer within `min..=max`: not a fraction, a string or a number out of range.
fn integer<T>(json: &Json, path: &str, expected: &str, (min, max): (T, T)) -> Result<T, FieldError>
where
    T: TryFrom<i64> + Display,
{
    let out_of_range = || mismatch(path, format!("{expected} from {min} to {max}"), json);
    match json {
        Json::Number(number) => match number.as_i64() {
            Some(n) => T::try_from(n).map_err(|_| out_of_range()),
            None if number.is_u64() => Err(out_of_range()),
            None => Err(mismatch(path, expected.to_owned(), json)),
        },
        _ => Err(mismatch(path, expected.to_owned(), json)),
    }
}

fn float(json: &Json, path: &str) -> Result<Value, FieldError> {
    let value = json
        .as_f64()
        .ok_or_else(|| mismatch(path, "a float".to_owned(), json))?;
    // A double beyond the float's range turns infinite: refused just below.
    let narrow = value as f32;
    if narrow.is_infinite() {
        return Err(mismatch(
            path,
            format!("a float from {} to {}", f32::MIN, f32::MAX),
            json,
        ));
    }
    Ok(Value::Float(narrow))
}

/// The bytes of a string whose every character is one byte (Avro's JSON encoding).
fn latin1(json: &Json) -> Option<Vec<u8>> {
    json.as_str()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

fn index_u32(index: usize) -> u32 {
    // A schema's symbols and branches are counted far below u32::MAX.
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// What a value of `schema` looks like in JSON, for an error.
fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "a boolean".into(),
        Schema::Int => "an int".into(),
        Schema::Long => "a long".into(),
        Schema::Float => "a float".into(),
        Schema::Double => "a double".into(),
        Schema::String => "a string".into(),
        Schema::Bytes => "bytes (a string of characters U+0000 to U+00FF)".into(),
        Schema::Fixed(fixed) => format!("{} bytes (a string of characters U+0000 to U+00FF)", fixed.size),
        Schema::Uuid(_) => "a uuid (a string such as 67e55044-10b1-426f-9247-bb680e5fe0c8)".into(),
        Schema::Enum(enumeration) => format!("one of {}", enumeration.symbols.join(", ")),
        Schema::Array(_) => "an array".into(),
        Schema::Map(_) => "an object (a map)".into(),
        Schema::Record(record) => describe_record(record),
        Schema::Union(_) => "a union".into(),
        Schema::Ref { name } => format!("a {}", name.fullname(None)),
        Schema::Date => "an int (days since the epoch)".into(),
        Schema::TimeMillis | Schema::TimeMicros => "a time of day".into(),
        Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "a timestamp".into(),
        Schema::Decimal(_) | Schema::BigDecimal => "a decimal".into(),
        Schema::Duration(_) => "a duration".into(),
    }
}

fn describe_record(record: &RecordSchema) -> String {
    format!("an object (record {})", record.name.name())
}

#[cfg(test)]
mod tests;
