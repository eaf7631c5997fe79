//! The verifier catches edits, removals, reorders, insertions, truncation and rewrites.

use keel_chain::{
    BreakKind, ChainError, ChainHasher, Checkpoint, CheckpointSigner, GENESIS, Verdict, parse_key, publish_key,
    verify_stream,
};
use keel_envelope::{Actor, ActorKind, EventEnvelope, SealedPayload};
use proptest::prelude::*;

fn event(version: i64, body: &[u8]) -> EventEnvelope {
    EventEnvelope {
        event_id: format!("00000000-0000-7000-8000-{:06x}{:06x}", version, body.len()),
        tenant_id: "acme".into(),
        stream_id: "account-1".into(),
        stream_version: version,
        event_type: "Deposited".into(),
        schema_version: 1,
        recorded_at: 1_700_000_000_000_000 + version,
        command_id: format!("00000000-0000-7000-9000-{version:012x}"),
        correlation_id: "00000000-0000-7000-a000-000000000000".into(),
        actor: Actor {
            kind: ActorKind::Service,
            id: "svc".into(),
            delegation: vec![],
            authorization: None,
        },
        data_subjects: vec![],
        key_refs: vec![],
        payload: SealedPayload {
            schema_name: "dev.keel.test.Deposited".into(),
            key_id: "t1".into(),
            nonce: vec![0; 12],
            ciphertext: body.to_vec(),
            sealed_fields: vec![],
        },
        compensates: None,
        prev_hash: vec![],
        hash: vec![],
    }
}

fn chain(hasher: &ChainHasher, bodies: &[Vec<u8>]) -> Result<Vec<EventEnvelope>, ChainError> {
    let mut prev = GENESIS;
    let mut out = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let mut e = event(i as i64 + 1, body);
        prev = hasher.link(&mut e, &prev)?;
        out.push(e);
    }
    Ok(out)
}

fn kind(verdict: Verdict) -> Option<BreakKind> {
    match verdict {
        Verdict::Intact { .. } => None,
        Verdict::Broken(b) => Some(b.kind),
    }
}

fn bodies() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..32), 3..12)
}

