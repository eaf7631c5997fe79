//! Every command and event variant round-trips through its Avro schema as Keel's codec
//! carries it: commands in their envelope (`Wire`), events sealed, chained and opened
//! (`EventCodec`, in-memory keys), with the beneficiary's fields sealed under their own
//! subject.

mod support;

use std::sync::Arc;

use keel_approvals::{ApprovalCommand, ApprovalDesk, ApprovalEvent};
use keel_codec::{CommandHeader, EventCodec, EventHeader, OpenedEvent, Wire};
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, RotationPolicy};
use keel_domain::{DomainCommand, DomainEvent};
use keel_envelope::{Actor, ActorKind, Upcasters};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn agent() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "payout-agent".into(),
        delegation: vec![],
        authorization: None,
    }
}

fn codec() -> Result<EventCodec<InMemoryKms, InMemoryKeyVault>, keel_codec::WireError> {
    let keys = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    EventCodec::new::<ApprovalDesk>(Arc::new(keys), Upcasters::new())
}

#[test]
fn every_command_round_trips_through_its_envelope() -> TestResult {
    let wire = Wire::new::<ApprovalDesk>()?;
    for command in support::every_command() {
        let header = CommandHeader {
            command_id: Uuid::new_v4(),
            tenant: "acme".into(),
            stream: "payouts".into(),
            expected_version: None,
            issued_at_micros: 1_700_000_000_000_000,
            actor: agent(),
            credential: "token".into(),
            correlation_id: Uuid::new_v4(),
            causation_id: None,
        };
        let bytes = wire.encode_command(header, &command)?;
        let (envelope, decoded) = wire
            .decode_command::<ApprovalCommand>(&bytes)
            .map_err(|error| format!("{}: {}", command.command_type(), error.error))?;
        assert_eq!(decoded, command);
        assert_eq!(envelope.command_type, command.command_type());
        assert_eq!(
            envelope.payload.schema_name,
            format!("dev.keel.approvals.commands.{}", command.command_type())
        );
    }
    Ok(())
}

#[test]
fn a_risk_outside_the_enum_is_refused_by_the_codec() -> TestResult {
    let wire = Wire::new::<ApprovalDesk>()?;
    let mut json = serde_json::to_value(&support::every_command()[0])?;
    json["SetApprovalPolicy"]["auto_execute_max_risk"] = "EXTREME".into();
    let header = CommandHeader {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "payouts".into(),
        expected_version: None,
        issued_at_micros: 1,
        actor: agent(),
        credential: "token".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    };
    assert!(wire.encode_command(header, &json).is_err(), "EXTREME is no Risk symbol");
    Ok(())
}

#[tokio::test]
async fn every_event_round_trips_sealed_with_the_beneficiarys_fields_under_their_key() -> TestResult {
    let codec = codec()?;
    let mut prev_hash = Vec::new();
    for (index, event) in support::every_event().into_iter().enumerate() {
        let header = EventHeader {
            tenant: "acme",
            stream: "payouts",
            version: index as u64 + 1,
            recorded_at_micros: 1_700_000_000_000_000,
            command_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            actor: agent(),
            compensates: event.compensates(),
        };
        let sealed = codec.seal_event(&header, &event, &prev_hash).await?;
        prev_hash.clone_from(&sealed.hash);
        let bytes = codec.wire().encode_event(&sealed)?;
        let sealed_paths: Vec<(&str, &str)> = sealed
            .payload
            .sealed_fields
            .iter()
            .map(|field| (field.path.as_str(), field.subject_id.as_str()))
            .collect();
        if let ApprovalEvent::ActionProposed { .. } = event {
            assert_eq!(
                sealed_paths,
                [("beneficiary_name", "b-1"), ("beneficiary_account", "b-1")]
            );
            assert_eq!(sealed.data_subjects, ["b-1"]);
            for plaintext in [&b"Ada Canary"[..], b"GB33BUKB"] {
                assert!(
                    !bytes.windows(plaintext.len()).any(|window| window == plaintext),
                    "no personal plaintext on the wire"
                );
            }
        } else {
            assert!(sealed_paths.is_empty(), "{}", event.event_type());
        }
        let read = codec.wire().read_event(&bytes)?;
        let opened: OpenedEvent<ApprovalEvent> = codec.open_event(read).await?;
        assert_eq!(opened.event, event);
        assert_eq!(opened.envelope.event_type, event.event_type());
    }
    Ok(())
}

#[tokio::test]
async fn an_erased_beneficiary_opens_as_erased_and_the_rest_stays_readable() -> TestResult {
    let codec = codec()?;
    let proposed = support::every_event().swap_remove(1);
    let header = EventHeader {
        tenant: "acme",
        stream: "payouts",
        version: 1,
        recorded_at_micros: 1,
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        actor: agent(),
        compensates: None,
    };
    let sealed = codec.seal_event(&header, &proposed, &[]).await?;
    codec.keys().erase_subject("acme", "b-1").await?;
    let opened: OpenedEvent<ApprovalEvent> = codec.open_event(sealed).await?;
    assert_eq!(opened.erased, ["beneficiary_name", "beneficiary_account"]);
    let ApprovalEvent::ActionProposed {
        beneficiary_name,
        amount_cents,
        ..
    } = opened.event
    else {
        return Err("not a proposal".into());
    };
    assert_eq!(beneficiary_name, "");
    assert_eq!(amount_cents, 50_000);
    Ok(())
}
