//! The real parts fail too: while commands flow, Kafka is stopped cleanly and restarted,
//! killed with SIGKILL and restarted, and Cassandra is restarted, under a handler, a
//! projector, a query API and an admin service running in this process. Afterwards every
//! command has exactly one result, every stream is gapless with an intact chain, every
//! event is in the projections, every service says it is ready again (and said it was not
//! while it could not work), and no client logged a broker outage while the broker was up.
//!
//! This file holds one test: it restarts the servers every other test uses, and Cargo runs
//! test binaries one after the other, so nothing else runs meanwhile.

use std::collections::BTreeMap;
use std::future::pending;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use keel_integration_tests::forensics::CapturedLogs;
use keel_integration_tests::handler_harness::{
    HandlerHarness, TestCommand, agent_credential, assert_exactly_once, workload,
};
use keel_integration_tests::read_side::{get, start_read_side_with};
use keel_results::{CommandResult, Outcome};
use keel_testkit::TestResult;
use tokio::task::JoinHandle;

/// Streams of the workload.
const STREAMS: usize = 20;
/// Commands sent per second while the faults happen.
const RATE: u64 = 40;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `infra/infra.sh` with `args` on the shared stack.
fn infra(args: &[&str]) -> TestResult {
    let output = Command::new("bash")
        .arg(repo_root().join("infra/infra.sh"))
        .args(args)
        .output()
        .context("running infra/infra.sh")?;
    anyhow::ensure!(
        output.status.success(),
        "infra.sh {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Brings the shared stack back up whatever happens to the test.
struct StackBack;

impl Drop for StackBack {
    fn drop(&mut self) {
        if let Err(error) = infra(&["up"]) {
            eprintln!("bringing the stack back up failed: {error:#}");
        }
    }
}

fn free_local_addr() -> TestResult<SocketAddr> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?)
}

/// What `/readyz` at `addr` answers: ready or not, and its body.
async fn readyz(addr: SocketAddr) -> (bool, String) {
    match reqwest::get(format!("http://{addr}/readyz")).await {
        Ok(response) => {
            let ready = response.status().is_success();
            (ready, response.text().await.unwrap_or_default())
        }
        Err(error) => (false, error.to_string()),
    }
}

/// Sends `commands` at `RATE` per second, each send waiting for its delivery (librdkafka
/// holds a record through a broker outage for its message timeout, five minutes).
fn send_at_rate(
    harness: Arc<HandlerHarness>,
    commands: Vec<TestCommand>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<TestResult<Vec<TestCommand>>> {
    tokio::spawn(async move {
        let mut sends = Vec::new();
        let mut sent = Vec::new();
        let pause = Duration::from_millis(1000 / RATE);
        for command in commands {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let harness = Arc::clone(&harness);
            let copy = command.clone();
            sends.push(tokio::spawn(async move { harness.send(&copy).await }));
            sent.push(command);
            tokio::time::sleep(pause).await;
        }
        for send in sends {
            send.await??;
        }
        Ok(sent)
    })
}

/// Samples `/readyz` of every service until `stop`: (service, ready) pairs in time order,
/// with when.
fn watch_readiness(
    services: Vec<(&'static str, SocketAddr)>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<(Instant, &'static str, bool)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            for (name, addr) in &services {
                let (ready, _) = readyz(*addr).await;
                seen.push((Instant::now(), *name, ready));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        seen
    })
}

