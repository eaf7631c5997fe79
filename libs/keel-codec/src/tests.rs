use std::sync::Arc;

use keel_chain::{ChainHasher, Verdict, verify_stream};
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, RotationPolicy};
use keel_customer_support::{Customer, SupportCommand, SupportEvent};
use keel_envelope::{ActorKind, Upcasters};
use uuid::Uuid;

use super::*;

type Codec = EventCodec<InMemoryKms, InMemoryKeyVault>;

fn codec() -> Codec {
    let keys = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    EventCodec::new::<Customer>(Arc::new(keys), Upcasters::new()).expect("the domain's schemas parse")
}

fn agent() -> keel_envelope::Actor {
    keel_envelope::Actor {
        kind: ActorKind::Agent,
        id: "agent-7".into(),
        delegation: vec![keel_envelope::ActorRef {
            kind: ActorKind::Human,
            id: "sam".into(),
        }],
        authorization: None,
    }
}

fn header(version: u64) -> EventHeader<'static> {
    EventHeader {
        tenant: "acme",
        stream: "c-1",
        version,
        recorded_at_micros: 1_700_000_000_000_000,
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        actor: agent(),
        compensates: None,
    }
}

fn registered() -> SupportEvent {
    SupportEvent::CustomerRegistered {
        customer_id: "c-1".into(),
        name: "Ada Canary".into(),
        email: "ada@example.com".into(),
        address: "1 Canary Wharf".into(),
    }
}

#[test]
fn a_command_round_trips_through_its_envelope() {
    let codec = codec();
    let command = SupportCommand::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents: 4_200,
        reason: "late delivery".into(),
    };
    let header = CommandHeader {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "c-1".into(),
        expected_version: Some(3),
        issued_at_micros: 1,
        actor: agent(),
        credential: "token".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    };
    let bytes = codec.wire().encode_command(header.clone(), &command).expect("encodes");
    let (envelope, decoded) = codec.wire().decode_command::<SupportCommand>(&bytes).expect("decodes");
    assert_eq!(decoded, command);
    assert_eq!(envelope.command_type, "IssueRefund");
    assert_eq!(envelope.payload.schema_name, "dev.keel.support.commands.IssueRefund");
    assert_eq!(envelope.expected_version, Some(3));
    assert_eq!(envelope.command_id, header.command_id.to_string());
}

#[test]
fn a_command_whose_type_and_payload_disagree_is_refused_with_its_envelope() {
    let codec = codec();
    let header = CommandHeader {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "c-1".into(),
        expected_version: None,
        issued_at_micros: 1,
        actor: agent(),
        credential: "token".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    };
    let bytes = codec
        .wire()
        .encode_command(header, &SupportCommand::DeleteCustomer { reason: "asked".into() })
        .expect("encodes");
    let mut envelope = codec
        .wire()
        .decode_command::<SupportCommand>(&bytes)
        .expect("decodes")
        .0;
    envelope.command_type = "IssueRefund".into();
    let forged = codec
        .wire()
        .envelopes
        .encode(COMMAND_ENVELOPE, &envelope)
        .expect("encodes");
    let error = codec
        .wire()
        .decode_command::<SupportCommand>(&forged)
        .expect_err("type and payload disagree");
    assert!(error.envelope.is_some(), "the envelope is still readable");
    assert!(error.error.to_string().contains("does not match"), "{}", error.error);
    let garbage = codec.wire().decode_command::<SupportCommand>(b"\xc3\x01garbage");
    assert!(garbage.is_err_and(|error| error.envelope.is_none()));
}

fn command_header() -> CommandHeader {
    CommandHeader {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "c-1".into(),
        expected_version: Some(3),
        issued_at_micros: 1,
        actor: agent(),
        credential: "token".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    }
}

#[test]
fn a_command_given_as_json_is_the_same_message_as_the_domain_command() {
    let wire = Wire::new::<Customer>().expect("the domain's schemas parse");
    let compensates = Uuid::new_v4();
    let cases = [
        (
            "IssueRefund",
            serde_json::json!({"refund_id": "r-1", "amount_cents": 4_200, "reason": "late"}),
            SupportCommand::IssueRefund {
                refund_id: "r-1".into(),
                amount_cents: 4_200,
                reason: "late".into(),
            },
        ),
        (
            "ReverseRefund",
            serde_json::json!({"refund_id": "r-1", "compensates": compensates}),
            SupportCommand::ReverseRefund {
                refund_id: "r-1".into(),
                compensates,
            },
        ),
    ];
    for (command_type, fields, command) in cases {
        let header = command_header();
        let from_json = wire
            .encode_command_json(header.clone(), command_type, &fields)
            .expect("encodes");
        let from_rust = wire.encode_command(header, &command).expect("encodes");
        assert_eq!(from_json, from_rust, "{command_type}");
    }
}

