//! Rebuilding the projections while they serve: the query API keeps answering from the old
//! generation until the new one has caught up, switches over, nothing written meanwhile is
//! lost, and the old generation's tables are dropped.

use std::time::Duration;

use keel_customer_support::SupportCommand;
use keel_integration_tests::handler_harness::{HandlerHarness, TestCommand, agent_command, agent_credential, register};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_projector::rebuild::{RebuildArgs, rebuild};
use keel_results::Outcome;
use keel_testkit::{TestResult, unique_name};
use serde_json::Value;

const CUSTOMERS: usize = 20;

fn refund(customer: usize, id: &str) -> TestCommand {
    agent_command(
        "acme",
        &format!("c-{customer:03}"),
        SupportCommand::IssueRefund {
            refund_id: id.into(),
            amount_cents: 100,
            reason: "rebuild".into(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_serves_the_old_generation_until_it_switches_and_loses_nothing() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let base = start_read_side(&harness).await?;
    let bearer = agent_credential("acme");
    let control = harness.config.cql.keyspace.clone();

    let mut commands: Vec<TestCommand> = (0..CUSTOMERS)
        .map(|i| agent_command("acme", &format!("c-{i:03}"), register(&format!("c-{i:03}"))))
        .collect();
    commands.extend((0..CUSTOMERS * 5).map(|i| refund(i % CUSTOMERS, &format!("r-{i}"))));
    harness.send_many(&commands).await?;
    harness.results(commands.len()).await?;

    let new = unique_name("gen");
    let args = RebuildArgs {
        kafka: keel_kafka::KafkaArgs::new(harness.config.kafka.brokers.clone()),
        cql: keel_cql::CqlArgs::new(harness.config.cql.nodes.clone(), control.clone()),
        events_topic: harness.config.events_topic.clone(),
        dlq_topic: harness.config.dlq_topic.clone(),
        into: Some(new.clone()),
        max_lag: 20,
        grace_secs: 3,
        keep_old: false,
        timeout_secs: 300,
        keys: harness.config.keys.clone(),
    };
    let rebuilding = tokio::spawn(rebuild::<keel_support_projections::SupportProjections>(args));

    // While it rebuilds: more commands arrive, and every read is answered, from the old
    // generation until the switch, from the new one after.
    let mut generations_seen: Vec<String> = Vec::new();
    let mut sent_during = 0;
    while !rebuilding.is_finished() {
        if sent_during < 40 {
            let command = refund(sent_during % CUSTOMERS, &format!("during-{sent_during}"));
            harness.send(&command).await?;
            sent_during += 1;
        }
        let (status, body) = get(&base, "/v1/tenants/acme/customers/c-000", &bearer).await?;
        assert_eq!(status, 200, "answered during the rebuild: {body}");
        assert_eq!(body["data"]["name"]["value"], "Canary Name c-000");
        let generation = body["generation"].as_str().unwrap_or_default().to_owned();
        if generations_seen.last() != Some(&generation) {
            generations_seen.push(generation);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rebuilt = rebuilding.await??;
    assert_eq!(
        (rebuilt.old.as_str(), rebuilt.new.as_str()),
        (control.as_str(), new.as_str())
    );
    assert_eq!(
        generations_seen,
        [control.clone(), new.clone()],
        "the old generation answered while the new one was built, then one switch to the new \
         (within the rebuild's grace period)"
    );

    // After the switch: the new generation answers, with every refund, including those sent
    // during the rebuild and one sent now.
    let last = refund(0, "after");
    harness.send(&last).await?;
    let result = harness.result_of(last.command_id).await?;
    let Outcome::Accepted {
        position: Some(position),
        ..
    } = result.outcome
    else {
        panic!("the refund after the switch should be accepted: {result:?}");
    };
    let mut total = 0;
    for customer in 0..CUSTOMERS {
        let path = format!(
            "/v1/tenants/acme/customers/c-{customer:03}/refunds?after={}:{}&wait_ms=20000",
            position.partition, position.offset
        );
        let (status, body) = get(&base, &path, &bearer).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["generation"], Value::from(new.clone()));
        total += body["data"]["net_cents"].as_i64().unwrap_or(0);
    }
    let refunds = CUSTOMERS * 5 + sent_during + 1;
    assert_eq!(
        total,
        100 * refunds as i64,
        "every refund once, none lost in the switch"
    );

    // The old generation's tables are gone from the control keyspace (the vault stays).
    let session = keel_testkit::connect_cql().await?;
    let rows = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (control.as_str(),),
        )
        .await?
        .into_rows_result()?;
    let tables: Vec<String> = rows
        .rows::<(String,)>()?
        .map(|row| row.map(|(t,)| t))
        .collect::<Result<_, _>>()?;
    assert!(
        !tables
            .iter()
            .any(|t| t == "customer_profiles_v1" || t == "audit_trail_v1"),
        "old projection tables dropped: {tables:?}"
    );
    assert!(
        tables.iter().any(|t| t == "vault_keys_by_owner") && tables.iter().any(|t| t == "handler_streams"),
        "the control keyspace keeps its key vault and the handler's state: {tables:?}"
    );
    harness.stop().await
}
