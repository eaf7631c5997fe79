//! Erasure end to end on the real servers: customers in two tenants, an event carrying two
//! subjects' personal data, one subject erased through `keel admin erase` and the admin
//! service. Afterwards exactly that subject's personal fields read as erased (in the API,
//! and after a rebuild from the log), everything else reads as before, the chain still
//! verifies, the certificate verifies and a tampered one does not, a repeated erase changes
//! nothing, and the handler goes on deciding (a replay passes the system event).
//!
//! And erasure that holds against copies on disk: after erase and `keel admin rotate`, no
//! key the system can still reach opens the subject's old ciphertext or unwraps an old copy
//! of its key, and no raw file of the events topic or of Cassandra holds the plaintext.

use std::future::pending;
use std::time::Duration;

use keel_cli::admin::{erase, erase_tenant};
use keel_cli::demo::personal;
use keel_customer_support::SupportCommand;
use keel_erasure::certificate::{CertificateError, verify, verifying_key_from_hex};
use keel_erasure::erasure_stream;
use keel_integration_tests::forensics::{CapturedLogs, cassandra_dir, files_containing, flush_cql, kafka_topic_dirs};
use keel_integration_tests::handler_harness::{
    HandlerHarness, TestCommand, admin_send_args, agent_command, agent_credential, erase_args,
};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_projector::rebuild::{RebuildArgs, rebuild};
use keel_results::{CommandResult, LogPosition, Outcome};
use keel_testkit::{TestResult, unique_name};
use serde_json::Value;
use uuid::Uuid;

/// A handler, the read side and an admin service over `partitions` partitions.
struct Stage {
    harness: HandlerHarness,
    base: String,
    admin_topic: String,
    /// The certificate key's public half.
    public_file: std::path::PathBuf,
    _directory: tempfile::TempDir,
}

async fn stage(partitions: i32) -> TestResult<Stage> {
    let harness = HandlerHarness::start(partitions).await?;
    let base = start_read_side(&harness).await?;
    let directory = tempfile::tempdir()?;
    let (key_file, public_file) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, pending::<()>()));
    Ok(Stage {
        harness,
        base,
        admin_topic,
        public_file,
        _directory: directory,
    })
}

/// Sends `command` and returns where its last event sits.
async fn accepted(harness: &HandlerHarness, command: &TestCommand) -> TestResult<LogPosition> {
    harness.send(command).await?;
    let result = harness.result_of(command.command_id).await?;
    position_of(&result)
}

fn position_of(result: &CommandResult) -> TestResult<LogPosition> {
    result
        .accepted_at()
        .ok_or_else(|| anyhow::anyhow!("{:?} was not accepted: {:?}", result.command_type, result.outcome))
}

