//! Crash test of the projector: kill -9 it mid-stream several times while events arrive,
//! restart it each time, let it catch up, and compare every row of its projections with a
//! projector that built them from scratch, in a keyspace of its own, in one go.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_integration_tests::handler_harness::{HandlerHarness, HandlerProcess, agent, workload};
use keel_projector::ProjectorConfig;
use keel_testkit::{TestResult, unique_name};
use keel_trails::{AuditEntry, Trails};
use rand::Rng;

const STREAMS: usize = 50;
const COMMANDS: usize = 3_000;
const KILLS: usize = 8;

fn config(harness: &HandlerHarness, keyspace: &str) -> ProjectorConfig {
    ProjectorConfig {
        brokers: harness.config.brokers.clone(),
        cql_nodes: harness.config.cql_nodes.clone(),
        keyspace: keyspace.to_owned(),
        events_topic: harness.config.events_topic.clone(),
        group_id: unique_name("projector"),
        instance_id: "projector-0".into(),
        ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_batch: 200,
    }
}

fn args(config: &ProjectorConfig) -> Vec<String> {
    [
        ("--brokers", config.brokers.clone()),
        ("--cql-nodes", config.cql_nodes.join(",")),
        ("--keyspace", config.keyspace.clone()),
        ("--events-topic", config.events_topic.clone()),
        ("--group-id", config.group_id.clone()),
        ("--instance-id", config.instance_id.clone()),
        ("--ops-addr", config.ops_addr.to_string()),
        ("--max-batch", config.max_batch.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

async fn trails_in(harness: &HandlerHarness, keyspace: &str) -> TestResult<Trails> {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&harness.config.cql_nodes)
        .build()
        .await?;
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    );
    session.query_unpaged(create, &[]).await?;
    session.use_keyspace(keyspace, true).await?;
    Trails::new(Arc::new(session)).await
}

/// Every stream's audit trail, once they hold `expected` entries in all (or the timeout).
async fn all_audits(trails: &Trails, expected: usize) -> TestResult<Vec<Vec<AuditEntry>>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut audits = Vec::with_capacity(STREAMS);
        for stream in 0..STREAMS {
            audits.push(trails.audit("acme", &format!("c-{stream:03}")).await?);
        }
        let total: usize = audits.iter().map(Vec::len).sum();
        if total >= expected || tokio::time::Instant::now() >= deadline {
            return Ok(audits);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_ends_equal_to_a_rebuild_from_scratch() -> TestResult {
    let mut harness = HandlerHarness::start(3).await?;
    let crashed = config(&harness, &unique_name("pcrash"));
    let log = std::env::temp_dir().join(format!("{}.log", crashed.keyspace));
    eprintln!("projector crash test: log at {}", log.display());
    let mut projector = HandlerProcess::new(
        PathBuf::from(env!("CARGO_BIN_EXE_keel-projector-process")),
        args(&crashed),
        log,
    );
    projector.spawn()?;

    let commands = workload(STREAMS, COMMANDS);
    let producing = async {
        for chunk in commands.chunks(100) {
            harness.send_many(chunk).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        anyhow::Ok(())
    };
    let killing = async {
        for _ in 0..KILLS {
            let uptime = rand::thread_rng().gen_range(1_000..2_500);
            tokio::time::sleep(Duration::from_millis(uptime)).await;
            projector.kill_9()?;
            projector.spawn()?;
        }
        anyhow::Ok(())
    };
    tokio::try_join!(producing, killing)?;
    harness.results(COMMANDS).await?;

    let crashed_trails = trails_in(&harness, &crashed.keyspace).await?;
    let after_crashes = all_audits(&crashed_trails, COMMANDS).await?;
    projector.terminate()?;

    let rebuilt = config(&harness, &unique_name("prebuild"));
    let rebuilt_keyspace = rebuilt.keyspace.clone();
    let rebuilding = tokio::spawn(keel_projector::run_customer_support(
        rebuilt,
        std::future::pending::<()>(),
    ));
    let rebuilt_trails = trails_in(&harness, &rebuilt_keyspace).await?;
    let from_scratch = all_audits(&rebuilt_trails, COMMANDS).await?;
    rebuilding.abort();

    let total: usize = after_crashes.iter().map(Vec::len).sum();
    assert_eq!(
        total, COMMANDS,
        "every event is in the crashed projector's audit trail, once"
    );
    assert_eq!(
        after_crashes, from_scratch,
        "the crashed projector's audit trails equal a rebuild, row for row"
    );
    let activity_crashed = crashed_trails.activity("acme", &agent()).await?;
    let activity_rebuilt = rebuilt_trails.activity("acme", &agent()).await?;
    assert_eq!(activity_crashed.len(), COMMANDS);
    assert_eq!(
        activity_crashed, activity_rebuilt,
        "and so does the agent's activity trail"
    );
    harness.stop().await
}
