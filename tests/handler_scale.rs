//! Scale-out: every service runs as several instances that share the partitions through
//! their consumer group. Two command handlers and two projectors (one group, one keyspace)
//! work six partitions under load, and one of each is killed with SIGKILL mid-load. The
//! surviving handler takes over the killed one's partitions once its session times out, and
//! the killed one comes back and takes its share again; the surviving projector takes over
//! the killed projector's partitions, which stays dead. Nothing is lost or doubled: every
//! command has exactly one result, every stream is gapless with an intact chain, and every
//! projection row equals what a projector builds from scratch.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_checkpoints::{Checkpoints, CqlCheckpoints};
use keel_integration_tests::handler_harness::projections::{WorkloadProjections, assert_equal_to_a_rebuild};
use keel_integration_tests::handler_harness::{
    HandlerHarness, HandlerProcess, assert_exactly_once, projector_args, workload,
};
use keel_kafka::partition::{partition_for, stream_key};
use keel_projector::ProjectorConfig;
use keel_testkit::{TestResult, unique_name};

const STREAMS: usize = 100;
const COMMANDS: usize = 5_000;
const PARTITIONS: i32 = 6;

/// A process of the test, killed when the test ends, passing or failing, so that no
/// instance outlives it.
struct Instance(HandlerProcess);

impl Deref for Instance {
    type Target = HandlerProcess;
    fn deref(&self) -> &HandlerProcess {
        &self.0
    }
}

impl DerefMut for Instance {
    fn deref_mut(&mut self) -> &mut HandlerProcess {
        &mut self.0
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Already gone after `terminate`; a failure to kill here cannot fail the test anymore.
        let _ = self.0.kill_9();
    }
}

fn handler_args(harness: &HandlerHarness, instance: &str) -> Vec<String> {
    let mut args = harness.args();
    if let Some(position) = args.iter().position(|arg| arg == "--instance-id") {
        args[position + 1] = instance.to_owned();
    }
    args
}

/// A loopback address nobody listens on right now, for a projector's /metrics.
fn free_local_addr() -> TestResult<SocketAddr> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?)
}

fn micros_now() -> TestResult<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros(),
    )?)
}

/// A handler's log from byte `from` on, without the colours of the terminal format.
fn log_since(log: &Path, from: usize) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(bytes.get(from..).unwrap_or_default());
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

fn log_len(log: &Path) -> usize {
    std::fs::metadata(log).map_or(0, |meta| usize::try_from(meta.len()).unwrap_or(usize::MAX))
}

fn accepted_in(log: &Path) -> usize {
    log_since(log, 0).matches("command accepted").count()
}

/// The partitions of the commands a handler accepted, by its log from byte `from` on.
fn partitions_accepted_since(log: &Path, from: usize) -> BTreeSet<i32> {
    log_since(log, from)
        .lines()
        .filter(|line| line.contains("command accepted"))
        .filter_map(|line| line.split_once(" stream=")?.1.split_whitespace().next())
        .map(|stream| partition_for(stream_key("acme", stream).as_bytes(), PARTITIONS))
        .collect()
}

/// Events a projector process applied since it started, from its /metrics (none while it
/// is not serving them yet).
async fn applied_by(metrics: &str) -> TestResult<u64> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let Ok(response) = client.get(metrics).send().await else {
        return Ok(0);
    };
    let text = response.error_for_status()?.text().await?;
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("keel_projector_events_total "));
    Ok(value.map(str::trim).map(str::parse::<u64>).transpose()?.unwrap_or(0))
}

