//! The badge's commands and events through Keel's codec as the runtimes carry them, against
//! the schema files in `schemas/badges/`: commands in their envelope, events sealed with
//! in-memory keys (the visitor's name under the visitor's own key); a command of another
//! domain refused `unknown_command`; and the tenants-file rule of `dev/policy-rule.json`.

use std::sync::Arc;

use keel_auth::{ActorKind as Kind, Policy, PolicyRule, Principal};
use keel_badges::{Badge, BadgeCommand, BadgeEvent};
use keel_codec::{CommandHeader, EventCodec, EventHeader, OpenedEvent, Wire};
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, RotationPolicy};
use keel_domain::{DomainCommand, DomainEvent};
use keel_envelope::{Actor, ActorKind, Upcasters};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn frank() -> Actor {
    Actor {
        kind: ActorKind::Human,
        id: "frank".into(),
        delegation: vec![],
        authorization: None,
    }
}

fn header() -> CommandHeader {
    CommandHeader {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "b-7".into(),
        expected_version: None,
        issued_at_micros: 1_700_000_000_000_000,
        actor: frank(),
        credential: "token".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    }
}

fn every_command() -> [BadgeCommand; 2] {
    [
        BadgeCommand::IssueBadge {
            badge_id: "b-7".into(),
            visitor_id: "v-ada".into(),
            visitor_name: "Ada Lovelace".into(),
        },
        BadgeCommand::ReturnBadge {
            reason: "visit over".into(),
        },
    ]
}

#[test]
fn every_command_round_trips_through_its_schema() -> TestResult {
    let wire = Wire::new::<Badge>()?;
    for command in every_command() {
        let bytes = wire.encode_command(header(), &command)?;
        let (envelope, decoded) = wire
            .decode_command::<BadgeCommand>(&bytes)
            .map_err(|error| format!("{}: {}", command.command_type(), error.error))?;
        assert_eq!(decoded, command);
        assert_eq!(
            envelope.payload.schema_name,
            format!("dev.keel.badges.commands.{}", command.command_type())
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_event_round_trips_sealed_with_the_name_under_the_visitors_key() -> TestResult {
    let keys = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    let codec = EventCodec::new::<Badge>(Arc::new(keys), Upcasters::new())?;
    let events = [
        BadgeEvent::BadgeIssued {
            badge_id: "b-7".into(),
            visitor_id: "v-ada".into(),
            visitor_name: "Ada Lovelace".into(),
        },
        BadgeEvent::BadgeReturned {
            compensates: Uuid::now_v7(),
            reason: "visit over".into(),
        },
    ];
    let mut prev_hash = Vec::new();
    for (version, event) in (1..).zip(events) {
        let header = EventHeader {
            tenant: "acme",
            stream: "b-7",
            version,
            recorded_at_micros: 1_700_000_000_000_000,
            command_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            actor: frank(),
            compensates: event.compensates(),
        };
        let sealed = codec.seal_event(&header, &event, &prev_hash).await?;
        prev_hash.clone_from(&sealed.hash);
        let bytes = codec.wire().encode_event(&sealed)?;
        assert!(
            !bytes.windows(8).any(|window| window == b"Lovelace"),
            "no plaintext name"
        );
        let fields: Vec<(&str, &str)> = (sealed.payload.sealed_fields.iter())
            .map(|field| (field.path.as_str(), field.subject_id.as_str()))
            .collect();
        match event {
            BadgeEvent::BadgeIssued { .. } => assert_eq!(fields, [("visitor_name", "v-ada")]),
            BadgeEvent::BadgeReturned { compensates, .. } => {
                assert!(fields.is_empty());
                assert_eq!(sealed.compensates, Some(compensates.to_string()));
            }
        }
        let opened: OpenedEvent<BadgeEvent> = codec.open_event(codec.wire().read_event(&bytes)?).await?;
        assert_eq!(opened.event, event);
    }
    Ok(())
}

#[test]
fn a_command_of_another_domain_is_refused_unknown_command() -> TestResult {
    let approvals = Wire::from_schemas(
        [include_str!("../../../schemas/approvals/commands/DenyAction.v1.avsc")],
        "dev.keel.approvals.commands",
        "dev.keel.approvals.events",
    )?;
    let fields = serde_json::json!({"action_id": "a-1", "reason": "not ours"});
    let bytes = approvals.encode_command_json(header(), "DenyAction", &fields)?;
    let refused = Wire::new::<Badge>()?.decode_command::<BadgeCommand>(&bytes).err();
    assert_eq!(refused.map(|refusal| refusal.error.code()), Some("unknown_command"));
    Ok(())
}

#[test]
fn the_front_desk_rule_lets_people_with_its_scope_issue_and_return_badges() -> TestResult {
    let rule: PolicyRule = serde_json::from_str(include_str!("../dev/policy-rule.json"))?;
    let policy = Policy {
        id: "acme/dev-v1".into(),
        rules: vec![rule],
        reads: Vec::new(),
    };
    let principal = |kind, scopes: &[&str]| Principal {
        tenant: "acme".into(),
        actor: keel_auth::Actor {
            kind,
            id: "frank".into(),
        },
        on_behalf_of: vec![],
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
    };
    for command in every_command() {
        let allowed = policy.authorize(&principal(Kind::Human, &["badges:desk"]), &command)?;
        assert_eq!(allowed.rule, "front-desk");
        for refused in [principal(Kind::Human, &[]), principal(Kind::Agent, &["badges:desk"])] {
            let refusal = policy.authorize(&refused, &command).err();
            assert_eq!(refusal.map(|error| error.code()), Some("not_permitted"));
        }
    }
    Ok(())
}
