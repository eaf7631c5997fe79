//! Crash test of the command handler: kill -9 at random moments while a producer sends
//! 10,000 commands across 100 streams, restart it each time, then count. Every command must
//! have exactly one result, every stream's versions must be gapless 1..n without
//! duplicates, every chain must verify, and every event must belong to an accepted command.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use keel_customer_support::SupportCommand;
use keel_handler::result::Outcome;
use keel_integration_tests::handler_harness::{HandlerHarness, agent_command, register};
use keel_integration_tests::plain_codec::PlainCommand;
use keel_testkit::TestResult;
use rand::Rng;

const STREAMS: usize = 100;
const COMMANDS: usize = 10_000;
const KILLS: usize = 20;

fn commands() -> Vec<PlainCommand> {
    let stream = |i: usize| format!("c-{:03}", i % STREAMS);
    let mut commands: Vec<PlainCommand> = (0..STREAMS)
        .map(|i| agent_command("acme", &stream(i), register(&stream(i))))
        .collect();
    for i in STREAMS..COMMANDS {
        let payload = if i % 2 == 0 {
            SupportCommand::IssueRefund {
                refund_id: format!("r-{i}"),
                amount_cents: 100,
                reason: "crash test".into(),
            }
        } else {
            SupportCommand::SendEmail {
                email_id: format!("e-{i}"),
                to: format!("{}@canary.example", stream(i)),
                subject: "Hello".into(),
                body: "Crash test".into(),
            }
        };
        commands.push(agent_command("acme", &stream(i), payload));
    }
    commands
}

struct HandlerProcess {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl HandlerProcess {
    fn spawn(&mut self) -> TestResult {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("RUST_LOG", "warn,keel_handler=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the handler process")?;
        self.child = Some(child);
        Ok(())
    }

    fn kill_9(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            child.kill()?; // SIGKILL
            child.wait()?;
        }
        Ok(())
    }

    fn terminate(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
            child.wait()?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_and_duplicates_nothing() -> TestResult {
    let harness = HandlerHarness::prepare(6).await?;
    let log = std::env::temp_dir().join(format!("{}.log", harness.config.keyspace));
    eprintln!("crash test: handler log at {}", log.display());
    let mut handler = HandlerProcess {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_keel-handler-plain")),
        args: harness.args(),
        log,
        child: None,
    };
    handler.spawn()?;

    let commands = commands();
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

    // Every command has exactly one result.
    let mut per_command: HashMap<_, Vec<_>> = HashMap::new();
    for result in &results {
        per_command.entry(result.command_id).or_default().push(result);
    }
    let sent: HashSet<_> = commands.iter().map(|command| command.command_id).collect();
    let missing = sent.iter().filter(|id| !per_command.contains_key(id)).count();
    let duplicated = per_command.values().filter(|results| results.len() > 1).count();
    let unknown = per_command.keys().filter(|id| !sent.contains(id)).count();
    assert_eq!(
        (missing, duplicated, unknown),
        (0, 0, 0),
        "results: missing, duplicated, unknown"
    );

    // Every event belongs to an accepted command, and every accepted command's events exist.
    let mut expected_events = 0;
    for result in &results {
        match &result.outcome {
            Outcome::Accepted { event_ids, .. } => expected_events += event_ids.len(),
            Outcome::Rejected { reason, message, .. } => {
                panic!("command {} rejected: {reason}: {message}", result.command_id)
            }
        }
    }
    let events = harness.events(expected_events).await?;
    assert_eq!(events.len(), expected_events, "events appended vs accepted");
    assert_eq!(
        expected_events, COMMANDS,
        "each command of this workload appends one event"
    );

    // Every stream's versions are gapless from 1, without duplicates, and its chain verifies.
    let mut streams: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for event in &events {
        streams.entry(&event.stream).or_default().push(event);
    }
    assert_eq!(streams.len(), STREAMS);
    for (stream, events) in streams {
        let mut prev_hash = String::new();
        for (index, event) in events.iter().enumerate() {
            assert_eq!(
                event.version,
                index as u64 + 1,
                "{stream}: versions must be gapless, in order, unique"
            );
            assert_eq!(
                event.prev_hash, prev_hash,
                "{stream} v{}: broken chain link",
                event.version
            );
            assert_eq!(
                event.hash,
                event.expected_hash(),
                "{stream} v{}: hash does not verify",
                event.version
            );
            prev_hash = event.hash.clone();
        }
    }
    Ok(())
}
