//! The rows each event writes, from events sealed by the real codec with in-memory keys and
//! opened as the projector opens them: the visitor's name reaches its row only sealed, and
//! opens with the visitor's key until the visitor is erased.

use std::sync::Arc;

use keel_codec::{EventCodec, EventHeader, FieldOrigin};
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, RotationPolicy};
use keel_domain::DomainEvent;
use keel_envelope::{Actor, ActorKind, EventEnvelope, Upcasters};
use keel_projection::LoggedEvent;
use uuid::Uuid;

use super::{Write, write_of};
use crate::{Badge, BadgeEvent};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Codec = EventCodec<InMemoryKms, InMemoryKeyVault>;

fn codec() -> Result<Codec, keel_codec::WireError> {
    let keys = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    EventCodec::new::<Badge>(Arc::new(keys), Upcasters::new())
}

/// `event` sealed as version `version` of stream `b-7`, issued by `human:frank`.
async fn sealed(codec: &Codec, event: &BadgeEvent, version: u64) -> Result<EventEnvelope, keel_codec::WireError> {
    let header = EventHeader {
        tenant: "acme",
        stream: "b-7",
        version,
        recorded_at_micros: 1_772_409_599_000_000,
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        actor: Actor {
            kind: ActorKind::Human,
            id: "frank".into(),
            delegation: vec![],
            authorization: None,
        },
        compensates: event.compensates(),
    };
    codec.seal_event(&header, event, &[]).await
}

fn issued() -> BadgeEvent {
    BadgeEvent::BadgeIssued {
        badge_id: "b-7".into(),
        visitor_id: "v-ada".into(),
        visitor_name: "Ada Lovelace".into(),
    }
}

#[tokio::test]
async fn the_visitors_name_reaches_the_row_only_sealed() -> TestResult {
    let codec = codec()?;
    let envelope = sealed(&codec, &issued(), 1).await?;
    let opened = codec.open_event_payload::<BadgeEvent>(envelope.clone()).await?;
    let logged = LoggedEvent {
        partition: 3,
        offset: 41,
        bytes: &[],
        envelope: &envelope,
        event: Some(&opened.event),
    };
    let Some(Write::Issued(row)) = write_of(&logged)? else {
        return Err("BadgeIssued writes an issued row".into());
    };
    assert_eq!((row.tenant.as_str(), row.badge_id.as_str()), ("acme", "b-7"));
    assert_eq!((row.issued_by.as_str(), row.offset, row.timestamp), ("frank", 41, 41));
    assert_eq!(row.visitor_name.subject_id, "v-ada");
    assert!(!format!("{row:?}").contains("Lovelace"), "no plaintext in the row");
    let origin = FieldOrigin {
        tenant: "acme",
        stream: "b-7",
        event_id: &row.visitor_name.event_id,
        event_type: &row.visitor_name.event_type,
        schema_version: row.visitor_name.schema_version,
    };
    let name = codec.open_field(origin, &row.visitor_name.sealed()).await?;
    assert_eq!(name, Some("Ada Lovelace".into()));
    codec.keys().erase_subject("acme", "v-ada").await?;
    assert_eq!(codec.open_field(origin, &row.visitor_name.sealed()).await?, None);
    Ok(())
}

#[tokio::test]
async fn a_return_updates_the_badges_row_at_its_offset() -> TestResult {
    let codec = codec()?;
    let returned = BadgeEvent::BadgeReturned {
        compensates: Uuid::now_v7(),
        reason: "visit over".into(),
    };
    let envelope = sealed(&codec, &returned, 2).await?;
    let opened = codec.open_event_payload::<BadgeEvent>(envelope.clone()).await?;
    let logged = LoggedEvent {
        partition: 3,
        offset: 42,
        bytes: &[],
        envelope: &envelope,
        event: Some(&opened.event),
    };
    let Some(Write::Returned(row)) = write_of(&logged)? else {
        return Err("BadgeReturned writes a returned row".into());
    };
    assert_eq!(
        (row.badge_id.as_str(), row.return_reason.as_str()),
        ("b-7", "visit over")
    );
    assert_eq!((row.version, row.timestamp), (2, 42));
    Ok(())
}

#[tokio::test]
async fn an_event_without_a_payload_writes_nothing() -> TestResult {
    let envelope = sealed(&codec()?, &issued(), 1).await?;
    let logged = LoggedEvent {
        partition: 0,
        offset: 7,
        bytes: &[],
        envelope: &envelope,
        event: None,
    };
    assert!(write_of(&logged)?.is_none());
    Ok(())
}
