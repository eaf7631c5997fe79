//! Domain values to Avro payload records and back, through serde's externally tagged enum
//! form: `{"RefundIssued": {"refund_id": …}}` is the record `RefundIssued` with those fields.

use apache_avro::types::Value;
use keel_envelope::Datum;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::WireError;

/// The variant name and the fields of a domain enum value.
pub(crate) fn split_tagged<T: Serialize>(value: &T) -> Result<(String, serde_json::Value), WireError> {
    match serde_json::to_value(value).map_err(|error| WireError::Payload(error.to_string()))? {
        serde_json::Value::Object(map) if map.len() == 1 => {
            let (name, fields) = map.into_iter().next().unwrap_or_default();
            Ok((name, fields))
        }
        serde_json::Value::String(name) => Ok((name, serde_json::Value::Object(serde_json::Map::new()))),
        other => Err(WireError::Payload(format!(
            "not an externally tagged enum value: {other}"
        ))),
    }
}

/// The generic Avro value of a payload's fields (resolved against a schema by the caller).
pub(crate) fn to_avro(fields: serde_json::Value) -> Result<Value, WireError> {
    // Not `apache_avro::to_value`: since apache-avro 0.22 it turns a u64 (what serde_json
    // gives for every non-negative integer) into an 8-byte fixed.
    Value::try_from(fields).map_err(|error| WireError::Payload(error.to_string()))
}

/// The Avro binary of a payload's fields under `schema`.
pub(crate) fn encode(schema: &Datum, fields: serde_json::Value) -> Result<Vec<u8>, WireError> {
    encode_value(schema, to_avro(fields)?)
}

/// The Avro binary of a payload value under `schema`, resolved to it first.
pub(crate) fn encode_value(schema: &Datum, value: Value) -> Result<Vec<u8>, WireError> {
    let fail = |error: apache_avro::Error| WireError::Payload(error.to_string());
    let value = schema.resolve(value).map_err(fail)?;
    schema.to_vec(&value, 0).map_err(fail)
}

/// The domain value of variant `name` with the fields of a decoded record.
pub(crate) fn join_tagged<T: DeserializeOwned>(name: &str, record: Value) -> Result<T, WireError> {
    let fields = serde_json::Value::try_from(record).map_err(|error| WireError::Payload(error.to_string()))?;
    let tagged = serde_json::json!({ name: fields });
    serde_json::from_value(tagged).map_err(|error| WireError::Payload(format!("{name}: {error}")))
}
