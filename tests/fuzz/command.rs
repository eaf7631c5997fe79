//! Commands and admin commands: `Wire::decode_command`.

use super::*;

/// The moment every credential of the fuzzer is judged at (seconds since the Unix epoch).
pub(super) const NOW: u64 = 1_800_000_000;
pub(super) const ISSUER: &str = "https://id.acme.example";
pub(super) const TENANT: &str = "acme";
pub(super) const HS256_SECRET: &[u8] = b"acme's shared secret for the fuzzer";

pub(super) fn agent() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "support-bot".into(),
    }
}

pub(super) fn supervisor() -> Actor {
    Actor {
        kind: ActorKind::Human,
        id: "alice".into(),
    }
}

pub(super) fn tenant_key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

/// The claims of the support agent acting for alice, valid at [`NOW`].
pub(super) fn agent_claims() -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: "support-bot".into(),
        tenant: TENANT.into(),
        actor_kind: ActorKind::Agent,
        on_behalf_of: vec![supervisor()],
        scopes: vec!["support:agent".into()],
        exp: NOW + 600,
        nbf: None,
        iat: None,
    }
}

/// A header of plausible values; `n` varies the ids and optional fields.
pub(super) fn plausible_header(
    n: u128,
    stream: &str,
    actor: &Actor,
    on_behalf_of: &[Actor],
    credential: &str,
) -> CommandHeader {
    let authorization = Authorization {
        policy: "acme/v1".into(),
        rule: "agents-refund".into(),
        scope: Some("support:agent".into()),
    };
    CommandHeader {
        command_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n),
        tenant: TENANT.into(),
        stream: stream.into(),
        expected_version: (!n.is_multiple_of(2)).then_some(n as u64),
        issued_at_micros: 1_800_000_000_000_000 + n as i64,
        actor: to_wire_actor(actor, on_behalf_of, (n % 3 == 2).then_some(&authorization)),
        credential: credential.into(),
        correlation_id: Uuid::from_u128(0x0190_0000_0000_7000_9000_0000_0000_0000 + n),
        causation_id: n
            .is_multiple_of(2)
            .then(|| Uuid::from_u128(0x0190_0000_0000_7000_a000_0000_0000_0000 + n)),
    }
}

pub(super) fn support_commands() -> Vec<SupportCommand> {
    let compensates = Uuid::from_u128(0x0190_0000_0000_7000_b000_0000_0000_0001);
    vec![
        SupportCommand::RegisterCustomer {
            customer_id: "c-42".into(),
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            address: "12 St James's Square, London".into(),
        },
        SupportCommand::DeleteCustomer {
            reason: "customer request".into(),
        },
        SupportCommand::SendEmail {
            email_id: "e-1".into(),
            to: "ada@example.com".into(),
            subject: "Your refund".into(),
            body: "Hello Ada,\nyour refund is on its way.".into(),
        },
        SupportCommand::ReferFriend {
            friend_id: "c-77".into(),
            friend_name: "Charles Babbage".into(),
            friend_email: "charles@example.com".into(),
            message: "You will like it".into(),
        },
        SupportCommand::StartSubscription {
            subscription_id: "s-1".into(),
            plan: "pro".into(),
        },
        SupportCommand::CancelSubscription {
            subscription_id: "s-1".into(),
            reason: "too expensive".into(),
        },
        SupportCommand::ReinstateSubscription {
            subscription_id: "s-1".into(),
            compensates,
        },
        SupportCommand::IssueRefund {
            refund_id: "r-1".into(),
            amount_cents: 1_250,
            reason: "late delivery".into(),
        },
        SupportCommand::ReverseRefund {
            refund_id: "r-1".into(),
            compensates,
        },
    ]
}

pub(super) fn random_support_command(rng: &mut StdRng) -> SupportCommand {
    match rng.gen_range(0..9) {
        0 => SupportCommand::RegisterCustomer {
            customer_id: id(rng),
            name: text(rng),
            email: text(rng),
            address: text(rng),
        },
        1 => SupportCommand::DeleteCustomer { reason: text(rng) },
        2 => SupportCommand::SendEmail {
            email_id: id(rng),
            to: text(rng),
            subject: text(rng),
            body: text(rng),
        },
        3 => SupportCommand::ReferFriend {
            friend_id: id(rng),
            friend_name: text(rng),
            friend_email: text(rng),
            message: text(rng),
        },
        4 => SupportCommand::StartSubscription {
            subscription_id: id(rng),
            plan: text(rng),
        },
        5 => SupportCommand::CancelSubscription {
            subscription_id: id(rng),
            reason: text(rng),
        },
        6 => SupportCommand::ReinstateSubscription {
            subscription_id: id(rng),
            compensates: uuid(rng),
        },
        7 => SupportCommand::IssueRefund {
            refund_id: id(rng),
            amount_cents: odd_i64(rng),
            reason: text(rng),
        },
        _ => SupportCommand::ReverseRefund {
            refund_id: id(rng),
            compensates: uuid(rng),
        },
    }
}

