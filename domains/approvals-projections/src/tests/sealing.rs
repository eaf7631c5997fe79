//! Events sealed by the real codec, opened as the projector opens them (personal fields left
//! sealed): the rows carry the beneficiary's fields only as the event's ciphertext, which
//! opens with the beneficiary's key and not after it is destroyed.

use std::sync::Arc;

use keel_approvals::{ActionKind, ApprovalDesk, ApprovalEvent, Risk};
use keel_codec::{EventCodec, EventHeader, FieldOrigin};
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, RotationPolicy};
use keel_envelope::{Actor, ActorKind, Upcasters};
use uuid::Uuid;

use crate::LoggedEvent;
use crate::plan::{Write, plan};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn the_beneficiarys_fields_reach_the_rows_only_sealed() -> TestResult {
    let keys = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    let codec = EventCodec::<_, _>::new::<ApprovalDesk>(Arc::new(keys), Upcasters::new())?;
    let proposed = ApprovalEvent::ActionProposed {
        action_id: "a-1".into(),
        kind: ActionKind::Payout,
        amount_cents: 50_000,
        risk: Risk::High,
        beneficiary_id: "b-1".into(),
        beneficiary_name: "Ada Canary".into(),
        beneficiary_account: "GB33BUKB20201555555555".into(),
        summary: "Invoice 42".into(),
    };
    let header = EventHeader {
        tenant: "acme",
        stream: "payouts",
        version: 2,
        recorded_at_micros: 1_772_409_599_000_000,
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        actor: Actor {
            kind: ActorKind::Agent,
            id: "agent-7".into(),
            delegation: vec![],
            authorization: None,
        },
        compensates: None,
    };
    let envelope = codec.seal_event(&header, &proposed, &[]).await?;
    let opened = codec.open_event_payload::<ApprovalEvent>(envelope.clone()).await?;
    let logged = LoggedEvent {
        partition: 0,
        offset: 7,
        bytes: &[],
        envelope: &envelope,
        event: Some(&opened.event),
    };
    let writes = plan(&[logged])?;

    let rendered = format!("{writes:?}");
    for plaintext in ["Ada Canary", "GB33BUKB", "Canary"] {
        assert!(!rendered.contains(plaintext), "{plaintext} reached a row");
    }
    let Some(Write::ActionProposed(row)) = writes.first() else {
        return Err(format!("{writes:#?}").into());
    };
    let origin = FieldOrigin {
        tenant: &envelope.tenant_id,
        stream: &envelope.stream_id,
        event_id: &row.beneficiary_name.event_id,
        event_type: &row.beneficiary_name.event_type,
        schema_version: row.beneficiary_name.schema_version,
    };
    let name = codec.open_field(origin, &row.beneficiary_name.sealed()).await?;
    assert_eq!(name, Some(serde_json::json!("Ada Canary")));
    let account = codec.open_field(origin, &row.beneficiary_account.sealed()).await?;
    assert_eq!(account, Some(serde_json::json!("GB33BUKB20201555555555")));
    assert_eq!(row.beneficiary_name.subject_id, "b-1");

    codec.keys().erase_subject("acme", "b-1").await?;
    assert_eq!(codec.open_field(origin, &row.beneficiary_name.sealed()).await?, None);
    Ok(())
}
