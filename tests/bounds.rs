//! Outside input is bounded where it enters, on the real Kafka and CQL store: one id grammar
//! and length limit at every entry point (commands, admin commands, query paths), log lines
//! that no id can forge, money summed without overflow, and read routes that agree on what
//! an unknown customer is.

use std::future::pending;
use std::time::Duration;

use keel_cli::admin::erase;
use keel_codec::{EventHeader, to_wire_actor};
use keel_customer_support::{SupportCommand, SupportEvent};
use keel_integration_tests::handler_harness::{
    HandlerHarness, HandlerProcess, agent_command, agent_credential, erase_args, now_secs, register,
};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_kafka::partition::stream_key;
use keel_results::{CommandResult, Outcome};
use keel_testkit::TestResult;
use rdkafka::producer::FutureRecord;
use uuid::Uuid;

/// A JWT with `alg=none` and no signature.
const ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.";

/// Ids no entry point may take: empty, NUL, line breaks, an ANSI escape, 10 KB, a slash.
fn bad_ids() -> Vec<String> {
    vec![
        String::new(),
        "c\0nul".into(),
        "c\nforged".into(),
        "c\r\nforged".into(),
        "\u{1b}[31mred".into(),
        "x".repeat(10_000),
        "a/b".into(),
    ]
}