pub(super) fn random_admin_command(rng: &mut StdRng) -> AdminCommand {
    if rng.gen_bool(0.5) {
        AdminCommand::EraseSubject {
            subject: id(rng),
            reason: text(rng),
        }
    } else {
        AdminCommand::EraseTenant { reason: text(rng) }
    }
}

/// A signed credential of the support agent (the envelope carries it as text).
pub(super) fn agent_token() -> anyhow::Result<String> {
    TokenIssuer::ed25519("acme-ed", &tenant_key())
        .and_then(|issuer| issuer.issue(&agent_claims()))
        .map_err(anyhow::Error::msg)
}

/// Commands of domain `D`, decoded into `C` as a service of that domain does.
pub(super) struct CommandTarget<C> {
    pub(super) wire: Wire,
    pub(super) envelopes: SchemaRegistry,
    pub(super) corpus: Vec<Vec<u8>>,
    /// The corpus's command envelopes, decoded, to edit field by field.
    pub(super) templates: Vec<CommandEnvelope>,
    /// Their payloads' Avro bodies, to mutate.
    pub(super) payloads: Vec<Vec<u8>>,
    pub(super) credential: String,
    pub(super) random_command: fn(&mut StdRng) -> C,
}

impl CommandTarget<SupportCommand> {
    /// Support commands, with an admin command and an event as foreign seeds.
    pub(super) fn support() -> anyhow::Result<Self> {
        let credential = agent_token()?;
        let commands = support_commands()
            .into_iter()
            .enumerate()
            .map(|(n, command)| {
                let header = plausible_header(n as u128, "c-42", &agent(), &[supervisor()], &credential);
                (header, command)
            })
            .collect();
        let foreign = vec![admin_seeds(&credential)?.remove(0), sample_event_bytes()?];
        Self::new::<Customer>(commands, foreign, credential, random_support_command)
    }
}

impl CommandTarget<AdminCommand> {
    /// Admin commands, with a support command and an event as foreign seeds.
    pub(super) fn admin() -> anyhow::Result<Self> {
        let credential = agent_token()?;
        let header = plausible_header(1, "c-42", &agent(), &[supervisor()], &credential);
        let command = support_commands().remove(7);
        let foreign = vec![
            Wire::new::<Customer>()?.encode_command(header, &command)?,
            sample_event_bytes()?,
        ];
        let dpo = Actor {
            kind: ActorKind::Human,
            id: "dpo".into(),
        };
        let commands = vec![
            (
                plausible_header(2, "keel.erasure:c-42", &dpo, &[], &credential),
                AdminCommand::EraseSubject {
                    subject: "c-42".into(),
                    reason: "ticket DSR-7".into(),
                },
            ),
            (
                plausible_header(3, "keel.tenant-erasure", &dpo, &[], &credential),
                AdminCommand::EraseTenant {
                    reason: "contract ended".into(),
                },
            ),
        ];
        Self::new::<System>(commands, foreign, credential, random_admin_command)
    }
}

pub(super) fn admin_seeds(credential: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let dpo = Actor {
        kind: ActorKind::Human,
        id: "dpo".into(),
    };
    let header = plausible_header(4, "keel.erasure:c-42", &dpo, &[], credential);
    let command = AdminCommand::EraseSubject {
        subject: "c-42".into(),
        reason: "ticket DSR-7".into(),
    };
    Ok(vec![Wire::new::<System>()?.encode_command(header, &command)?])
}

impl<C: Serialize + DeserializeOwned> CommandTarget<C> {
    pub(super) fn new<D: WireSchemas>(
        commands: Vec<(CommandHeader, C)>,
        foreign: Vec<Vec<u8>>,
        credential: String,
        random_command: fn(&mut StdRng) -> C,
    ) -> anyhow::Result<Self> {
        let wire = Wire::new::<D>()?;
        let envelopes = SchemaRegistry::with_envelopes()?;
        let mut corpus = commands
            .into_iter()
            .map(|(header, command)| wire.encode_command(header, &command))
            .collect::<Result<Vec<_>, _>>()?;
        corpus.extend(foreign);
        let templates: Vec<CommandEnvelope> = corpus
            .iter()
            .filter_map(|seed| envelopes.decode(COMMAND_ENVELOPE, seed).ok())
            .collect();
        anyhow::ensure!(
            !templates.is_empty(),
            "no seed of the corpus decodes as a command envelope"
        );
        let payloads = templates.iter().map(|template| template.payload.data.clone()).collect();
        Ok(Self {
            wire,
            envelopes,
            corpus,
            templates,
            payloads,
            credential,
            random_command,
        })
    }

    pub(super) fn random_header(&self, rng: &mut StdRng) -> CommandHeader {
        CommandHeader {
            command_id: uuid(rng),
            tenant: id(rng),
            stream: id(rng),
            expected_version: rng.gen_bool(0.5).then(|| odd_i64(rng) as u64),
            issued_at_micros: odd_i64(rng),
            actor: wire_actor(rng),
            credential: if rng.gen_bool(0.7) {
                self.credential.clone()
            } else {
                text(rng)
            },
            correlation_id: uuid(rng),
            causation_id: rng.gen_bool(0.5).then(|| uuid(rng)),
        }
    }

