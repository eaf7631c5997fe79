//! The payload schemas in `schemas/customer-support/` stay true to the Rust event types:
//! each parses as Avro, has exactly the fields its variant has, and marks personal fields
//! with a `keel.subject` that names a field of the same record.

use std::collections::BTreeSet;
use std::path::PathBuf;

use keel_customer_support::SupportEvent;
use keel_domain::DomainEvent;
use uuid::Uuid;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/customer-support/events")
}

fn one_of_each() -> Vec<SupportEvent> {
    let id = || "x".to_owned();
    vec![
        SupportEvent::CustomerRegistered {
            customer_id: id(),
            name: id(),
            email: id(),
            address: id(),
        },
        SupportEvent::CustomerDeleted {
            customer_id: id(),
            reason: id(),
        },
        SupportEvent::EmailSent {
            customer_id: id(),
            email_id: id(),
            to: id(),
            subject: id(),
            body: id(),
        },
        SupportEvent::FriendReferred {
            customer_id: id(),
            friend_id: id(),
            friend_name: id(),
            friend_email: id(),
            message: id(),
        },
        SupportEvent::SubscriptionStarted {
            customer_id: id(),
            subscription_id: id(),
            plan: id(),
        },
        SupportEvent::SubscriptionCancelled {
            customer_id: id(),
            subscription_id: id(),
            reason: id(),
        },
        SupportEvent::SubscriptionReinstated {
            customer_id: id(),
            subscription_id: id(),
            compensates: Uuid::nil(),
        },
        SupportEvent::RefundIssued {
            customer_id: id(),
            refund_id: id(),
            amount_cents: 1,
            reason: id(),
        },
        SupportEvent::RefundReversed {
            customer_id: id(),
            refund_id: id(),
            amount_cents: 1,
            compensates: Uuid::nil(),
        },
    ]
}

#[test]
fn every_event_type_has_a_schema_with_exactly_its_fields() -> Result<(), Box<dyn std::error::Error>> {
    let events = one_of_each();
    let files = std::fs::read_dir(schema_dir())?.count();
    assert_eq!(files, events.len(), "one schema file per event type");
    for event in events {
        let path = schema_dir().join(format!("{}.v1.avsc", event.event_type()));
        let text = std::fs::read_to_string(&path)?;
        apache_avro::Schema::parse_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;

        let schema: serde_json::Value = serde_json::from_str(&text)?;
        let fields = schema["fields"].as_array().ok_or("no fields")?;
        let in_schema: BTreeSet<&str> = fields.iter().filter_map(|field| field["name"].as_str()).collect();
        let json = serde_json::to_value(&event)?;
        let body = json.get(event.event_type()).ok_or("externally tagged variant")?;
        let in_rust: BTreeSet<&str> = body
            .as_object()
            .ok_or("struct variant")?
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            in_schema,
            in_rust,
            "{}: schema and Rust fields differ",
            event.event_type()
        );

        for field in fields {
            if let Some(subject) = field.get("keel.subject").and_then(|s| s.as_str()) {
                assert!(
                    in_schema.contains(subject),
                    "{}.{}: keel.subject names a missing field",
                    event.event_type(),
                    field["name"]
                );
            }
        }
    }
    Ok(())
}

#[test]
fn the_referral_carries_personal_data_of_two_subjects() -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(schema_dir().join("FriendReferred.v1.avsc"))?;
    let schema: serde_json::Value = serde_json::from_str(&text)?;
    let subjects: BTreeSet<&str> = schema["fields"]
        .as_array()
        .ok_or("no fields")?
        .iter()
        .filter_map(|field| field.get("keel.subject").and_then(|s| s.as_str()))
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from(["customer_id", "friend_id"]),
        "one event, personal data of two subjects"
    );
    let registered = std::fs::read_to_string(schema_dir().join("CustomerRegistered.v1.avsc"))?;
    assert!(registered.contains(r#""keel.subject": "customer_id""#));
    Ok(())
}