fn fail(e: ChainError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn an_untouched_chain_verifies(bodies in bodies()) {
        let h = ChainHasher::new().map_err(fail)?;
        let events = chain(&h, &bodies).map_err(fail)?;
        let verdict = verify_stream(&h, &events, None).map_err(fail)?;
        prop_assert_eq!(kind(verdict), None);
    }

    #[test]
    fn an_edited_event_is_caught(bodies in bodies(), at in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>()) {
        let h = ChainHasher::new().map_err(fail)?;
        let mut events = chain(&h, &bodies).map_err(fail)?;
        let i = at.index(events.len());
        let ct = &mut events[i].payload.ciphertext;
        let j = byte.index(ct.len());
        ct[j] ^= 0x01;
        prop_assert_eq!(kind(verify_stream(&h, &events, None).map_err(fail)?), Some(BreakKind::Edited));
    }

    #[test]
    fn a_removed_event_is_caught(bodies in bodies(), at in any::<prop::sample::Index>()) {
        let h = ChainHasher::new().map_err(fail)?;
        let mut events = chain(&h, &bodies).map_err(fail)?;
        // Removing the last event is a truncation, covered below.
        let i = at.index(events.len() - 1);
        events.remove(i);
        prop_assert_eq!(kind(verify_stream(&h, &events, None).map_err(fail)?), Some(BreakKind::Removed));
    }

    #[test]
    fn reordered_events_are_caught(bodies in bodies(), at in any::<prop::sample::Index>()) {
        let h = ChainHasher::new().map_err(fail)?;
        let mut events = chain(&h, &bodies).map_err(fail)?;
        let i = at.index(events.len() - 1);
        events.swap(i, i + 1);
        prop_assert_eq!(kind(verify_stream(&h, &events, None).map_err(fail)?), Some(BreakKind::Reordered));
    }

    #[test]
    fn an_inserted_event_is_caught(bodies in bodies(), at in any::<prop::sample::Index>(), forged in proptest::collection::vec(any::<u8>(), 1..32), linked in any::<bool>()) {
        let h = ChainHasher::new().map_err(fail)?;
        let mut events = chain(&h, &bodies).map_err(fail)?;
        let i = at.index(events.len());
        // A forger who links properly to its predecessor and repeats a version, or one who
        // cannot: either way the event does not belong.
        let mut e = event(i as i64 + 1, &forged);
        let prev: [u8; 32] = if i == 0 || !linked { [7; 32] } else { events[i - 1].hash.clone().try_into().map_err(|_| TestCaseError::fail("hash"))? };
        h.link(&mut e, &prev).map_err(fail)?;
        prop_assume!(i > 0 || !linked);
        events.insert(i, e);
        prop_assert_eq!(kind(verify_stream(&h, &events, None).map_err(fail)?), Some(BreakKind::Inserted));
    }

    #[test]
    fn a_truncated_tail_is_caught_against_a_checkpoint(bodies in bodies(), cut in 1usize..3) {
        let h = ChainHasher::new().map_err(fail)?;
        let mut events = chain(&h, &bodies).map_err(fail)?;
        let signer = CheckpointSigner::generate(1);
        let last = &events[events.len() - 1];
        let head: [u8; 32] = last.hash.clone().try_into().map_err(|_| TestCaseError::fail("hash"))?;
        let cp = signer.sign(Checkpoint { tenant: "acme".into(), stream: "account-1".into(), version: last.stream_version, head });
        events.truncate(events.len() - cut);
        let key = signer.verifying_key();
        prop_assert_eq!(kind(verify_stream(&h, &events, Some((&cp, &key))).map_err(fail)?), Some(BreakKind::TruncatedTail));
    }

    #[test]
    fn a_rewritten_chain_is_caught_by_its_checkpoint(bodies in bodies(), other in proptest::collection::vec(any::<u8>(), 1..32)) {
        let h = ChainHasher::new().map_err(fail)?;
        let events = chain(&h, &bodies).map_err(fail)?;
        let signer = CheckpointSigner::generate(1);
        let head: [u8; 32] = events[events.len() - 1].hash.clone().try_into().map_err(|_| TestCaseError::fail("hash"))?;
        let cp = signer.sign(Checkpoint { tenant: "acme".into(), stream: "account-1".into(), version: events.len() as i64, head });
        let mut rewritten_bodies = bodies.clone();
        prop_assume!(rewritten_bodies[0] != other);
        rewritten_bodies[0] = other;
        let rewritten = chain(&h, &rewritten_bodies).map_err(fail)?;
        let key = signer.verifying_key();
        prop_assert_eq!(kind(verify_stream(&h, &rewritten, None).map_err(fail)?), None);
        prop_assert_eq!(kind(verify_stream(&h, &rewritten, Some((&cp, &key))).map_err(fail)?), Some(BreakKind::Rewritten));
    }
}

#[test]
fn a_checkpoint_with_a_bad_signature_is_rejected() -> Result<(), ChainError> {
    let h = ChainHasher::new()?;
    let events = chain(&h, &[vec![1], vec![2]])?;
    let signer = CheckpointSigner::generate(2);
    assert!(signer.due(2) && !signer.due(3));
    let mut cp = signer.sign(Checkpoint {
        tenant: "acme".into(),
        stream: "account-1".into(),
        version: 2,
        head: [0; 32],
    });
    cp.checkpoint.version = 1;
    let key = parse_key(&publish_key(&signer.verifying_key()))?;
    assert!(matches!(
        verify_stream(&h, &events, Some((&cp, &key))),
        Err(ChainError::BadSignature { .. })
    ));
    Ok(())
}
