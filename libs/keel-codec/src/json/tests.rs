use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::json;

use super::*;

/// A command of a made-up domain with every kind of field the converter knows.
const APPROVE: &str = r#"{
  "type": "record", "name": "Approve", "namespace": "dev.keel.test.commands",
  "fields": [
    {"name": "request_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "decision", "type": {"type": "enum", "name": "Decision", "symbols": ["APPROVED", "REJECTED"]}},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "level", "type": "int"},
    {"name": "amount_cents", "type": "long"},
    {"name": "urgent", "type": "boolean", "default": false},
    {"name": "score", "type": "double"},
    {"name": "weight", "type": "float"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "limits", "type": {"type": "map", "values": "long"}},
    {"name": "approver", "type": {"type": "record", "name": "Approver", "fields": [
      {"name": "id", "type": "string"},
      {"name": "delegate", "type": ["null", "Approver"], "default": null}
    ]}},
    {"name": "previous", "type": ["null", "Decision"], "default": null},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 2}},
    {"name": "blob", "type": "bytes"}
  ]
}"#;

fn schema() -> Schema {
    Schema::parse_str(APPROVE).expect("the test schema parses")
}

fn approve() -> serde_json::Value {
    json!({
        "request_id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
        "decision": "REJECTED",
        "note": "over budget",
        "level": 2,
        "amount_cents": 9_000_000_000_i64,
        "score": 0.5,
        "weight": 1,
        "tags": ["q3", "travel"],
        "limits": {"daily": 500},
        "approver": {"id": "u-1", "delegate": {"id": "u-2"}},
        "previous": "APPROVED",
        "at": 1_700_000_000_000_000_i64,
        "digest": "\u{00ff}a",
        "blob": ""
    })
}

/// `approve()` with `field` set to `value` (`None`: removed).
fn with(field: &str, value: Option<serde_json::Value>) -> serde_json::Value {
    let mut payload = approve();
    let object = payload.as_object_mut().expect("an object");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    payload
}

