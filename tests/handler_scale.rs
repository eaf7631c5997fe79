//! Scale-out of the command handler: two instances share six partitions; one is killed with
//! SIGKILL mid-load, the other takes over its partitions once its session times out, the
//! killed one comes back and takes its share again, and nothing is lost or doubled.

use std::path::PathBuf;
use std::time::Duration;

use keel_integration_tests::handler_harness::{HandlerHarness, HandlerProcess, assert_exactly_once, workload};
use keel_testkit::TestResult;

const STREAMS: usize = 100;
const COMMANDS: usize = 5_000;

fn args_for(harness: &HandlerHarness, instance: &str) -> Vec<String> {
    let mut args = harness.args();
    if let Some(position) = args.iter().position(|arg| arg == "--instance-id") {
        args[position + 1] = instance.to_owned();
    }
    args
}

fn accepted_in(log: &PathBuf) -> usize {
    std::fs::read_to_string(log)
        .map(|text| text.matches("command accepted").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handlers_share_the_partitions_and_survive_losing_one() -> TestResult {
    let harness = HandlerHarness::prepare(6).await?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_keel-handler-process"));
    let log = |name: &str| std::env::temp_dir().join(format!("{}-{name}.log", harness.config.keyspace));
    let (log_a, log_b) = (log("a"), log("b"));
    eprintln!("scale test: logs at {} and {}", log_a.display(), log_b.display());
    let mut a = HandlerProcess::new(binary.clone(), args_for(&harness, "handler-a"), log_a.clone());
    let mut b = HandlerProcess::new(binary, args_for(&harness, "handler-b"), log_b.clone());
    a.spawn()?;
    b.spawn()?;

    let commands = workload(STREAMS, COMMANDS);
    let (split_at, respawned) = (COMMANDS * 4 / 5, tokio::sync::Notify::new());
    // About 100 commands a second, so the kill, the take-over and the return all happen under
    // load; the last fifth is sent only once b is back, so it has work to take back.
    let producing = async {
        for (index, chunk) in commands.chunks(50).enumerate() {
            if index * 50 == split_at {
                respawned.notified().await;
            }
            let started = tokio::time::Instant::now();
            for command in chunk {
                harness.send(command).await?;
            }
            tokio::time::sleep_until(started + Duration::from_millis(500)).await;
        }
        anyhow::Ok(())
    };
    let disrupting = async {
        // Kill b only once it has joined the group and accepted commands of its own: on a
        // loaded machine the join and the replay can take longer than any fixed delay.
        let joined = tokio::time::Instant::now();
        while accepted_in(&log_b) < 100 {
            anyhow::ensure!(
                joined.elapsed() < Duration::from_secs(40),
                "handler b accepted nothing within 40 s; see {}",
                log_b.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let before_kill = accepted_in(&log_b);
        b.kill_9()?;
        // Longer than the 10 s session timeout: a takes b's partitions meanwhile.
        tokio::time::sleep(Duration::from_secs(18)).await;
        b.spawn()?;
        respawned.notify_one();
        anyhow::Ok(before_kill)
    };
    let ((), b_before_kill) = tokio::try_join!(producing, disrupting)?;
    let results = harness.results(COMMANDS).await?;
    a.terminate()?;
    b.terminate()?;

    let (a_total, b_total) = (accepted_in(&log_a), accepted_in(&log_b));
    eprintln!("scale test: accepted by a {a_total}, by b {b_total} ({b_before_kill} before its kill)");
    assert!(
        a_total > 0 && b_before_kill > 0,
        "both instances did work before the kill"
    );
    assert!(
        b_total > b_before_kill,
        "the restarted instance took its partitions back and worked"
    );
    assert_exactly_once(&harness, &commands, &results, STREAMS).await
}
