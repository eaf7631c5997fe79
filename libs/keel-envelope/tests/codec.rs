//! Envelope round trips, pinned fingerprints and decoder robustness.

use keel_envelope::{
    Actor, ActorKind, ActorRef, Authorization, COMMAND_ENVELOPE, CommandEnvelope, CommandPayload, EVENT_ENVELOPE,
    EnvelopeError, EventEnvelope, KeyRef, KeyScope, SchemaRegistry, SealedField, SealedPayload,
};
use proptest::prelude::*;

fn actor() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "agent-7".into(),
        delegation: vec![ActorRef {
            kind: ActorKind::Human,
            id: "alice".into(),
        }],
        authorization: Some(Authorization {
            policy: "support-agent".into(),
            scope: "refunds".into(),
        }),
    }
}

fn event() -> EventEnvelope {
    EventEnvelope {
        event_id: "0193a0c4-0000-7000-8000-000000000001".into(),
        tenant_id: "acme".into(),
        stream_id: "customer-1".into(),
        stream_version: 1,
        event_type: "CustomerRegistered".into(),
        schema_version: 1,
        recorded_at: 1_732_000_000_000_000,
        command_id: "0193a0c4-0000-7000-8000-000000000002".into(),
        correlation_id: "0193a0c4-0000-7000-8000-000000000003".into(),
        actor: actor(),
        data_subjects: vec!["customer-1".into()],
        key_refs: vec![KeyRef {
            key_id: "k1".into(),
            scope: KeyScope::Subject,
            subject_id: Some("customer-1".into()),
            version: 1,
        }],
        payload: SealedPayload {
            schema_name: "dev.keel.support.events.CustomerRegistered".into(),
            key_id: "t1".into(),
            nonce: vec![1; 12],
            ciphertext: vec![2; 40],
            sealed_fields: vec![SealedField {
                path: "name".into(),
                subject_id: "customer-1".into(),
                key_id: "k1".into(),
                nonce: vec![3; 12],
                ciphertext: vec![4; 20],
            }],
        },
        compensates: None,
        prev_hash: vec![0; 32],
        hash: vec![9; 32],
    }
}

#[test]
fn event_envelope_round_trips_through_single_object_encoding() -> Result<(), EnvelopeError> {
    let registry = SchemaRegistry::with_envelopes()?;
    let bytes = registry.encode(EVENT_ENVELOPE, &event())?;
    assert_eq!(bytes[..2], [0xC3, 0x01]);
    let back: EventEnvelope = registry.decode(EVENT_ENVELOPE, &bytes)?;
    assert_eq!(back, event());
    Ok(())
}

#[test]
fn command_envelope_round_trips_through_single_object_encoding() -> Result<(), EnvelopeError> {
    let registry = SchemaRegistry::with_envelopes()?;
    let cmd = CommandEnvelope {
        command_id: "0193a0c4-0000-7000-8000-00000000000a".into(),
        tenant_id: "acme".into(),
        stream_id: "customer-1".into(),
        command_type: "RegisterCustomer".into(),
        expected_version: Some(3),
        issued_at: 1_732_000_000_000_000,
        actor: actor(),
        credential: "eyJ...".into(),
        correlation_id: "0193a0c4-0000-7000-8000-00000000000b".into(),
        causation_id: None,
        payload: CommandPayload {
            schema_name: "dev.keel.X".into(),
            schema_version: 1,
            data: vec![1, 2, 3],
        },
    };
    let bytes = registry.encode(COMMAND_ENVELOPE, &cmd)?;
    let back: CommandEnvelope = registry.decode(COMMAND_ENVELOPE, &bytes)?;
    assert_eq!(back, cmd);
    Ok(())
}

#[test]
fn computed_fingerprints_match_the_pinned_file() -> Result<(), EnvelopeError> {
    let registry = SchemaRegistry::with_envelopes()?;
    let pinned: serde_json::Value =
        serde_json::from_str(keel_envelope::PINNED_FINGERPRINTS).map_err(|e| EnvelopeError::InvalidSchema {
            name: "fingerprints.json".into(),
            reason: e.to_string(),
        })?;
    let mut count = 0;
    for schema in registry.pinned() {
        let key = format!("{}.v{}", schema.name, schema.version);
        let expected = pinned.get(&key).and_then(|v| v.as_str());
        assert_eq!(expected, Some(format!("{:016x}", schema.fingerprint).as_str()), "{key}");
        count += 1;
    }
    assert_eq!(pinned.as_object().map(|o| o.len()), Some(count));
    Ok(())
}

#[test]
fn unknown_fingerprint_is_a_typed_error() -> Result<(), EnvelopeError> {
    let registry = SchemaRegistry::with_envelopes()?;
    let mut bytes = registry.encode(EVENT_ENVELOPE, &event())?;
    bytes[2] ^= 0xff;
    let err = registry.decode::<EventEnvelope>(EVENT_ENVELOPE, &bytes).err();
    assert!(matches!(err, Some(EnvelopeError::UnknownFingerprint(_))), "{err:?}");
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let registry = SchemaRegistry::with_envelopes().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = registry.decode::<EventEnvelope>(EVENT_ENVELOPE, &bytes);
    }

    #[test]
    fn garbage_after_a_valid_header_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let registry = SchemaRegistry::with_envelopes().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let good = registry.encode(EVENT_ENVELOPE, &event()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut bytes = good[..10].to_vec();
        bytes.extend_from_slice(&body);
        prop_assume!(bytes != good);
        // Garbage can happen to be valid Avro, so only the absence of a panic is asserted.
        let _ = registry.decode::<EventEnvelope>(EVENT_ENVELOPE, &bytes);
    }

    #[test]
    fn any_truncation_of_a_message_fails_to_decode(cut in 0usize..200) {
        let registry = SchemaRegistry::with_envelopes().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let good = registry.encode(EVENT_ENVELOPE, &event()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cut = cut % good.len();
        prop_assert!(registry.decode::<EventEnvelope>(EVENT_ENVELOPE, &good[..cut]).is_err());
    }
}
