//! Crash test of the command handler: kill -9 at random moments while a producer sends
//! 10,000 commands across 100 streams, restart it each time, then count. Every command must
//! have exactly one result, every stream's versions must be gapless 1..n without
//! duplicates, every chain must verify, and every event must belong to an accepted command.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keel_integration_tests::handler_harness::{HandlerHarness, HandlerProcess, assert_exactly_once, workload};
use keel_testkit::TestResult;
use rand::Rng;

const STREAMS: usize = 100;
const COMMANDS: usize = 10_000;
const KILLS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_and_duplicates_nothing() -> TestResult {
    let harness = HandlerHarness::prepare(6).await?;
    let log = std::env::temp_dir().join(format!("{}.log", harness.config.cql.keyspace));
    eprintln!("crash test: handler log at {}", log.display());
    let mut handler = HandlerProcess::new(
        PathBuf::from(env!("CARGO_BIN_EXE_keel-handler-process")),
        harness.args(),
        log,
    );
    handler.spawn()?;

    let commands = workload(STREAMS, COMMANDS);
    let started = Instant::now();
    let producing = async {
        // About 500 commands a second, so the kills fall while commands arrive.
        for chunk in commands.chunks(50) {
            for command in chunk {
                harness.send(command).await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(started.elapsed())
    };
    let killing = async {
        for _ in 0..KILLS {
            // Long enough to get past start-up and replay and into transactions, short enough
            // that the kills spread over the whole production.
            let uptime = rand::thread_rng().gen_range(1_500..4_000);
            tokio::time::sleep(Duration::from_millis(uptime)).await;
            handler.kill_9()?;
            handler.spawn()?;
        }
        anyhow::Ok(started.elapsed())
    };
    let (produced_in, killed_in) = tokio::try_join!(producing, killing)?;
    eprintln!("crash test: {COMMANDS} commands produced in {produced_in:?}; {KILLS} kills done after {killed_in:?}");

    let results = harness.results(COMMANDS).await?;
    let drained_in = started.elapsed();
    handler.terminate()?;
    eprintln!("crash test: all results after {drained_in:?}");
    assert_exactly_once(&harness, &commands, &results, STREAMS).await
}
