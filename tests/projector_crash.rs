//! Crash test of the projector: kill -9 it mid-stream several times while events arrive,
//! restart it each time, let it catch up, and compare every row of its projections (the
//! trails, profiles, refunds with their totals, emails, the streams' sealed events) with a
//! projector that built them from scratch, in a keyspace of its own, in one go.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_customer_support::SupportCommand;
use keel_integration_tests::handler_harness::{HandlerHarness, HandlerProcess, agent, projector_args, workload};
use keel_support_projections::{EmailRow, ProfileRow, RefundRow, StoredEvent, SupportProjections};
use keel_testkit::{TestResult, unique_name};
use keel_trails::{AuditEntry, Trails};
use rand::Rng;

const STREAMS: usize = 50;
const COMMANDS: usize = 3_000;
const KILLS: usize = 8;

async fn session_in(harness: &HandlerHarness, keyspace: &str) -> TestResult<Arc<scylla::client::session::Session>> {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&harness.config.cql_nodes)
        .build()
        .await?;
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    );
    session.query_unpaged(create, &[]).await?;
    session.use_keyspace(keyspace, true).await?;
    Ok(Arc::new(session))
}

/// One customer's domain projections as stored (personal fields sealed).
#[derive(Debug, PartialEq)]
struct Customer {
    profile: Option<ProfileRow>,
    refunds: Vec<RefundRow>,
    emails: Vec<EmailRow>,
    events: Vec<StoredEvent>,
}

/// Every customer's projections, once their sealed event copies number `expected` in all
/// (the rows of an event are written with its copy, in the same batch).
async fn all_customers(projections: &SupportProjections, expected: usize) -> TestResult<Vec<Customer>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut customers = Vec::with_capacity(STREAMS);
        for stream in 0..STREAMS {
            let stream = format!("c-{stream:03}");
            customers.push(Customer {
                profile: projections.profile("acme", &stream).await?,
                refunds: projections.refunds("acme", &stream).await?,
                emails: projections.emails("acme", &stream).await?,
                events: projections.events("acme", &stream).await?,
            });
        }
        let total: usize = customers.iter().map(|c| c.events.len()).sum();
        if total >= expected || tokio::time::Instant::now() >= deadline {
            return Ok(customers);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
    let crashed = harness.projector_config(&unique_name("pcrash"));
    let log = std::env::temp_dir().join(format!("{}.log", crashed.keyspace));
    eprintln!("projector crash test: log at {}", log.display());
    let mut projector = HandlerProcess::new(
        PathBuf::from(env!("CARGO_BIN_EXE_keel-projector-process")),
        projector_args(&crashed),
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

    let crashed_session = session_in(&harness, &crashed.keyspace).await?;
    let crashed_trails = Trails::new(Arc::clone(&crashed_session)).await?;
    let after_crashes = all_audits(&crashed_trails, COMMANDS).await?;
    let crashed_customers = all_customers(&SupportProjections::new(crashed_session).await?, COMMANDS).await?;
    projector.terminate()?;

    let rebuilt = harness.projector_config(&unique_name("prebuild"));
    let rebuilt_keyspace = rebuilt.keyspace.clone();
    let rebuilding = tokio::spawn(keel_projector::run_customer_support(
        rebuilt,
        std::future::pending::<()>(),
    ));
    let rebuilt_session = session_in(&harness, &rebuilt_keyspace).await?;
    let rebuilt_trails = Trails::new(Arc::clone(&rebuilt_session)).await?;
    let from_scratch = all_audits(&rebuilt_trails, COMMANDS).await?;
    let rebuilt_customers = all_customers(&SupportProjections::new(rebuilt_session).await?, COMMANDS).await?;
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

    for (index, customer) in crashed_customers.iter().enumerate() {
        let stream = format!("c-{index:03}");
        let refunds_sent = commands
            .iter()
            .filter(|c| c.stream == stream && matches!(c.payload, SupportCommand::IssueRefund { .. }))
            .count();
        let total: i64 = customer.refunds.iter().map(|r| r.amount_cents - r.reversed_cents).sum();
        assert_eq!(
            total,
            100 * refunds_sent as i64,
            "{stream}: the refund total counts every refund once"
        );
        let sent = commands.iter().filter(|c| c.stream == stream).count();
        assert_eq!(customer.events.len(), sent, "{stream}: one sealed copy per event");
        let profile = customer.profile.as_ref().map(|p| p.position.version);
        assert_eq!(
            profile,
            Some(sent as i64),
            "{stream}: the profile reflects the last version"
        );
    }
    assert_eq!(
        crashed_customers, rebuilt_customers,
        "the crashed projector's domain projections equal a rebuild, row for row"
    );
    harness.stop().await
}