/// Waits until every service answers ready, for at most two minutes after the last fault.
async fn all_ready(services: &[(&'static str, SocketAddr)]) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(120);
    for (name, addr) in services {
        loop {
            let (ready, body) = readyz(*addr).await;
            if ready {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{name} is still not ready two minutes after the last fault: {body}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Warnings and errors of `text`, after byte `from`, that say Kafka is out of reach.
fn broker_outage_lines(text: &str, from: usize) -> Vec<String> {
    text.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .filter(|line| {
            [
                "AllBrokersDown",
                "brokers are down",
                "connection lost",
                "BrokerTransportFailure",
            ]
            .iter()
            .any(|outage| line.contains(outage))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_survive_broker_and_store_restarts_with_nothing_lost_or_doubled() -> TestResult {
    let logs = CapturedLogs::install()?;
    infra(&["up"])?;
    let _back = StackBack;

    let mut harness = HandlerHarness::prepare(2).await?;
    harness.config.ops_addr = free_local_addr()?;
    harness.restart()?;
    let handler_ops = harness.config.ops_addr;
    let mut projector = harness.projector_config(&harness.config.cql.keyspace);
    projector.ops_addr = free_local_addr()?;
    let projector_ops = projector.ops_addr;
    let base = start_read_side_with(&harness, projector).await?;
    let directory = tempfile::tempdir()?;
    let (key_file, _public) = keel_cli::dev::certificate_key(directory.path())?;
    let mut admin = harness.admin_config(key_file);
    admin.ops_addr = free_local_addr()?;
    let admin_ops = admin.ops_addr;
    tokio::spawn(keel_admin::run(admin, pending::<()>()));
    let services = vec![
        ("handler", handler_ops),
        ("projector", projector_ops),
        ("admin", admin_ops),
    ];
    all_ready(&services).await?;

    let harness = Arc::new(harness);
    let commands = workload(STREAMS, 20_000);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = send_at_rate(Arc::clone(&harness), commands, Arc::clone(&stop));
    let watcher = watch_readiness(services.clone(), Arc::clone(&stop));
    let steady = Duration::from_secs(10);

    tokio::time::sleep(steady).await;
    eprintln!("{} fault 1: kafka stopped cleanly", keel_service::now_micros());
    infra(&["stop", "kafka"])?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    infra(&["up", "kafka"])?;
    tokio::time::sleep(steady).await;

    eprintln!("{} fault 2: kafka killed with SIGKILL", keel_service::now_micros());
    infra(&["kill", "kafka"])?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    infra(&["up", "kafka"])?;
    tokio::time::sleep(steady).await;

    eprintln!("{} fault 3: cassandra restarted", keel_service::now_micros());
    let cassandra_down = Instant::now();
    infra(&["stop", "cassandra"])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    infra(&["up", "cassandra"])?;
    let cassandra_up = Instant::now();
    tokio::time::sleep(steady).await;
    eprintln!("{} all servers up again", keel_service::now_micros());
    let broker_up_since = logs.text().len();
    tokio::time::sleep(steady).await;

    stop.store(true, Ordering::SeqCst);
    let sent = sender.await??;
    eprintln!("{} commands sent through three faults", sent.len());
    all_ready(&services).await?;
    let samples = watcher.await?;

    // Exactly once: one result per command, every one accepted, gapless chains.
    let results = wait_for_results(&harness, &sent).await?;
    let log = std::env::temp_dir().join(format!("{}-infra-faults.log", harness.config.cql.keyspace));
    std::fs::write(&log, logs.text())?;
    eprintln!("the services' logs: {}", log.display());
    assert_exactly_once(&harness, &sent, &results, STREAMS).await?;

    // Every event is in the projections: each stream's audit trail, read after its last event.
    let token = agent_credential("acme");
    let mut last: BTreeMap<String, (i32, i64, usize)> = BTreeMap::new();
    for (command, result) in sent.iter().zip(ordered(&results, &sent)?) {
        if let Outcome::Accepted {
            position: Some(position),
            ..
        } = &result.outcome
        {
            let entry = last.entry(command.stream.clone()).or_insert((0, -1, 0));
            entry.2 += 1;
            if position.offset > entry.1 {
                (entry.0, entry.1) = (position.partition, position.offset);
            }
        }
    }
    for (stream, (partition, offset, count)) in &last {
        let path = format!("/v1/tenants/acme/streams/{stream}/audit?after={partition}:{offset}&wait_ms=60000");
        let (status, body) = get(&base, &path, &token).await?;
        anyhow::ensure!(status == 200, "{stream}: {status} {body}");
        let rows = body["data"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(rows == *count, "{stream}: {rows} audit rows for {count} events");
    }

    // Readiness told the truth: the handler said it was not ready while Cassandra was down
    // (its reads and writes failed), and every service is ready again now (checked above).
    let handler_down = samples
        .iter()
        .any(|(at, name, ready)| *name == "handler" && !ready && *at >= cassandra_down && *at <= cassandra_up + steady);
    anyhow::ensure!(
        handler_down,
        "the handler never said it was not ready while Cassandra was down"
    );

    // No client reports every broker down once the broker has been up for a while.
    let outage = broker_outage_lines(&logs.text(), broker_up_since);
    anyhow::ensure!(
        outage.is_empty(),
        "{} lines reported brokers down while the broker was up, e.g. {:?}",
        outage.len(),
        outage.first()
    );
    Ok(())
}

/// Every result of `sent`, waiting up to five minutes for the last ones.
async fn wait_for_results(harness: &HandlerHarness, sent: &[TestCommand]) -> TestResult<Vec<CommandResult>> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let results = harness.results(0).await?;
        let known: std::collections::HashSet<_> = results.iter().map(|r| r.command_id).collect();
        let missing = sent.iter().filter(|c| !known.contains(&c.command_id)).count();
        if missing == 0 || Instant::now() >= deadline {
            return Ok(results);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The result of each command of `sent`, in the same order.
fn ordered<'a>(results: &'a [CommandResult], sent: &[TestCommand]) -> TestResult<Vec<&'a CommandResult>> {
    let by_id: std::collections::HashMap<_, _> = results.iter().map(|r| (r.command_id, r)).collect();
    sent.iter()
        .map(|command| {
            by_id
                .get(&command.command_id)
                .copied()
                .ok_or_else(|| anyhow::anyhow!("no result for {}", command.command_id))
        })
        .collect()
}