#[test]
fn a_command_given_as_json_that_does_not_fit_names_the_field() {
    let wire = Wire::new::<Customer>().expect("the domain's schemas parse");
    let fields = serde_json::json!({"refund_id": "r-1", "amount_cents": "abc", "reason": "late"});
    let error = wire
        .encode_command_json(command_header(), "IssueRefund", &fields)
        .expect_err("a string is no long");
    assert!(
        matches!(&error, WireError::Field(field) if field.path() == "amount_cents"),
        "{error}"
    );
    let unknown = wire.encode_command_json(command_header(), "Refund", &fields);
    assert!(matches!(unknown, Err(WireError::UnknownPayload(_))), "{unknown:?}");
}

/// A domain the codec knows only from schema documents: the second version of its one
/// command adds a nullable field.
const APPROVALS: [&str; 2] = [
    r#"{"type": "record", "name": "Decide", "namespace": "dev.keel.test.commands", "keel.schema_version": 1,
        "fields": [{"name": "decision", "type": {"type": "enum", "name": "Decision", "symbols": ["APPROVE", "REJECT"]}}]}"#,
    r#"{"type": "record", "name": "Decide", "namespace": "dev.keel.test.commands", "keel.schema_version": 2,
        "fields": [{"name": "decision", "type": {"type": "enum", "name": "Decision", "symbols": ["APPROVE", "REJECT"]}},
                   {"name": "note", "type": ["null", "string"], "default": null}]}"#,
];