    /// Edits one field of `envelope`, keeping it encodable.
    pub(super) fn edit(&self, rng: &mut StdRng, envelope: &mut CommandEnvelope) {
        match rng.gen_range(0..13) {
            0 => envelope.command_id = uuid(rng).to_string(),
            1 => envelope.tenant_id = text(rng),
            2 => envelope.stream_id = text(rng),
            3 => envelope.command_type = pick(rng, &self.templates).command_type.clone(),
            4 => envelope.command_type = text(rng),
            5 => envelope.expected_version = rng.gen_bool(0.7).then(|| odd_i64(rng)),
            6 => envelope.issued_at = odd_i64(rng),
            7 => envelope.actor = wire_actor(rng),
            8 => {
                let bytes = *pick(rng, &[8192, 8193, 9000, 65_536]);
                envelope.credential = if rng.gen_bool(0.5) {
                    "a".repeat(bytes)
                } else {
                    text(rng)
                };
            }
            9 => envelope.payload.schema_name = pick(rng, &self.templates).payload.schema_name.clone(),
            10 => envelope.payload.schema_version = odd_i32(rng),
            11 => {
                let mutator = Mutator::new(&self.payloads);
                mutator.mutate(rng, &mut envelope.payload.data, 4);
            }
            _ => {
                envelope.payload.data = if rng.gen_bool(0.5) {
                    pick(rng, &self.payloads).clone()
                } else {
                    random_bytes(rng, 256)
                };
            }
        }
    }
}

impl<C: Serialize + DeserializeOwned> Decoder for CommandTarget<C> {
    fn corpus(&self) -> &[Vec<u8>] {
        &self.corpus
    }

    fn generate(&mut self, rng: &mut StdRng) -> Option<Vec<u8>> {
        if rng.gen_bool(0.4) {
            let header = self.random_header(rng);
            let command = (self.random_command)(rng);
            return self.wire.encode_command(header, &command).ok();
        }
        let mut envelope = pick(rng, &self.templates).clone();
        for _ in 0..rng.gen_range(1..=3) {
            self.edit(rng, &mut envelope);
        }
        self.envelopes.encode(COMMAND_ENVELOPE, &envelope).ok()
    }

    fn feed(&self, input: &[u8]) -> Result<Answer, String> {
        match self.wire.decode_command::<C>(input) {
            Ok((envelope, _command)) => within_bounds(&envelope).map(|()| Answer::Accepted),
            Err(refused) => {
                // The handler names the error in its result and the dead letter.
                let _ = refused.error.to_string();
                Ok(Answer::Refused)
            }
        }
    }
}

/// An accepted envelope holds ids of the grammar, a bounded delegation and credential.
pub(super) fn within_bounds(envelope: &CommandEnvelope) -> Result<(), String> {
    let mut ids: Vec<(&str, &str)> = vec![
        ("command_id", &envelope.command_id),
        ("correlation_id", &envelope.correlation_id),
        ("tenant_id", &envelope.tenant_id),
        ("command_type", &envelope.command_type),
        ("payload.schema_name", &envelope.payload.schema_name),
        ("actor.id", &envelope.actor.id),
    ];
    ids.extend(envelope.causation_id.as_deref().map(|id| ("causation_id", id)));
    ids.extend(
        envelope
            .actor
            .delegation
            .iter()
            .map(|principal| ("actor.delegation.id", principal.id.as_str())),
    );
    if let Some((field, _)) = ids.iter().find(|(_, id)| !id_shaped(id, keel_ids::MAX_ID_BYTES)) {
        return Err(format!("an accepted command has a {field} outside the id grammar"));
    }
    if !id_shaped(
        &envelope.stream_id,
        keel_ids::MAX_ID_BYTES + keel_ids::MAX_SYSTEM_PREFIX_BYTES,
    ) {
        return Err("an accepted command has a stream_id outside the id grammar".into());
    }
    if envelope.actor.delegation.len() > keel_codec::bounds::MAX_DELEGATION {
        return Err(format!(
            "an accepted command acts for {} actors",
            envelope.actor.delegation.len()
        ));
    }
    if envelope.credential.len() > keel_codec::bounds::MAX_CREDENTIAL_BYTES {
        return Err(format!(
            "an accepted command carries a credential of {} bytes",
            envelope.credential.len()
        ));
    }
    Ok(())
}

/// Whether `id` has the shape of an id of at most `max` bytes: a letter or digit first, then
/// letters, digits and `- _ . : @ + = ~` (keel-ids's grammar, restated for the oracle).
pub(super) fn id_shaped(id: &str, max: usize) -> bool {
    id.len() <= max
        && id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:@+=~".contains(&byte))
}
