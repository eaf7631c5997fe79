//! Event envelopes: `Wire::read_event`.

use super::*;

pub(super) fn sample_event(n: u128, compensates: bool, sealed_fields: usize) -> EventEnvelope {
    let subject_key = "acme/subject/c-42/1".to_owned();
    EventEnvelope {
        event_id: Uuid::from_u128(0x0190_0000_0000_7000_c000_0000_0000_0000 + n).to_string(),
        tenant_id: TENANT.into(),
        stream_id: "c-42".into(),
        stream_version: 7 + n as i64,
        event_type: "RefundIssued".into(),
        schema_version: 1,
        recorded_at: 1_800_000_000_000_000,
        command_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n).to_string(),
        correlation_id: Uuid::from_u128(0x0190_0000_0000_7000_9000_0000_0000_0000 + n).to_string(),
        actor: keel_envelope::Actor {
            kind: keel_envelope::ActorKind::Agent,
            id: "support-bot".into(),
            delegation: vec![keel_envelope::ActorRef {
                kind: keel_envelope::ActorKind::Human,
                id: "alice".into(),
            }],
            authorization: Some(keel_envelope::Authorization {
                policy: "acme/v1/agents-refund".into(),
                scope: "support:agent".into(),
            }),
        },
        data_subjects: vec!["c-42".into()],
        key_refs: vec![
            KeyRef {
                key_id: "acme/tenant/3".into(),
                scope: KeyScope::Tenant,
                subject_id: None,
                version: 3,
            },
            KeyRef {
                key_id: subject_key.clone(),
                scope: KeyScope::Subject,
                subject_id: Some("c-42".into()),
                version: 1,
            },
        ],
        payload: SealedPayload {
            schema_name: "dev.keel.support.events.RefundIssued".into(),
            key_id: "acme/tenant/3".into(),
            nonce: vec![7; 12],
            ciphertext: (0..48).collect(),
            sealed_fields: (0..sealed_fields)
                .map(|field| SealedField {
                    path: if field == 0 {
                        "reason".into()
                    } else {
                        format!("field{field}")
                    },
                    subject_id: "c-42".into(),
                    key_id: subject_key.clone(),
                    nonce: vec![9; 12],
                    ciphertext: vec![0x5a; 32],
                })
                .collect(),
        },
        compensates: compensates.then(|| Uuid::from_u128(0x0190_0000_0000_7000_d000_0000_0000_0000).to_string()),
        prev_hash: vec![0; 32],
        hash: vec![0xab; 32],
    }
}

pub(super) fn sample_event_bytes() -> anyhow::Result<Vec<u8>> {
    Ok(Wire::new::<Customer>()?.encode_event(&sample_event(0, false, 1))?)
}

/// Event envelopes as the log holds them, read without keys.
pub(super) struct EventTarget {
    pub(super) wire: Wire,
    pub(super) corpus: Vec<Vec<u8>>,
    pub(super) templates: Vec<EventEnvelope>,
}

impl EventTarget {
    pub(super) fn new() -> anyhow::Result<Self> {
        let wire = Wire::new::<Customer>()?;
        let templates = vec![
            sample_event(0, false, 1),
            sample_event(1, true, 0),
            sample_event(2, false, 3),
        ];
        let mut corpus = templates
            .iter()
            .map(|event| wire.encode_event(event))
            .collect::<Result<Vec<_>, _>>()?;
        let credential = agent_token()?;
        let header = plausible_header(5, "c-42", &agent(), &[supervisor()], &credential);
        corpus.push(wire.encode_command(header, &support_commands().remove(0))?);
        corpus.extend(admin_seeds(&credential)?);
        Ok(Self {
            wire,
            corpus,
            templates,
        })
    }

    pub(super) fn edit(rng: &mut StdRng, event: &mut EventEnvelope) {
        match rng.gen_range(0..14) {
            0 => event.event_id = uuid(rng).to_string(),
            1 => event.tenant_id = text(rng),
            2 => event.stream_id = text(rng),
            3 => event.stream_version = odd_i64(rng),
            4 => event.event_type = text(rng),
            5 => event.schema_version = odd_i32(rng),
            6 => event.recorded_at = odd_i64(rng),
            7 => event.actor = wire_actor(rng),
            8 => event.data_subjects = (0..rng.gen_range(0..=64)).map(|_| text(rng)).collect(),
            9 => {
                event.key_refs = (0..rng.gen_range(0..=20))
                    .map(|_| KeyRef {
                        key_id: text(rng),
                        scope: if rng.gen_bool(0.5) {
                            KeyScope::Tenant
                        } else {
                            KeyScope::Subject
                        },
                        subject_id: rng.gen_bool(0.5).then(|| text(rng)),
                        version: odd_i32(rng),
                    })
                    .collect();
            }
            10 => {
                event.payload.schema_name = text(rng);
                event.payload.key_id = text(rng);
                event.payload.nonce = random_bytes(rng, 64);
                event.payload.ciphertext = random_bytes(rng, 8192);
            }
            11 => {
                event.payload.sealed_fields = (0..rng.gen_range(0..=10))
                    .map(|_| SealedField {
                        path: text(rng),
                        subject_id: text(rng),
                        key_id: text(rng),
                        nonce: random_bytes(rng, 32),
                        ciphertext: random_bytes(rng, 512),
                    })
                    .collect();
            }
            12 => event.compensates = rng.gen_bool(0.7).then(|| uuid(rng).to_string()),
            _ => {
                let lengths = [0, 31, 32, 33, 64, 4096];
                event.prev_hash = vec![0xcd; *pick(rng, &lengths)];
                event.hash = random_bytes(rng, 64);
            }
        }
    }
}

impl Decoder for EventTarget {
    fn corpus(&self) -> &[Vec<u8>] {
        &self.corpus
    }

    fn generate(&mut self, rng: &mut StdRng) -> Option<Vec<u8>> {
        let mut event = pick(rng, &self.templates).clone();
        for _ in 0..rng.gen_range(1..=4) {
            Self::edit(rng, &mut event);
        }
        self.wire.encode_event(&event).ok()
    }

    fn feed(&self, input: &[u8]) -> Result<Answer, String> {
        match self.wire.read_event(input) {
            // What is read is what was written: encoding it again reads back the same.
            Ok(event) => match self.wire.encode_event(&event).map(|bytes| self.wire.read_event(&bytes)) {
                Ok(Ok(again)) if again == event => Ok(Answer::Accepted),
                Ok(Ok(_)) => Err("an event read, written and read again differs".into()),
                Ok(Err(error)) => Err(format!("an event read and written again does not read: {error}")),
                Err(error) => Err(format!("an event read does not encode again: {error}")),
            },
            Err(error) => {
                let _ = error.to_string();
                Ok(Answer::Refused)
            }
        }
    }
}