/// The message of the field error converting `payload` gives.
fn error(payload: &serde_json::Value) -> String {
    match to_avro(&schema(), payload) {
        Ok(value) => panic!("{payload} converted to {value:?}"),
        Err(WireError::Field(error)) => error.to_string(),
        Err(other) => panic!("not a field error: {other}"),
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = value else {
        panic!("not a record: {value:?}")
    };
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn every_kind_of_field_converts_to_a_value_its_schema_validates() {
    let schema = schema();
    let value = to_avro(&schema, &approve()).expect("converts");
    assert!(value.validate(&schema), "{value:?}");
    assert_eq!(
        field(&value, "request_id"),
        &Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().expect("a uuid"))
    );
    assert_eq!(field(&value, "decision"), &Value::Enum(1, "REJECTED".into()));
    assert_eq!(
        field(&value, "note"),
        &Value::Union(1, Box::new(Value::String("over budget".into())))
    );
    assert_eq!(field(&value, "level"), &Value::Int(2));
    assert_eq!(field(&value, "amount_cents"), &Value::Long(9_000_000_000));
    assert_eq!(field(&value, "weight"), &Value::Float(1.0));
    assert_eq!(
        field(&value, "previous"),
        &Value::Union(1, Box::new(Value::Enum(0, "APPROVED".into())))
    );
    assert_eq!(field(&value, "at"), &Value::TimestampMicros(1_700_000_000_000_000));
    assert_eq!(field(&value, "digest"), &Value::Fixed(2, vec![0xff, b'a']));
}

#[test]
fn an_absent_field_with_a_default_takes_it_and_null_takes_the_null_branch() {
    let mut payload = with("urgent", None);
    payload["note"] = serde_json::Value::Null;
    let value = to_avro(&schema(), &payload).expect("converts");
    assert_eq!(field(&value, "urgent"), &Value::Boolean(false));
    assert_eq!(field(&value, "note"), &Value::Union(0, Box::new(Value::Null)));
}

#[test]
fn a_value_of_the_wrong_type_names_the_field() {
    assert_eq!(
        error(&with("amount_cents", Some(json!("abc")))),
        r#"amount_cents: expected a long, got "abc""#
    );
    assert_eq!(
        error(&with("level", Some(json!(1.5)))),
        "level: expected an int, got 1.5"
    );
    assert_eq!(
        error(&with("urgent", Some(json!("yes")))),
        r#"urgent: expected a boolean, got "yes""#
    );
    assert_eq!(
        error(&with("request_id", Some(json!("not-a-uuid")))),
        r#"request_id: expected a uuid (a string such as 67e55044-10b1-426f-9247-bb680e5fe0c8), got "not-a-uuid""#
    );
}

#[test]
fn a_missing_field_is_named() {
    assert_eq!(error(&with("amount_cents", None)), "missing field amount_cents");
}

#[test]
fn an_unknown_field_is_named_before_the_field_it_may_misspell() {
    let mut payload = with("amount_cents", None);
    payload["amount_cent"] = json!(5);
    assert_eq!(error(&payload), "unknown field amount_cent");
}

#[test]
fn an_int_out_of_range_names_the_field_and_the_range() {
    assert_eq!(
        error(&with("level", Some(json!(3_000_000_000_i64)))),
        "level: expected an int from -2147483648 to 2147483647, got 3000000000"
    );
    assert_eq!(
        error(&with("amount_cents", Some(json!(u64::MAX)))),
        "amount_cents: expected a long from -9223372036854775808 to 9223372036854775807, got 18446744073709551615"
    );
}

#[test]
fn a_double_beyond_a_float_is_out_of_range() {
    assert!(error(&with("weight", Some(json!(1e300)))).starts_with("weight: expected a float from "));
}

#[test]
fn a_symbol_not_of_the_enum_lists_the_symbols() {
    assert_eq!(
        error(&with("decision", Some(json!("MAYBE")))),
        r#"decision: expected one of APPROVED, REJECTED, got "MAYBE""#
    );
    assert_eq!(
        error(&with("previous", Some(json!("MAYBE")))),
        r#"previous: expected null or one of APPROVED, REJECTED, got "MAYBE""#
    );
}

#[test]
fn a_payload_that_is_not_an_object_says_so() {
    for payload in [json!([1, 2]), json!("IssueRefund"), json!(null)] {
        assert_eq!(
            error(&payload),
            format!("the payload: expected an object (record Approve), got {payload}")
        );
    }
}

#[test]
fn a_nested_field_is_named_by_its_dotted_path() {
    let mut payload = approve();
    payload["approver"]["delegate"] = json!({"id": 7});
    assert_eq!(error(&payload), "approver.delegate.id: expected a string, got 7");
    payload["approver"]["delegate"] = json!({});
    assert_eq!(error(&payload), "missing field approver.delegate.id");
    payload["approver"] = json!({"id": "u-1", "deputy": null});
    assert_eq!(error(&payload), "unknown field approver.deputy");
}

#[test]
fn items_and_map_values_are_named_by_index_and_key() {
    assert_eq!(
        error(&with("tags", Some(json!(["q3", 4])))),
        "tags[1]: expected a string, got 4"
    );
    assert_eq!(
        error(&with("limits", Some(json!({"daily": "lots"})))),
        r#"limits.daily: expected a long, got "lots""#
    );
}

#[test]
fn a_nullable_field_of_the_wrong_type_says_null_or_its_type() {
    assert_eq!(
        error(&with("note", Some(json!(5)))),
        "note: expected null or a string, got 5"
    );
}

#[test]
fn a_long_offending_value_is_cut_short() {
    let message = error(&with("level", Some(json!("x".repeat(500)))));
    assert!(message.len() < 100, "{message}");
    assert!(message.ends_with('…'), "{message}");
}

#[test]
fn bytes_are_characters_up_to_u_00ff_and_fixed_has_its_size() {
    assert_eq!(
        error(&with("blob", Some(json!("\u{0100}")))),
        r#"blob: expected bytes (a string of characters U+0000 to U+00FF), got "Ā""#
    );
    assert_eq!(
        error(&with("digest", Some(json!("abc")))),
        r#"digest: expected 2 bytes (a string of characters U+0000 to U+00FF), got "abc""#
    );
}