fn register(customer: &str, name: &str) -> SupportCommand {
    SupportCommand::RegisterCustomer {
        customer_id: customer.to_owned(),
        name: name.to_owned(),
        email: format!("{customer}@example.com"),
        address: format!("{name}'s street"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_subject_hides_exactly_its_personal_data_and_is_certified() -> TestResult {
    let Stage {
        mut harness,
        base,
        admin_topic,
        public_file,
        _directory,
    } = stage(2).await?;

    let ada = format!("c-{}", Uuid::new_v4().simple());
    let bob = format!("c-{}", Uuid::new_v4().simple());
    let friend = format!("f-{}", Uuid::new_v4().simple());
    let gina = format!("c-{}", Uuid::new_v4().simple());
    accepted(&harness, &agent_command("acme", &ada, register(&ada, "Ada Lovelace"))).await?;
    accepted(&harness, &agent_command("acme", &bob, register(&bob, "Bob Noyce"))).await?;
    accepted(
        &harness,
        &agent_command("globex", &gina, register(&gina, "Gina Hopper")),
    )
    .await?;
    accepted(
        &harness,
        &agent_command(
            "acme",
            &ada,
            SupportCommand::SendEmail {
                email_id: "e-1".into(),
                to: format!("{ada}@example.com"),
                subject: "Welcome".into(),
                body: "Dear Ada, welcome.".into(),
            },
        ),
    )
    .await?;
    // One event, two subjects: the friend's name and email are the friend's, the message
    // is Ada's.
    let before = accepted(
        &harness,
        &agent_command(
            "acme",
            &ada,
            SupportCommand::ReferFriend {
                friend_id: friend.clone(),
                friend_name: "Charles Babbage".into(),
                friend_email: "charles@example.com".into(),
                message: "You will like it, Charles".into(),
            },
        ),
    )
    .await?;
    let acme = agent_credential("acme");
    let globex = agent_credential("globex");
    let wait = |p: LogPosition| format!("after={}:{}&wait_ms=20000", p.partition, p.offset);
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{ada}?{}", wait(before)),
        &acme,
    )
    .await?;
    assert_eq!(
        (status, personal(&body["data"], "name")),
        (200, "Ada Lovelace".into()),
        "{body}"
    );

    // Erase Ada.
    let result = erase(&erase_args(&harness, &admin_topic, "acme", &ada))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("erase --wait gives a result"))?;
    let erased_at = position_of(&result)?;
    assert_eq!(result.stream.as_deref(), Some(erasure_stream(&ada).as_str()));
    // No waiting for key caches to expire: once the projection has applied SubjectErased
    // (read-your-writes on its position), the subject's fields read as erased although the
    // query API opened them a moment ago with a key it may still cache.

    let check_after_erasure = async |generation_note: &str| -> TestResult {
        let at = wait(erased_at);
        let (status, body) = get(&base, &format!("/v1/tenants/acme/customers/{ada}?{at}"), &acme).await?;
        assert_eq!(status, 200, "{generation_note}: {body}");
        for field in ["name", "email", "address"] {
            assert_eq!(
                personal(&body["data"], field),
                "<erased>",
                "{generation_note}: Ada's {field}: {body}"
            );
        }
        let (_, body) = get(&base, &format!("/v1/tenants/acme/customers/{ada}/emails?{at}"), &acme).await?;
        assert_eq!(
            personal(&body["data"][0], "body"),
            "<erased>",
            "{generation_note}: {body}"
        );
        assert_eq!(
            body["data"][0]["email_id"], "e-1",
            "{generation_note}: ids are not personal, kept: {body}"
        );
        let (_, body) = get(
            &base,
            &format!("/v1/tenants/acme/customers/{ada}/referrals?{at}"),
            &acme,
        )
        .await?;
        let referral = &body["data"][0];
        assert_eq!(
            personal(referral, "message"),
            "<erased>",
            "{generation_note}: Ada's part: {body}"
        );
        assert_eq!(
            (personal(referral, "friend_name"), personal(referral, "friend_email")),
            ("Charles Babbage".into(), "charles@example.com".into()),
            "{generation_note}: the friend's part of the same event is untouched: {body}"
        );
        let (_, body) = get(&base, &format!("/v1/tenants/acme/customers/{bob}?{at}"), &acme).await?;
        assert_eq!(
            personal(&body["data"], "name"),
            "Bob Noyce",
            "{generation_note}: {body}"
        );
        let (_, body) = get(&base, &format!("/v1/tenants/globex/customers/{gina}"), &globex).await?;
        assert_eq!(
            personal(&body["data"], "name"),
            "Gina Hopper",
            "{generation_note}: {body}"
        );
        let (status, body) = get(&base, &format!("/v1/tenants/acme/streams/{ada}/verify"), &acme).await?;
        assert_eq!(
            (status, &body["data"]["verdict"], &body["data"]["version"]),
            (200, &Value::from("intact"), &Value::from(3)),
            "{generation_note}: erasure edits nothing, so the chain holds: {body}"
        );
        Ok(())
    };
    check_after_erasure("serving generation").await?;

    // The audit trail of the erasure stream: one SubjectErased, by the DPO.
    let (status, body) = get(
        &base,
        &format!(
            "/v1/tenants/acme/streams/{}/audit?{}",
            erasure_stream(&ada),
            wait(erased_at)
        ),
        &acme,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["data"][0]["event_type"], "SubjectErased", "{body}");
    assert_eq!(body["data"][0]["actor"]["id"], "dpo", "{body}");

    // The certificate: served to the tenant, verifies with the public key, and any edit
    // breaks it. Another tenant's token learns nothing.
    let (status, document) = get(&base, &format!("/v1/tenants/acme/erasures/{ada}"), &acme).await?;
    assert_eq!(status, 200, "{document}");
    let key = verifying_key_from_hex(&std::fs::read_to_string(&public_file)?)?;
    let certified = verify(&serde_json::to_vec(&document)?, &key)?;
    assert_eq!(
        (certified.tenant.as_str(), certified.subject.as_str()),
        ("acme", ada.as_str())
    );
    assert_eq!(
        (certified.event.partition, certified.event.offset),
        (erased_at.partition, erased_at.offset),
        "the certificate names the SubjectErased event's log position"
    );
    assert!(
        !certified.destroyed_key_ids.is_empty() && certified.destroyed_key_ids.iter().all(|id| id.contains(&ada)),
        "the certificate lists Ada's key versions: {:?}",
        certified.destroyed_key_ids
    );
    assert_eq!(
        certified.referencing_events,
        Some(3),
        "Ada's registration, her email and the referral carrying her message (all projected before the erase)"
    );
    let mut tampered = document.clone();
    tampered["certificate"]["subject"] = Value::from(bob.clone());
    assert!(matches!(
        verify(&serde_json::to_vec(&tampered)?, &key),
        Err(CertificateError::BadSignature)
    ));
    let (status, _) = get(&base, &format!("/v1/tenants/acme/erasures/{ada}"), &globex).await?;
    assert_eq!(status, 401, "another tenant's token reads no certificate");
    let (status, _) = get(&base, &format!("/v1/tenants/acme/erasures/{bob}"), &acme).await?;
    assert_eq!(status, 404, "no certificate for a subject never erased");

    // Erasing again answers with the original event and writes nothing new.
    let again = erase(&erase_args(&harness, &admin_topic, "acme", &ada))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("erase --wait gives a result"))?;
    assert_eq!(position_of(&again)?, erased_at, "{again:?}");
    let erasure_events = harness
        .events(0)
        .await?
        .into_iter()
        .filter(|event| event.event_type == "SubjectErased")
        .count();
    assert_eq!(erasure_events, 1, "one SubjectErased in the log");

    // A non-admin credential cannot erase.
    let mut refused_args = erase_args(&harness, &admin_topic, "acme", &bob);
    refused_args.send.token = agent_credential("acme");
    let refused = erase(&refused_args)
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("a result"))?;
    assert!(
        matches!(&refused.outcome, Outcome::Rejected { reason, .. } if reason == "not_admin"),
        "{refused:?}"
    );

    // The handler goes on: restarted, its replay passes the system event, and it decides.
    harness.stop().await?;
    harness.restart()?;
    let refund = agent_command(
        "acme",
        &bob,
        SupportCommand::IssueRefund {
            refund_id: "r-1".into(),
            amount_cents: 500,
            reason: "late".into(),
        },
    );
    let last = accepted(&harness, &refund).await?;

    // A rebuild from the log's start still shows Ada erased and everyone else intact.
    let new = unique_name("gen");
    rebuild::<keel_support_projections::SupportProjections>(RebuildArgs {
        kafka: keel_kafka::KafkaArgs::new(harness.config.kafka.brokers.clone()),
        cql: keel_cql::CqlArgs::new(harness.config.cql.nodes.clone(), harness.config.cql.keyspace.clone()),
        events_topic: harness.config.events_topic.clone(),
        dlq_topic: harness.config.dlq_topic.clone(),
        into: Some(new.clone()),
        max_lag: 5,
        grace_secs: 2,
        keep_old: false,
        timeout_secs: 300,
        keys: harness.config.keys.clone(),
    })
    .await?;
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{bob}/refunds?{}", wait(last)),
        &acme,
    )
    .await?;
    assert_eq!(
        (status, &body["generation"]),
        (200, &Value::from(new.clone())),
        "{body}"
    );
    check_after_erasure("rebuilt generation").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_erasure_and_rotation_no_copy_on_disk_reveals_the_subject() -> TestResult {
    use keel_crypto::Kms;

    let logs = CapturedLogs::install()?;
    let Stage {
        mut harness,
        base,
        admin_topic,
        public_file: _,
        _directory,
    } = stage(1).await?;

    let canary = format!("Canary{}", Uuid::new_v4().simple());
    let customer = format!("c-{}", Uuid::new_v4().simple());
    accepted(
        &harness,
        &agent_command("acme", &customer, register(&customer, &canary)),
    )
    .await?;
    let last = accepted(
        &harness,
        &agent_command(
            "acme",
            &customer,
            SupportCommand::SendEmail {
                email_id: "e-1".into(),
                to: format!("{canary}@example.com"),
                subject: format!("For {canary}"),
                body: format!("Dear {canary}"),
            },
        ),
    )
    .await?;
    let acme = agent_credential("acme");
    let wait = |p: LogPosition| format!("after={}:{}&wait_ms=20000", p.partition, p.offset);
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{customer}?{}", wait(last)),
        &acme,
    )
    .await?;
    assert_eq!(
        personal(&body["data"], "name"),
        canary,
        "the API opens it before erasure"
    );

    // What an old SSTable, snapshot or backup holds: the subject's wrapped key rows as the
    // vault stores them now, and the sealed events.
    let session = keel_testkit::connect_cql().await?;
    session.use_keyspace(&harness.config.cql.keyspace, true).await?;
    let rows = session
        .query_unpaged(
            "SELECT version, epoch, wrapped FROM vault_keys_by_owner WHERE tenant = 'acme' AND owner = ?",
            (format!("s:{customer}"),),
        )
        .await?
        .into_rows_result()?;
    let copies: Vec<(i32, i32, Vec<u8>)> = rows.rows::<(i32, i32, Vec<u8>)>()?.collect::<Result<_, _>>()?;
    assert!(!copies.is_empty(), "the subject has wrapped keys before erasure");
    let sealed: Vec<_> = harness
        .events(2)
        .await?
        .into_iter()
        .filter(|event| event.stream_id == customer)
        .collect();
    assert_eq!(sealed.len(), 2);

    let result = erase(&erase_args(&harness, &admin_topic, "acme", &customer))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("erase --wait gives a result"))?;
    let erased_at = position_of(&result)?;

    // The keys the test can reach, as every service reaches them: the KMS file, the vault.
    let ring = harness.key_ring().await?;
    let context = |version: i32| format!("acme/subject/{customer}/v{version}");
    let unwraps_before: usize = {
        let mut count = 0;
        for (version, epoch, wrapped) in &copies {
            let epoch = u32::try_from(*epoch)?;
            if ring
                .kms()
                .unwrap("acme", epoch, &context(*version), wrapped)
                .await
                .is_ok()
            {
                count += 1;
            }
        }
        count
    };
    assert_eq!(
        unwraps_before,
        copies.len(),
        "before rotation an old copy of the destroyed key still unwraps with the live KEK: \
         this is what the rotation is for (and what makes this test able to fail)"
    );

    let store = keel_erasure::ErasureStore::new(harness.session().await?).await?;
    assert!(
        store
            .pending_rotations()
            .await?
            .iter()
            .any(|(tenant, _)| tenant == "acme"),
        "the erasure waits for a rotation"
    );
    let rotated = keel_admin::rotation::rotate_tenant(&ring, &store, "acme", Duration::from_millis(200)).await?;
    assert!(rotated.destroyed_epochs.contains(&1), "{rotated:?}");
    assert!(
        store.pending_rotations().await?.is_empty(),
        "the rotation made the erasure final"
    );

    for (version, epoch, wrapped) in &copies {
        let epoch = u32::try_from(*epoch)?;
        assert!(
            ring.kms()
                .unwrap("acme", epoch, &context(*version), wrapped)
                .await
                .is_err(),
            "an old copy of key version {version} (epoch {epoch}) still unwraps after rotation"
        );
        let id = keel_crypto::KeyId {
            tenant: "acme".into(),
            owner: keel_crypto::KeyOwner::Subject(customer.clone()),
            version: u32::try_from(*version)?,
        };
        assert!(ring.open_key(&id).await?.is_none(), "the vault still opens {id}");
    }
    let codec = harness.codec().await?;
    for envelope in sealed {
        let opened = codec
            .open_event::<keel_customer_support::SupportEvent>(envelope)
            .await?;
        assert!(
            !opened.erased.is_empty() && !format!("{:?}", opened.event).contains(&canary),
            "the old ciphertext opens to erased fields only: {:?}",
            opened.event
        );
    }
    // Live data of the tenant survives the rotation.
    let other = format!("c-{}", Uuid::new_v4().simple());
    let after = accepted(&harness, &agent_command("acme", &other, register(&other, "Still Here"))).await?;
    tokio::time::sleep(Duration::from_millis(harness.config.keys.key_cache_ttl_ms + 100)).await;
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{other}?{}", wait(after)),
        &acme,
    )
    .await?;
    assert_eq!(personal(&body["data"], "name"), "Still Here", "{body}");
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{customer}?{}", wait(erased_at)),
        &acme,
    )
    .await?;
    assert_eq!(personal(&body["data"], "name"), "<erased>", "{body}");

    // Raw files: the events topic's segments and Cassandra's SSTables and commit log hold
    // no plaintext; the commands topic (the producer's plaintext, bounded retention) does,
    // which shows the scan reads what is there.
    flush_cql(&harness.config.cql.keyspace)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = files_containing(&cassandra_dir(), canary.as_bytes())?;
    assert!(found.is_empty(), "plaintext in Cassandra's files: {found:?}");
    let event_dirs = kafka_topic_dirs(&harness.config.events_topic)?;
    assert!(!event_dirs.is_empty(), "the events topic has partition directories");
    for dir in event_dirs {
        let found = files_containing(&dir, canary.as_bytes())?;
        assert!(found.is_empty(), "plaintext in the events topic's segments: {found:?}");
    }
    let mut in_commands = Vec::new();
    for dir in kafka_topic_dirs(&harness.config.commands_topic)? {
        in_commands.extend(files_containing(&dir, canary.as_bytes())?);
    }
    assert!(
        !in_commands.is_empty(),
        "the commands topic holds the producer's plaintext (until its retention ends): the scan sees it"
    );

    // Logs and traces of every service (handler, projector, query API, admin service; all
    // in this process) name the customer's stream, never its personal data.
    let logged = logs.text();
    assert!(logged.contains(&customer), "the capture sees the services' logs");
    assert!(
        !logged.contains(&canary),
        "personal data in the logs: {}",
        logged
            .lines()
            .filter(|line| line.contains(&canary))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );

    let certificate = store
        .certificate("acme", &customer)
        .await?
        .ok_or_else(|| anyhow::anyhow!("a certificate"))?;
    let certificate: keel_erasure::SignedCertificate = serde_json::from_str(&certificate)?;
    assert!(
        certificate.certificate.final_by_micros > Some(certificate.certificate.erased_at_micros),
        "the certificate says when erasure is final: {:?}",
        certificate.certificate.final_by_micros
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_tenant_erases_all_of_it_and_nothing_of_another() -> TestResult {
    use keel_crypto::Kms;

    let Stage {
        harness,
        base,
        admin_topic,
        public_file,
        _directory,
    } = stage(2).await?;

    let gina = format!("c-{}", Uuid::new_v4().simple());
    let gus = format!("c-{}", Uuid::new_v4().simple());
    let ada = format!("c-{}", Uuid::new_v4().simple());
    accepted(
        &harness,
        &agent_command("globex", &gina, register(&gina, "Gina Hopper")),
    )
    .await?;
    accepted(&harness, &agent_command("globex", &gus, register(&gus, "Gus Grissom"))).await?;
    accepted(&harness, &agent_command("acme", &ada, register(&ada, "Ada Lovelace"))).await?;

    let result = erase_tenant(&admin_send_args(&harness, &admin_topic, "globex"))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("erase-tenant --wait gives a result"))?;
    let erased_at = position_of(&result)?;
    let wait = |p: LogPosition| format!("after={}:{}&wait_ms=20000", p.partition, p.offset);

    let globex = agent_credential("globex");
    for customer in [&gina, &gus] {
        let (status, body) = get(
            &base,
            &format!("/v1/tenants/globex/customers/{customer}?{}", wait(erased_at)),
            &globex,
        )
        .await?;
        assert_eq!(status, 200, "{body}");
        for field in ["name", "email", "address"] {
            assert_eq!(
                personal(&body["data"], field),
                "<erased>",
                "{customer}'s {field}: {body}"
            );
        }
    }
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{ada}"),
        &agent_credential("acme"),
    )
    .await?;
    assert_eq!(
        personal(&body["data"], "name"),
        "Ada Lovelace",
        "another tenant is untouched: {body}"
    );

    // Every KEK epoch of the tenant is destroyed in the KMS: nothing of it unwraps again.
    let ring = harness.key_ring().await?;
    assert!(
        ring.kms().current_epoch("globex").await.is_err(),
        "globex has no live KEK"
    );
    assert!(ring.kms().current_epoch("acme").await.is_ok(), "acme keeps its KEK");

    // Its certificate: subject `*`, every key counted, signed.
    let (status, document) = get(&base, "/v1/tenants/globex/erasures/*", &globex).await?;
    assert_eq!(status, 200, "{document}");
    let key = verifying_key_from_hex(&std::fs::read_to_string(&public_file)?)?;
    let certified = verify(&serde_json::to_vec(&document)?, &key)?;
    assert_eq!(certified.subject, "*");
    assert!(
        certified.destroyed_key_count >= 3,
        "the tenant key and two subjects' keys: {}",
        certified.destroyed_key_count
    );
    assert_eq!(
        (certified.event.partition, certified.event.offset),
        (erased_at.partition, erased_at.offset)
    );

    // Again: the original answer. The handler refuses the erased tenant's commands and goes
    // on deciding everyone else's.
    let again = erase_tenant(&admin_send_args(&harness, &admin_topic, "globex"))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("a result"))?;
    assert_eq!(position_of(&again)?, erased_at);
    let refused = agent_command(
        "globex",
        &gina,
        SupportCommand::SendEmail {
            email_id: "e-1".into(),
            to: "gina@example.com".into(),
            subject: "Hello".into(),
            body: "Hello".into(),
        },
    );
    harness.send(&refused).await?;
    let result = harness.result_of(refused.command_id).await?;
    assert!(
        matches!(&result.outcome, Outcome::Rejected { reason, .. } if reason == "tenant_erased"),
        "{result:?}"
    );
    accepted(
        &harness,
        &agent_command(
            "acme",
            &ada,
            SupportCommand::SendEmail {
                email_id: "e-1".into(),
                to: "ada@example.com".into(),
                subject: "Hello".into(),
                body: "Hello".into(),
            },
        ),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_committed_but_left_unmarked_is_repaired_at_start() -> TestResult {
    use rdkafka::consumer::{CommitMode, Consumer};

    // An admin service died after its transaction committed (the group's offset moved past
    // the command) and before it marked the erasure record: the record says not committed.
    let harness = HandlerHarness::start(1).await?;
    let directory = tempfile::tempdir()?;
    let (key_file, _) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let store = keel_erasure::ErasureStore::new(harness.session().await?).await?;
    let record = |subject: &str, offset: i64| keel_erasure::ErasureRecord {
        tenant: "acme".into(),
        subject: subject.into(),
        command_id: Uuid::new_v4(),
        input_partition: 0,
        input_offset: offset,
        destroyed_key_ids: Vec::new(),
        destroyed_keys: 0,
        event: None,
        certificate: None,
        committed: false,
    };
    store.begin(&record("done", 4)).await?;
    store.certify("acme", "done", "{}").await?;
    store.begin(&record("in-flight", 5)).await?;
    let topics: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        harness.kafka.client_config().create()?;
    keel_kafka::topics::ensure_topics(
        &topics,
        &[keel_kafka::topics::TopicSpec {
            name: admin.admin_topic.clone(),
            partitions: 1,
            replication: 1,
            config: Vec::new(),
        }],
    )
    .await?;
    let group: rdkafka::consumer::BaseConsumer =
        keel_kafka::clients::read_committed_consumer(harness.kafka.brokers(), &admin.group_id).create()?;
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets.add_partition_offset(&admin.admin_topic, 0, rdkafka::Offset::Offset(5))?;
    group.commit(&offsets, CommitMode::Sync)?;
    drop(group);

    tokio::spawn(keel_admin::run(admin, pending::<()>()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = store.get("acme", "done").await?.is_some_and(|r| r.committed);
        if done {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the consumed-past erasure was not repaired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !store.get("acme", "in-flight").await?.is_some_and(|r| r.committed),
        "the record of the next command to consume (offset 5) is not marked: its transaction may not have committed"
    );
    Ok(())
}