/// The partitions whose log head the projectors of `keyspace` last saved before `micros`:
/// a projector saves the heads of the partitions assigned to it about once a second.
async fn heads_saved_before(harness: &HandlerHarness, keyspace: &str, micros: i64) -> TestResult<BTreeSet<i32>> {
    let session = keel_cql::connect(&harness.config.cql.nodes, keyspace)
        .await
        .map_err(anyhow::Error::msg)?;
    let checkpoints = CqlCheckpoints::new(Arc::new(session)).await?;
    let heads = checkpoints.heads(keel_projector::RUNTIME_PROJECTIONS[0]).await?;
    let fresh: BTreeSet<i32> = heads
        .iter()
        .filter(|head| head.observed_at_micros > micros)
        .map(|head| head.partition)
        .collect();
    Ok((0..PARTITIONS).filter(|p| !fresh.contains(p)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handlers_and_two_projectors_lose_one_of_each_mid_load_and_stay_exactly_once() -> TestResult {
    let harness = HandlerHarness::prepare(PARTITIONS).await?;
    let log = |name: &str| std::env::temp_dir().join(format!("{}-{name}.log", harness.config.cql.keyspace));
    let (log_a, log_b) = (log("handler-a"), log("handler-b"));
    let handler = |instance: &str, log: &PathBuf| {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_keel-handler-process"));
        Instance(HandlerProcess::new(
            binary,
            handler_args(&harness, instance),
            log.clone(),
        ))
    };
    let (mut handler_a, mut handler_b) = (handler("handler-a", &log_a), handler("handler-b", &log_b));

    // Both projectors in one group, building one keyspace; each serves its own /metrics.
    let shared = harness.projector_config(&unique_name("pscale"));
    let keyspace = shared.cql.keyspace.clone();
    let projector = |instance: &str| -> TestResult<(Instance, String)> {
        let config = ProjectorConfig {
            instance_id: instance.to_owned(),
            ops_addr: free_local_addr()?,
            ..shared.clone()
        };
        let process = HandlerProcess::new(
            PathBuf::from(env!("CARGO_BIN_EXE_keel-projector-process")),
            projector_args(&config),
            log(instance),
        );
        Ok((Instance(process), format!("http://{}/metrics", config.ops_addr)))
    };
    let (mut projector_a, metrics_a) = projector("projector-a")?;
    let (mut projector_b, metrics_b) = projector("projector-b")?;
    eprintln!(
        "scale-out test: logs at {}/{}-*.log, projections in {keyspace}",
        std::env::temp_dir().display(),
        harness.config.cql.keyspace
    );
    for instance in [&mut handler_a, &mut handler_b, &mut projector_a, &mut projector_b] {
        instance.spawn()?;
    }

    let commands = workload(STREAMS, COMMANDS);
    let (split_at, respawned) = (COMMANDS * 4 / 5, tokio::sync::Notify::new());
    // About 100 commands a second, so the kills, the take-overs and the return all happen
    // under load; the last fifth is sent only once handler b is back, so it has work to take
    // back.
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
        // Kill only once every instance has joined its group and done work of its own (so
        // neither projector can be idle): on a loaded machine the joins and the replays can
        // take longer than any fixed delay.
        let joined = tokio::time::Instant::now();
        let applied_before_kill = loop {
            let handled = accepted_in(&log_b);
            let applied = (applied_by(&metrics_a).await?, applied_by(&metrics_b).await?);
            if handled >= 100 && applied.0 >= 50 && applied.1 >= 50 {
                break applied;
            }
            anyhow::ensure!(
                joined.elapsed() < Duration::from_secs(90),
                "not every instance worked within 90 s: handler b accepted {handled} commands, \
                 projectors a and b applied {applied:?} events; see the logs"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let a_log_at_kill = log_len(&log_a);
        handler_b.kill_9()?;
        projector_b.kill_9()?;
        let killed_at = micros_now()?;
        let handled_before_kill = accepted_in(&log_b);

        // Handler a takes b's partitions once b's 10 s session times out: it accepts commands
        // of every partition. Only then does b come back.
        let killed = tokio::time::Instant::now();
        loop {
            let taken = partitions_accepted_since(&log_a, a_log_at_kill);
            if taken.len() == PARTITIONS as usize {
                break;
            }
            let missing: Vec<i32> = (0..PARTITIONS).filter(|p| !taken.contains(p)).collect();
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(120),
                "handler a accepted no command of partitions {missing:?} within 120 s of b's kill; see {}",
                log_a.display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        handler_b.spawn()?;
        respawned.notify_one();
        anyhow::Ok((handled_before_kill, applied_before_kill, killed_at))
    };
    let ((), (handled_before_kill, applied_before_kill, killed_at)) = tokio::try_join!(producing, disrupting)?;
    let results = harness.results(COMMANDS).await?;

    // Projector b stays dead: once its session (45 s by default) times out, projector a is
    // assigned every partition and saves every partition's head.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let stale = heads_saved_before(&harness, &keyspace, killed_at).await?;
        if stale.is_empty() {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "projector a never took over partitions {stale:?}: no head of theirs saved since \
             projector b's kill; see {}",
            log("projector-a").display()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let built = WorkloadProjections::read(&harness, &keyspace, STREAMS, COMMANDS).await?;
    let applied_by_a = applied_by(&metrics_a).await?;
    handler_a.terminate()?;
    handler_b.terminate()?;
    projector_a.terminate()?;

    let (a_total, b_total) = (accepted_in(&log_a), accepted_in(&log_b));
    eprintln!(
        "scale-out test: handler a accepted {a_total} commands, b {b_total} ({handled_before_kill} before its kill); \
         projector a applied {applied_by_a} events ({} before the kill), b {} before its kill",
        applied_before_kill.0, applied_before_kill.1
    );
    // That every instance worked before the kills, and that handler a took over, the waits
    // above made sure of; what remains is what happened after them.
    anyhow::ensure!(
        b_total > handled_before_kill,
        "the restarted handler took its partitions back and accepted commands"
    );
    anyhow::ensure!(
        applied_by_a > applied_before_kill.0,
        "the surviving projector applied events after the kill"
    );
    assert_exactly_once(&harness, &commands, &results, STREAMS).await?;
    assert_equal_to_a_rebuild(&harness, &built, &commands, STREAMS).await
}
