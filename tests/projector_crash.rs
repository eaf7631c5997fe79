//! Crash test of the projector: kill -9 it mid-stream several times while events arrive,
//! restart it each time, let it catch up, and compare every row of its projections (the
//! trails, profiles, refunds with their totals, emails, the streams' sealed events) with a
//! projector that built them from scratch, in a keyspace of its own, in one go.

use std::path::PathBuf;
use std::time::Duration;

use keel_integration_tests::handler_harness::projections::{WorkloadProjections, assert_equal_to_a_rebuild};
use keel_integration_tests::handler_harness::{HandlerHarness, HandlerProcess, projector_args, workload};
use keel_testkit::{TestResult, unique_name};
use rand::Rng;

const STREAMS: usize = 50;
const COMMANDS: usize = 3_000;
const KILLS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_ends_equal_to_a_rebuild_from_scratch() -> TestResult {
    let mut harness = HandlerHarness::start(3).await?;
    let crashed = harness.projector_config(&unique_name("pcrash"));
    let log = std::env::temp_dir().join(format!("{}.log", crashed.cql.keyspace));
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

    let after_crashes = WorkloadProjections::read(&harness, &crashed.cql.keyspace, STREAMS, COMMANDS).await?;
    projector.terminate()?;
    assert_equal_to_a_rebuild(&harness, &after_crashes, &commands, STREAMS).await?;
    harness.stop().await
}