#[derive(Debug, PartialEq, serde::Deserialize)]
enum Decision {
    #[serde(rename = "APPROVE")]
    Approve,
    #[serde(rename = "REJECT")]
    Reject,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
enum ApprovalCommand {
    Decide { decision: Decision, note: Option<String> },
}

#[test]
fn a_domain_known_only_by_its_schema_documents_encodes_its_current_version() {
    let wire = Wire::from_schemas(APPROVALS, "dev.keel.test.commands", "dev.keel.test.events").expect("parses");
    for (fields, expected) in [
        (
            serde_json::json!({"decision": "REJECT", "note": "over budget"}),
            ApprovalCommand::Decide {
                decision: Decision::Reject,
                note: Some("over budget".into()),
            },
        ),
        (
            serde_json::json!({"decision": "APPROVE"}),
            ApprovalCommand::Decide {
                decision: Decision::Approve,
                note: None,
            },
        ),
    ] {
        let bytes = wire
            .encode_command_json(command_header(), "Decide", &fields)
            .expect("encodes");
        let (envelope, command) = wire.decode_command::<ApprovalCommand>(&bytes).expect("decodes");
        assert_eq!(command, expected);
        assert_eq!(envelope.payload.schema_name, "dev.keel.test.commands.Decide");
        assert_eq!(envelope.payload.schema_version, 2);
    }
}

#[tokio::test]
async fn an_event_is_sealed_chained_and_opened_back() {
    let codec = codec();
    let first = codec.seal_event(&header(1), &registered(), &[]).await.expect("seals");
    let refund = SupportEvent::RefundIssued {
        customer_id: "c-1".into(),
        refund_id: "r-1".into(),
        amount_cents: 900,
        reason: "late".into(),
    };
    let second = codec.seal_event(&header(2), &refund, &first.hash).await.expect("seals");

    let bytes = codec.wire().encode_event(&first).expect("encodes");
    assert!(
        !bytes.windows(6).any(|w| w == b"Canary"),
        "no personal plaintext on the wire"
    );
    assert_eq!(first.data_subjects, ["c-1"]);
    let read = codec.wire().read_event(&bytes).expect("reads");
    let opened: OpenedEvent<SupportEvent> = codec.open_event(read).await.expect("opens");
    assert_eq!(opened.event, registered());
    assert!(opened.erased.is_empty());
    let opened: OpenedEvent<SupportEvent> = codec.open_event(second.clone()).await.expect("opens");
    assert_eq!(opened.event, refund);

    let verdict = verify_stream(&ChainHasher::new().expect("hasher"), &[first, second], None).expect("verifies");
    assert!(matches!(verdict, Verdict::Intact { version: 2, .. }), "{verdict:?}");
}

#[tokio::test]
async fn an_erased_subject_opens_as_erased_and_the_other_subject_stays_readable() {
    let codec = codec();
    let referral = SupportEvent::FriendReferred {
        customer_id: "c-1".into(),
        friend_id: "f-9".into(),
        friend_name: "Bob Friend".into(),
        friend_email: "bob@example.com".into(),
        message: "try it".into(),
    };
    let sealed = codec.seal_event(&header(1), &referral, &[]).await.expect("seals");
    codec.keys().erase_subject("acme", "f-9").await.expect("erases");
    let opened: OpenedEvent<SupportEvent> = codec.open_event(sealed).await.expect("opens");
    assert_eq!(opened.erased, ["friend_name", "friend_email"]);
    let SupportEvent::FriendReferred {
        friend_name, message, ..
    } = opened.event
    else {
        panic!("a referral")
    };
    assert_eq!(friend_name, "");
    assert_eq!(message, "try it");
}

#[tokio::test]
async fn a_flipped_ciphertext_byte_is_refused() {
    let codec = codec();
    let mut sealed = codec.seal_event(&header(1), &registered(), &[]).await.expect("seals");
    sealed.payload.ciphertext[0] ^= 1;
    let opened = codec.open_event::<SupportEvent>(sealed).await;
    assert!(matches!(opened, Err(WireError::Crypto(_))), "{opened:?}");
}

#[test]
fn the_actor_keeps_its_delegation_order_and_authorisation_across_the_wire() {
    use keel_auth::{Actor, ActorKind as Kind, Authorization};
    let agent = Actor {
        kind: Kind::Agent,
        id: "agent-7".into(),
    };
    let chain = [
        Actor {
            kind: Kind::Human,
            id: "sam".into(),
        },
        Actor {
            kind: Kind::Service,
            id: "triage".into(),
        },
    ];
    let authorization = Authorization {
        policy: "support".into(),
        rule: "agents-refund".into(),
        scope: Some("refunds:write".into()),
    };
    let wire = to_wire_actor(&agent, &chain, Some(&authorization));
    assert_eq!(wire.delegation[0].id, "triage", "nearest principal first on the wire");
    let (back, behalf, allowed) = from_wire_actor(&wire);
    assert_eq!(back, agent);
    assert_eq!(behalf, chain);
    assert_eq!(allowed, Some(authorization));
}

#[tokio::test]
async fn a_field_copied_out_of_an_event_opens_alone_until_its_subject_is_erased() {
    let codec = codec();
    let referred = SupportEvent::FriendReferred {
        customer_id: "c-1".into(),
        friend_id: "f-1".into(),
        friend_name: "Bob Canary".into(),
        friend_email: "bob@example.com".into(),
        message: "you will like it".into(),
    };
    let envelope = codec.seal_event(&header(1), &referred, &[]).await.expect("seals");
    let origin = FieldOrigin {
        tenant: &envelope.tenant_id,
        stream: &envelope.stream_id,
        event_id: &envelope.event_id,
        event_type: &envelope.event_type,
        schema_version: envelope.schema_version,
    };
    let field = |path: &str| {
        envelope
            .payload
            .sealed_fields
            .iter()
            .find(|field| field.path == path)
            .cloned()
            .expect("the field is sealed")
    };
    let name = codec.open_field(origin, &field("friend_name")).await.expect("opens");
    assert_eq!(name, Some(serde_json::json!("Bob Canary")));

    codec.keys().erase_subject("acme", "f-1").await.expect("erases");
    let name = codec.open_field(origin, &field("friend_name")).await.expect("opens");
    assert_eq!(name, None, "the friend's field is erased");
    let message = codec.open_field(origin, &field("message")).await.expect("opens");
    assert_eq!(
        message,
        Some(serde_json::json!("you will like it")),
        "the customer's stays readable"
    );

    let mut moved = field("message");
    moved.path = "friend_email".into();
    assert!(
        codec.open_field(origin, &moved).await.is_err(),
        "a field under another path does not open"
    );
}