fn reason(result: &CommandResult) -> Option<&str> {
    match &result.outcome {
        Outcome::Rejected { reason, .. } => Some(reason),
        Outcome::Accepted { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_stream_or_tenant_id_is_refused_before_the_credential_is_read() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let mut sent = Vec::new();
    for id in bad_ids() {
        let mut by_stream = agent_command("acme", &id, register("c-1"));
        by_stream.credential = ALG_NONE.into();
        let mut by_tenant = agent_command(&id, "c-1", register("c-1"));
        by_tenant.credential = ALG_NONE.into();
        for command in [by_stream, by_tenant] {
            harness.send(&command).await?;
            sent.push((command.command_id, id.clone()));
        }
    }
    for (command_id, id) in sent {
        let result = harness.result_of(command_id).await?;
        assert_eq!(reason(&result), Some("invalid_id"), "id {:?}: {result:?}", id.get(..40));
    }
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_actor_or_subject_id_in_a_signed_command_is_refused() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let mut sent = Vec::new();
    for id in bad_ids() {
        // The subject: a customer id the events seal personal fields under.
        let stream = format!("c-{}", Uuid::new_v4().simple());
        let mut subject = agent_command("acme", &stream, register(&stream));
        if let SupportCommand::RegisterCustomer { customer_id, .. } = &mut subject.payload {
            customer_id.clone_from(&id);
        }
        // The actor, as its credential names it (signed by the tenant's own key).
        let mut actor = agent_command("acme", &stream, register(&stream));
        actor.actor.id.clone_from(&id);
        actor.credential = keel_integration_tests::handler_harness::credential_for(&actor);
        for command in [subject, actor] {
            harness.send(&command).await?;
            sent.push((command.command_id, id.clone()));
        }
    }
    for (command_id, id) in sent {
        let result = harness.result_of(command_id).await?;
        assert_eq!(reason(&result), Some("invalid_id"), "id {:?}: {result:?}", id.get(..40));
    }
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_id_forges_a_line_in_the_handler_log() -> TestResult {
    let harness = HandlerHarness::prepare(1).await?;
    let directory = tempfile::tempdir()?;
    let log = directory.path().join("handler.log");
    let mut process = HandlerProcess::new(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_keel-handler-process")),
        harness.args(),
        log.clone(),
    );
    process.spawn()?;
    let forged = "FORGED level=ERROR the ledger was wiped";
    let mut poison = agent_command("acme", &format!("c-1\n{forged}"), register("c-1"));
    poison.credential = ALG_NONE.into();
    harness.send(&poison).await?;
    let mut escape = agent_command("acme", "\u{1b}[2Jc-2", register("c-2"));
    escape.credential = ALG_NONE.into();
    harness.send(&escape).await?;
    harness.result_of(poison.command_id).await?;
    harness.result_of(escape.command_id).await?;
    process.terminate()?;

    let text = std::fs::read_to_string(&log)?;
    let forged_lines: Vec<&str> = text.lines().filter(|line| line.starts_with("FORGED")).collect();
    assert!(
        forged_lines.is_empty(),
        "a stream id forged log lines: {forged_lines:?}"
    );
    assert!(!text.contains('\u{1b}'), "an escape sequence reached the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_subject_in_an_admin_command_is_refused() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let directory = tempfile::tempdir()?;
    let (key_file, _public) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, pending::<()>()));
    for subject in ["c\nforged".to_owned(), "x".repeat(10_000), "\u{1b}[31m".to_owned()] {
        let args = erase_args(&harness, &admin_topic, "acme", &subject);
        let (_, result) = erase(&args).await?;
        let result = result.ok_or_else(|| anyhow::anyhow!("no answer"))?;
        assert_eq!(
            reason(&result),
            Some("invalid_id"),
            "{:?}: {result:?}",
            subject.get(..20)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_id_in_a_query_path_is_a_bad_request() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let base = start_read_side(&harness).await?;
    let token = agent_credential("acme");
    let long = "x".repeat(10_000);
    for id in ["c%0Aforged", "c%00nul", "%1B%5B31m", long.as_str(), "a%2Fb"] {
        for path in [
            format!("/v1/tenants/acme/customers/{id}"),
            format!("/v1/tenants/acme/streams/{id}/audit"),
            format!("/v1/tenants/acme/actors/agent/{id}/activity"),
        ] {
            let (status, body) = get(&base, &path, &token).await?;
            assert_eq!(status, 400, "{}: {body}", &path[..path.len().min(60)]);
            assert_eq!(body["error"]["code"], "invalid_id", "{body}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_over_the_domain_bound_are_refused() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let mut registration = agent_command("acme", &customer, register(&customer));
    registration.actor = keel_integration_tests::handler_harness::supervisor();
    registration.on_behalf_of = Vec::new();
    registration.credential = keel_integration_tests::handler_harness::supervisor_credential("acme");
    harness.send(&registration).await?;
    let mut huge = registration.clone();
    huge.command_id = Uuid::new_v4();
    huge.payload = SupportCommand::IssueRefund {
        refund_id: "r-1".into(),
        amount_cents: i64::MAX,
        reason: "overflow".into(),
    };
    huge.command_type = "IssueRefund".into();
    harness.send(&huge).await?;
    let result = harness.result_of(huge.command_id).await?;
    assert_eq!(reason(&result), Some("invalid_amount"), "{result:?}");
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_an_older_handler_accepted_sum_without_overflow() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let base = start_read_side(&harness).await?;
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let registration = agent_command("acme", &customer, register(&customer));
    harness.send(&registration).await?;
    harness.result_of(registration.command_id).await?;
    let registered = harness
        .events(1)
        .await?
        .into_iter()
        .find(|event| event.stream_id == customer)
        .ok_or_else(|| anyhow::anyhow!("the registration event is missing"))?;
    // Two refunds of i64::MAX cents each, as a handler without amount bounds appended them.
    let codec = harness.codec().await?;
    let producer: rdkafka::producer::FutureProducer =
        keel_kafka::clients::producer(harness.kafka.brokers()).create()?;
    let actor = keel_integration_tests::handler_harness::supervisor();
    let allowed = keel_auth::Authorization {
        policy: "support".into(),
        rule: "supervisor".into(),
        scope: None,
    };
    let mut prev = registered.hash.clone();
    let mut last = None;
    for (version, refund) in [(2, "r-1"), (3, "r-2")] {
        let header = EventHeader {
            tenant: "acme",
            stream: &customer,
            version,
            recorded_at_micros: i64::try_from(now_secs())? * 1_000_000,
            command_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            actor: to_wire_actor(&actor, &[], Some(&allowed)),
            compensates: None,
        };
        let event = SupportEvent::RefundIssued {
            customer_id: customer.clone(),
            refund_id: refund.into(),
            amount_cents: i64::MAX,
            reason: "legacy".into(),
        };
        let envelope = codec.seal_event(&header, &event, &prev).await?;
        prev.clone_from(&envelope.hash);
        let bytes = codec.wire().encode_event(&envelope)?;
        let key = stream_key("acme", &customer);
        let delivery = producer
            .send(
                FutureRecord::to(&harness.config.events_topic).key(&key).payload(&bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)?;
        last = Some((delivery.partition, delivery.offset));
    }
    let (partition, offset) = last.ok_or_else(|| anyhow::anyhow!("nothing sent"))?;
    let token = agent_credential("acme");
    let path = format!("/v1/tenants/acme/customers/{customer}/refunds?after={partition}:{offset}&wait_ms=30000");
    let (status, body) = get(&base, &path, &token).await?;
    assert_eq!(status, 200, "{body}");
    let expected = 2 * i128::from(i64::MAX);
    assert_eq!(body["data"]["issued_cents"].to_string(), expected.to_string(), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_customer_route_answers_not_found_for_an_unknown_customer() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let base = start_read_side(&harness).await?;
    let token = agent_credential("acme");
    for route in ["", "/subscriptions", "/refunds", "/emails", "/referrals"] {
        let path = format!("/v1/tenants/acme/customers/c-nobody{route}");
        let (status, body) = get(&base, &path, &token).await?;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    Ok(())
}
