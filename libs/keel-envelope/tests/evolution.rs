//! A payload written with schema v1 reads as v2 through Avro resolution and an upcaster.

use apache_avro::types::Value;
use keel_envelope::{EnvelopeError, SchemaRegistry, Upcaster, Upcasters, codec};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const V1: &str = include_str!("fixtures/Transfer.v1.avsc");
const V2: &str = include_str!("fixtures/Transfer.v2.avsc");
const NAME: &str = "dev.keel.test.MoneyTransferred";

#[derive(Serialize)]
struct TransferV1 {
    from: String,
    to: String,
    cents: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct TransferV2 {
    from: String,
    to: String,
    cents: i64,
    currency: String,
    memo: String,
}

/// v1 transfers had no memo; v2 readers want one that says where it came from.
struct MemoFromV1;

impl Upcaster for MemoFromV1 {
    fn schema_name(&self) -> &str {
        NAME
    }
    fn source_version(&self) -> i32 {
        1
    }
    fn upcast(&self, value: Value) -> Result<Value, EnvelopeError> {
        let Value::Record(fields) = value else {
            return Err(EnvelopeError::Malformed {
                schema: NAME.into(),
                reason: "not a record".into(),
            });
        };
        Ok(Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| {
                    if k == "memo" {
                        (k, Value::String("migrated from v1".into()))
                    } else {
                        (k, v)
                    }
                })
                .collect(),
        ))
    }
}

fn registry_v1_only() -> Result<SchemaRegistry, EnvelopeError> {
    let mut r = SchemaRegistry::new();
    r.register(V1)?;
    Ok(r)
}

fn read_as_v2(message: &[u8]) -> Result<TransferV2, EnvelopeError> {
    let mut registry = SchemaRegistry::new();
    registry.register(V1)?;
    registry.register(V2)?;
    let (fp, body) = codec::split_header(message)?;
    let writer = registry.writer(fp).ok_or(EnvelopeError::UnknownFingerprint(fp))?;
    let reader = registry.current(NAME)?;
    let value = codec::decode_value(writer, reader, body)?;
    let value = Upcasters::new()
        .with(MemoFromV1)
        .upcast(NAME, writer.version, reader.version, value)?;
    apache_avro::from_value(&value).map_err(|e| EnvelopeError::Malformed {
        schema: NAME.into(),
        reason: e.to_string(),
    })
}

#[test]
fn the_highest_version_becomes_the_reader_schema() -> Result<(), EnvelopeError> {
    let mut registry = SchemaRegistry::new();
    registry.register(V2)?;
    registry.register(V1)?;
    assert_eq!(registry.current(NAME)?.version, 2);
    Ok(())
}

#[test]
fn a_missing_upcaster_step_is_an_error() {
    let err = Upcasters::new().upcast(NAME, 1, 2, Value::Null).err();
    assert!(matches!(err, Some(EnvelopeError::NoUpcaster { from: 1, to: 2, .. })));
}

proptest! {
    #[test]
    fn an_event_written_with_v1_reads_as_v2(from in "[a-z]{0,12}", to in "[a-z]{0,12}", cents in any::<i64>()) {
        let fail = |e: EnvelopeError| TestCaseError::fail(e.to_string());
        let message = registry_v1_only().map_err(fail)?
            .encode(NAME, &TransferV1 { from: from.clone(), to: to.clone(), cents }).map_err(fail)?;
        let read = read_as_v2(&message).map_err(fail)?;
        prop_assert_eq!(read, TransferV2 { from, to, cents, currency: "EUR".into(), memo: "migrated from v1".into() });
    }
}
