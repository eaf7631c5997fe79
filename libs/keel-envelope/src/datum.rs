//! A schema resolved once, for every message written or read under it.
//!
//! apache-avro's free functions (`to_avro_datum`, `from_avro_datum`, `Value::validate`,
//! `Value::resolve`) rebuild the schema's table of named types on each call: for a small
//! payload that is most of the cost of encoding it, and the envelope schema has a dozen named
//! types. A [`Datum`] builds the table once and keeps apache-avro's datum writer and reader
//! over its own copy of the schema.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::ResolvedSchema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroResult, Schema};

#[ouroboros::self_referencing]
struct Resolved {
    schema: Schema,
    #[borrows(schema)]
    #[covariant]
    names: ResolvedSchema<'this>,
    #[borrows(schema)]
    #[covariant]
    writer: GenericDatumWriter<'this>,
    #[borrows(schema)]
    #[covariant]
    reader: GenericDatumReader<'this>,
    /// Length of the last value [`Datum::to_vec`] encoded: values of one schema tend to be
    /// alike, so it sizes the next buffer.
    last_len: AtomicUsize,
}

/// A schema with its named types resolved, shared cheaply between threads.
#[derive(Clone)]
pub struct Datum(Arc<Resolved>);

impl fmt::Debug for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Datum").field(self.schema()).finish()
    }
}

impl Datum {
    /// Resolves `schema`'s named types; a reference to an unknown name is an error.
    pub fn new(schema: Schema) -> AvroResult<Self> {
        let resolved = ResolvedTryBuilder {
            schema,
            names_builder: |schema| ResolvedSchema::new(schema),
            // Callers pass only values that fit (see `write`); validating again would walk
            // every value twice.
            writer_builder: |schema| GenericDatumWriter::builder(schema).validate(false).build(),
            reader_builder: |schema| GenericDatumReader::builder(schema).build(),
            last_len: AtomicUsize::new(0),
        }
        .try_build()?;
        Ok(Self(Arc::new(resolved)))
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        self.0.borrow_schema()
    }

    /// Whether `value` passes apache-avro's validation against the schema, so it can be
    /// written without resolving it first (apache-avro logs the reason at error level when
    /// it does not). Validation accepts a record lacking a field that has a default; writing
    /// such a record is an error, resolving it fills the default in.
    pub fn fits(&self, value: &Value) -> bool {
        self.0
            .with(|r| value.validate_with_names(r.schema, r.names.get_names()))
    }

    /// Brings `value` into the schema's shape (Avro schema resolution: promotions, defaults,
    /// field order, union branches).
    pub fn resolve(&self, value: Value) -> AvroResult<Value> {
        self.0.with(|r| value.resolve_with_names(r.schema, r.names.get_names()))
    }

    /// Appends the Avro binary encoding of `value`, which must fit the schema (it came from
    /// [`Self::resolve`] or passed [`Self::fits`]): it is not validated again.
    pub fn write(&self, value: &Value, out: &mut Vec<u8>) -> AvroResult<usize> {
        self.0.borrow_writer().write_value_ref(out, value)
    }

    /// The Avro binary encoding of `value` (which must fit, as for [`Self::write`]) in a
    /// buffer with room for `spare` more bytes, e.g. an authentication tag appended in place.
    pub fn to_vec(&self, value: &Value, spare: usize) -> AvroResult<Vec<u8>> {
        let last_len = self.0.borrow_last_len();
        let mut out = Vec::with_capacity(last_len.load(Ordering::Relaxed) + spare);
        self.write(value, &mut out)?;
        last_len.store(out.len(), Ordering::Relaxed);
        out.reserve_exact(spare);
        Ok(out)
    }

    /// Decodes one value written under this schema from the front of `bytes`, advancing it.
    pub fn read(&self, bytes: &mut &[u8]) -> AvroResult<Value> {
        self.0.borrow_reader().read_value(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"T","namespace":"dev.keel.test","fields":[
        {"name":"id","type":{"type":"fixed","name":"Id","size":2}},
        {"name":"ids","type":{"type":"array","items":"Id"}},
        {"name":"n","type":"long"},
        {"name":"note","type":["null","string"],"default":null}]}"#;

    fn record(n: Value) -> Value {
        Value::Record(vec![
            ("id".into(), Value::Fixed(2, vec![1, 2])),
            ("ids".into(), Value::Array(vec![Value::Fixed(2, vec![3, 4])])),
            ("n".into(), n),
            ("note".into(), Value::Union(1, Box::new(Value::String("hi".into())))),
        ])
    }

    #[test]
    fn writes_and_reads_what_apache_avro_does_with_named_references() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let datum = Datum::new(schema.clone()).unwrap();
        let value = record(Value::Long(7));
        assert!(datum.fits(&value));
        for _ in 0..2 {
            let out = datum.to_vec(&value, 16).unwrap();
            assert!(out.capacity() >= out.len() + 16, "room for the tag");
        }
        let out = datum.to_vec(&value, 0).unwrap();
        let reference = GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value.clone())
            .unwrap();
        assert_eq!(out, reference);
        let mut cursor = out.as_slice();
        assert_eq!(datum.read(&mut cursor).unwrap(), value);
        assert!(cursor.is_empty());
    }

    #[test]
    fn resolves_defaults_and_promotions_and_refuses_a_value_that_cannot_fit() {
        let datum = Datum::new(Schema::parse_str(SCHEMA).unwrap()).unwrap();
        let Value::Record(mut fields) = record(Value::Int(7)) else {
            unreachable!()
        };
        fields.pop();
        let Value::Record(mut expected) = record(Value::Long(7)) else {
            unreachable!()
        };
        expected[3].1 = Value::Union(0, Box::new(Value::Null));
        assert_eq!(datum.resolve(Value::Record(fields)).unwrap(), Value::Record(expected));
        let unfit = record(Value::String("seven".into()));
        assert!(!datum.fits(&unfit));
        assert!(datum.resolve(unfit).is_err());
    }

    #[test]
    fn a_truncated_body_is_an_error() {
        let datum = Datum::new(Schema::parse_str(SCHEMA).unwrap()).unwrap();
        let mut out = Vec::new();
        datum.write(&record(Value::Long(7)), &mut out).unwrap();
        // Cut inside the array's fixed. (apache-avro reads a string cut short as null, so
        // callers authenticate bodies before decoding them and check the decoded shape.)
        let mut cursor = &out[..4];
        assert!(datum.read(&mut cursor).is_err());
    }
}
