//! The payload schemas in `schemas/approvals/` stay true to the Rust types: one file per
//! command and event type, each a documented Avro record of exactly its variant's fields, in
//! the domain's namespace, at `keel.schema_version` 1, with personal fields marked by a
//! `keel.subject` that names a field of the same record; and the domain ships every file.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use keel_approvals::{ApprovalDesk, ApprovalEvent};
use keel_domain::{DomainCommand, DomainEvent, WireSchemas};
use serde::Serialize;
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn schema_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/approvals")
        .join(kind)
}

fn fields_of<T: Serialize>(value: &T, type_name: &str) -> Result<BTreeSet<String>, Box<dyn std::error::Error>> {
    let json = serde_json::to_value(value)?;
    let body = json.get(type_name).ok_or("externally tagged variant")?;
    Ok(body.as_object().ok_or("struct variant")?.keys().cloned().collect())
}

/// Checks the schema file of `type_name` in `kind` against the Rust fields.
fn check(
    kind: &str,
    namespace: &str,
    type_name: &str,
    in_rust: &BTreeSet<String>,
) -> Result<Value, Box<dyn std::error::Error>> {
    let path = schema_dir(kind).join(format!("{type_name}.v1.avsc"));
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    apache_avro::Schema::parse_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    let schema: Value = serde_json::from_str(&text)?;
    assert_eq!(schema["name"], type_name);
    assert_eq!(schema["namespace"], namespace, "{type_name}");
    assert_eq!(schema["keel.schema_version"], 1, "{type_name}");
    assert!(schema["doc"].is_string(), "{type_name} has no doc");
    let fields = schema["fields"].as_array().ok_or("no fields")?;
    let in_schema: BTreeSet<String> = fields
        .iter()
        .filter_map(|field| field["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(&in_schema, in_rust, "{type_name}: schema and Rust fields differ");
    for field in fields {
        assert!(
            field["doc"].as_str().is_some_and(|doc| !doc.is_empty()),
            "{type_name}.{}: no doc",
            field["name"]
        );
        if let Some(subject) = field.get("keel.subject") {
            let subject = subject.as_str().ok_or("keel.subject is not a string")?;
            assert!(
                in_schema.contains(subject),
                "{type_name}.{}: keel.subject names a missing field",
                field["name"]
            );
        }
    }
    Ok(schema)
}

#[test]
fn every_command_type_has_a_schema_with_exactly_its_fields() -> TestResult {
    let commands = support::every_command();
    assert_eq!(
        std::fs::read_dir(schema_dir("commands"))?.count(),
        commands.len(),
        "one schema file per command type"
    );
    for command in &commands {
        let fields = fields_of(command, command.command_type())?;
        let schema = check(
            "commands",
            ApprovalDesk::COMMAND_NAMESPACE,
            command.command_type(),
            &fields,
        )?;
        let marked = schema["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|field| field.get("keel.subject").is_some());
        assert!(!marked, "{}: commands are not sealed", command.command_type());
    }
    Ok(())
}

#[test]
fn every_event_type_has_a_schema_with_exactly_its_fields() -> TestResult {
    let events = support::every_event();
    assert_eq!(
        std::fs::read_dir(schema_dir("events"))?.count(),
        events.len(),
        "one schema file per event type"
    );
    for event in &events {
        let fields = fields_of(event, event.event_type())?;
        check("events", ApprovalDesk::EVENT_NAMESPACE, event.event_type(), &fields)?;
    }
    Ok(())
}

#[test]
fn only_the_beneficiarys_name_and_account_are_personal() -> TestResult {
    for event in support::every_event() {
        let text = std::fs::read_to_string(schema_dir("events").join(format!("{}.v1.avsc", event.event_type())))?;
        let schema: Value = serde_json::from_str(&text)?;
        let personal: BTreeSet<(&str, &str)> = schema["fields"]
            .as_array()
            .ok_or("no fields")?
            .iter()
            .filter_map(|field| Some((field["name"].as_str()?, field.get("keel.subject")?.as_str()?)))
            .collect();
        let expected = match event {
            ApprovalEvent::ActionProposed { .. } => BTreeSet::from([
                ("beneficiary_name", "beneficiary_id"),
                ("beneficiary_account", "beneficiary_id"),
            ]),
            _ => BTreeSet::new(),
        };
        assert_eq!(personal, expected, "{}", event.event_type());
    }
    Ok(())
}

#[test]
fn the_domain_ships_every_schema_file() -> TestResult {
    let mut on_disk = BTreeSet::new();
    for kind in ["commands", "events"] {
        for entry in std::fs::read_dir(schema_dir(kind))? {
            on_disk.insert(std::fs::read_to_string(entry?.path())?);
        }
    }
    let shipped: BTreeSet<String> = ApprovalDesk::SCHEMAS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(shipped.len(), ApprovalDesk::SCHEMAS.len(), "no schema shipped twice");
    assert_eq!(shipped, on_disk);
    Ok(())
}
