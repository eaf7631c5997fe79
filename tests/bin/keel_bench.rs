//! `make bench`: Keel's throughput next to the raw baseline of the same broker, measured in
//! one run, printed as a table and written to `bench/results/` as JSON and Markdown.
//!
//! - **handler**: commands → events per second. The commands are produced first; the handler
//!   then starts and drains them; the rate is taken between its first and its last result.
//! - **raw transactional produce**: an rdkafka transactional producer writing records of the
//!   handler's average event size, with as many records per transaction as the handler
//!   writes per batch (an event and a result per command), on the same broker.
//! - **projector**: events → every projection, per second. A projector starts on the events
//!   the handler run left and builds into a fresh keyspace; the rate is taken between its
//!   first checkpoint and the one that reaches the log's end.
//! - **raw CQL writes**: prepared inserts of rows of the events' average size into a table
//!   of the same node, with as many writes in flight as the projector keeps (a batch of
//!   events, each writing its rows at once).
//! - **command → visible**: a handler and a projector running, commands sent at a steady
//!   rate; for each, the time from its send to the projection's checkpoint passing its
//!   event (polled every 5 ms), p50 and p99.
//!
//! - **erasure**: an admin command's latency, produced to result, for subjects referenced by
//!   10 events and by `--erasure-history` events (erasure reads no history, so the two
//!   should match); then one KEK rotation of a tenant with `--rotation-keys` live keys.
//!
//! A benchmark, not a test: it asserts nothing about time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::future::try_join_all;
use keel_checkpoints::{Checkpoints, CqlCheckpoints};
use keel_customer_support::SupportCommand;
use keel_integration_tests::handler_harness::{HandlerHarness, agent_command, register};
use keel_kafka::clients;
use keel_results::{CommandResult, Outcome};
use keel_testkit::unique_name;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use scylla::client::session::Session;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Keel's benchmark: figures next to a raw baseline, measured in one run")]
struct Args {
    /// Commands the handler drains.
    #[arg(long, env = "KEEL_BENCH_COMMANDS", default_value_t = 20_000)]
    commands: usize,
    /// Streams they spread over.
    #[arg(long, env = "KEEL_BENCH_STREAMS", default_value_t = 200)]
    streams: usize,
    /// Partitions of the topics.
    #[arg(long, env = "KEEL_BENCH_PARTITIONS", default_value_t = 6)]
    partitions: i32,
    /// Commands per second of the steady load of the latency run; 70% of the pipeline's
    /// maximum (the lower of the handler's and the projector's rates) when the throughput
    /// section ran, else 100.
    #[arg(long, env = "KEEL_BENCH_STEADY_RATE")]
    steady_rate: Option<u64>,
    /// Commands of the latency run.
    #[arg(long, env = "KEEL_BENCH_STEADY_COMMANDS", default_value_t = 2_000)]
    steady_commands: usize,
    /// Events that reference the subject of the large erasure: referrals of that subject by
    /// as many customers, each on its own stream, so the history spreads over every
    /// partition and the erasure cannot find it by reading one stream.
    #[arg(long, env = "KEEL_BENCH_ERASURE_HISTORY", default_value_t = 100_000)]
    erasure_history: usize,
    /// Live subject keys of the tenant whose KEK is rotated.
    #[arg(long, env = "KEEL_BENCH_ROTATION_KEYS", default_value_t = 100_000)]
    rotation_keys: usize,
    /// Run only these sections (throughput, latency, erasure), comma-separated; all if absent.
    #[arg(long, env = "KEEL_BENCH_ONLY", value_delimiter = ',')]
    only: Vec<String>,
    /// Where to write the results.
    #[arg(long, default_value = "bench/results")]
    out: std::path::PathBuf,
}

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == section)
    }
}

/// Prints a figure as soon as it is measured, so a run cut short keeps what it measured.
fn measured(figures: &mut Vec<Figure>, figure: Figure) {
    eprintln!(
        "bench: figure: {} = {:.2} {} ({})",
        figure.name, figure.value, figure.unit, figure.note
    );
    figures.push(figure);
}

#[derive(Debug, Serialize)]
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    note: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    keel_service::telemetry::init_tracing(false, "warn");
    let mut figures = Vec::new();
    let mut steady_rate = args.steady_rate.unwrap_or(100);

    if args.runs("throughput") {
        let handler = handler_throughput(&args).await?;
        let raw =
            raw_transactional_produce(&args, handler.average_event_bytes, handler.records_per_transaction).await?;
        measured(
            &mut figures,
            Figure {
                name: "handler commands -> events",
                value: handler.commands_per_second,
                unit: "commands/s",
                note: format!(
                    "{} commands on {} streams, {} partitions, batches of up to {} commands; production codec (Avro envelopes, payloads sealed per tenant and subject, SHA-256 chain)",
                    args.commands, args.streams, args.partitions, handler.batch
                ),
            },
        );
        measured(
            &mut figures,
            Figure {
                name: "raw transactional produce",
                value: raw.records_per_second / 2.0,
                unit: "command-equivalents/s",
                note: format!(
                    "{:.0} records/s of {} B, {} records per transaction (an event and a result per command)",
                    raw.records_per_second, handler.average_event_bytes, handler.records_per_transaction
                ),
            },
        );
        measured(
            &mut figures,
            Figure {
                name: "handler / raw",
                value: handler.commands_per_second / (raw.records_per_second / 2.0),
                unit: "ratio",
                note: "same broker, same run".into(),
            },
        );

        let projector = projector_throughput(&args, &handler).await?;
        let raw_cql = raw_cql_writes(&args, handler.average_event_bytes, projector.writes_in_flight).await?;
        let raw_events = raw_cql.rows_per_second / projector.rows_per_event;
        measured(
            &mut figures,
            Figure {
                name: "projector events -> projections",
                value: projector.events_per_second,
                unit: "events/s",
                note: format!(
                    "{} events, {} projections (~{:.1} CQL row writes per event), batches of up to {}",
                    args.commands,
                    keel_projector::projection_names::<keel_support_projections::SupportProjections>().len(),
                    projector.rows_per_event,
                    projector.batch
                ),
            },
        );
        measured(
            &mut figures,
            Figure {
                name: "raw CQL prepared writes",
                value: raw_events,
                unit: "event-equivalents/s",
                note: format!(
                    "{:.0} rows/s of {} B, {} in flight, same node; / {:.1} writes per event",
                    raw_cql.rows_per_second,
                    handler.average_event_bytes,
                    projector.writes_in_flight,
                    projector.rows_per_event
                ),
            },
        );
        if args.steady_rate.is_none() {
            let maximum = handler.commands_per_second.min(projector.events_per_second);
            steady_rate = ((maximum * 0.7) as u64).max(1);
        }
        measured(
            &mut figures,
            Figure {
                name: "projector / raw",
                value: projector.events_per_second / raw_events,
                unit: "ratio",
                note: "same node, same run".into(),
            },
        );
    }
    if args.runs("latency") {
        let latency = command_to_visible(&args, steady_rate).await?;
        measured(
            &mut figures,
            Figure {
                name: "command -> visible p50",
                value: latency.p50_ms,
                unit: "ms",
                note: format!(
                    "{} commands at {}/s, handler and projector running",
                    latency.count, steady_rate
                ),
            },
        );
        measured(
            &mut figures,
            Figure {
                name: "command -> visible p99",
                value: latency.p99_ms,
                unit: "ms",
                note: format!("max {:.1} ms", latency.max_ms),
            },
        );
    }
    if args.runs("erasure") {
        let erasure = erasure_figures(&args).await?;
        measured(
            &mut figures,
            Figure {
                name: "erase, subject with 10 events",
                value: erasure.small_ms,
                unit: "ms",
                note: format!(
                    "admin command produced -> result read, median of {}; keys destroyed, SubjectErased appended, certificate signed",
                    erasure.small_count
                ),
            },
        );
        measured(
            &mut figures,
            Figure {
                name: "erase, subject with a long history",
                value: erasure.large_ms,
                unit: "ms",
                note: format!(
                    "one subject referenced by {} events (referrals from as many customers)",
                    args.erasure_history
                ),
            },
        );
        measured(
            &mut figures,
            Figure {
                name: "KEK rotation",
                value: erasure.rotation_seconds,
                unit: "s",
                note: format!(
                    "{} live keys re-wrapped, older epochs destroyed (development file KMS, one lightweight transaction per key, 16 at once)",
                    erasure.rewrapped
                ),
            },
        );
    }
    report(&args, &figures)
}

struct HandlerRun {
    harness: HandlerHarness,
    commands_per_second: f64,
    average_event_bytes: usize,
    records_per_transaction: usize,
    batch: usize,
}

/// A handler harness with the production memory bounds (the harness's own are small, so
/// that tests exercise trimming).
async fn bench_harness(partitions: i32) -> anyhow::Result<HandlerHarness> {
    let mut harness = HandlerHarness::prepare(partitions).await?;
    harness.config.memory_streams = keel_handler::config::DEFAULT_MEMORY_STREAMS;
    harness.config.memory_results = keel_handler::config::DEFAULT_MEMORY_RESULTS;
    Ok(harness)
}

async fn handler_throughput(args: &Args) -> anyhow::Result<HandlerRun> {
    let mut harness = bench_harness(args.partitions).await?;
    harness.config.max_batch = 200;
    let stream = |i: usize| format!("c-{:05}", i % args.streams);
    eprintln!("bench: producing {} commands", args.commands);
    let commands: Vec<_> = (0..args.commands)
        .map(|i| {
            let payload = if i < args.streams {
                register(&stream(i))
            } else {
                SupportCommand::IssueRefund {
                    refund_id: format!("r-{i}"),
                    amount_cents: 100,
                    reason: "bench".into(),
                }
            };
            agent_command("acme", &stream(i), payload)
        })
        .collect();
    harness.send_many(&commands).await?;

    // One reader for the whole run, counting results as they come: rereading the topic from
    // its start on every poll cost the machine more than the handler did.
    let mut results = watch_results(&harness)?;
    eprintln!("bench: starting the handler");
    harness.restart()?;
    let mut first: Option<Instant> = None;
    let mut seen = 0;
    let finished = loop {
        tokio::time::timeout(Duration::from_secs(60), results.recv())
            .await
            .context("no result for a minute")?
            .context("the results reader stopped")?;
        first.get_or_insert_with(Instant::now);
        seen += 1;
        if seen >= args.commands {
            break Instant::now();
        }
    };
    let elapsed = finished.duration_since(first.context("no result ever arrived")?);
    let events = harness
        .read_all(
            &harness.config.events_topic,
            |records| records.len() >= args.commands,
            Duration::from_secs(60),
        )
        .await?;
    harness.stop().await?;
    let batch = harness.config.max_batch;
    let average_event_bytes = events.iter().map(Vec::len).sum::<usize>() / events.len().max(1);
    Ok(HandlerRun {
        harness,
        commands_per_second: args.commands as f64 / elapsed.as_secs_f64(),
        average_event_bytes,
        records_per_transaction: 2 * batch,
        batch,
    })
}

struct RawRun {
    records_per_second: f64,
}

async fn raw_transactional_produce(args: &Args, record_bytes: usize, per_transaction: usize) -> anyhow::Result<RawRun> {
    let kafka = keel_testkit::TestKafka::connect().await?;
    let topic = kafka.create_topic("bench_raw", args.partitions).await?;
    let producer: FutureProducer =
        clients::transactional_producer(kafka.brokers(), &unique_name("bench_raw")).create()?;
    tokio::task::block_in_place(|| producer.init_transactions(Duration::from_secs(30)))?;
    let payload = vec![b'x'; record_bytes];
    let keys: Vec<String> = (0..args.streams).map(|i| format!("acme/c-{i:05}")).collect();
    let total = 2 * args.commands;
    eprintln!("bench: raw transactional produce of {total} records");
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        tokio::task::block_in_place(|| producer.begin_transaction())?;
        let count = per_transaction.min(total - sent);
        let sends = (0..count).map(|i| {
            let record = FutureRecord::to(&topic)
                .key(&keys[(sent + i) % keys.len()])
                .payload(&payload);
            producer.send(record, Duration::ZERO)
        });
        for delivery in futures::future::join_all(sends).await {
            delivery.map_err(|(error, _)| error)?;
        }
        tokio::task::block_in_place(|| producer.commit_transaction(Duration::from_secs(30)))?;
        sent += count;
    }
    let elapsed = started.elapsed();
    kafka.delete_topic(&topic).await?;
    Ok(RawRun {
        records_per_second: total as f64 / elapsed.as_secs_f64(),
    })
}

/// The sum of the end offsets of the events topic's partitions (records and transaction
/// markers: where a caught-up projector's checkpoints stand).
fn events_end(harness: &HandlerHarness) -> anyhow::Result<i64> {
    let consumer: StreamConsumer =
        clients::read_committed_reader(harness.kafka.brokers(), &unique_name("ends")).create()?;
    let mut end = 0;
    for partition in 0..harness.config.partitions {
        let (_, high) = consumer.fetch_watermarks(&harness.config.events_topic, partition, Duration::from_secs(10))?;
        end += high;
    }
    Ok(end)
}

async fn cql_session(harness: &HandlerHarness, keyspace: &str) -> anyhow::Result<Arc<Session>> {
    let session = keel_cql::connect(&harness.config.cql.nodes, keyspace)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(Arc::new(session))
}

struct ProjectorRun {
    events_per_second: f64,
    rows_per_event: f64,
    writes_in_flight: usize,
    batch: usize,
}

async fn projector_throughput(args: &Args, handler: &HandlerRun) -> anyhow::Result<ProjectorRun> {
    let harness = &handler.harness;
    let mut config = harness.projector_config(&unique_name("bench_projector"));
    config.max_batch = 500;
    let (batch, keyspace) = (config.max_batch, config.cql.keyspace.clone());
    let end = tokio::task::block_in_place(|| events_end(harness))?;
    eprintln!("bench: projecting {} events", args.commands);
    let running = tokio::spawn(
        keel_projector::run_domain::<keel_support_projections::SupportProjections>(
            config,
            std::future::pending::<()>(),
        ),
    );
    let session = cql_session(harness, &keyspace).await?;
    let checkpoints = CqlCheckpoints::new(Arc::clone(&session)).await?;
    let mut first: Option<(Instant, i64)> = None;
    let (last, applied) = loop {
        let applied: i64 = checkpoints
            .checkpoints(keel_projector::AUDIT)
            .await?
            .iter()
            .map(|c| c.next_offset)
            .sum();
        if first.is_none() && applied > 0 {
            first = Some((Instant::now(), applied));
        }
        if applied >= end {
            break (Instant::now(), applied);
        }
        anyhow::ensure!(!running.is_finished(), "the projector stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    running.abort();
    let (started, applied_at_start) = first.context("no checkpoint ever appeared")?;
    // Offsets count transaction markers too: scale to events.
    let events = (applied - applied_at_start) as f64 * args.commands as f64 / end as f64;
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await?;
    // Per event: an audit row, an activity row, the sealed copy, and the domain's rows (a
    // registration writes the profile; a refund its row and the profile's position). Not
    // counted: per batch, one read and one write of each touched subject's event count.
    let writes = 4 * args.streams + 5 * (args.commands - args.streams);
    let rows_per_event = writes as f64 / args.commands as f64;
    Ok(ProjectorRun {
        events_per_second: events / last.duration_since(started).as_secs_f64(),
        rows_per_event,
        writes_in_flight: (batch as f64 * rows_per_event) as usize,
        batch,
    })
}

struct RawCqlRun {
    rows_per_second: f64,
}

async fn raw_cql_writes(args: &Args, row_bytes: usize, in_flight: usize) -> anyhow::Result<RawCqlRun> {
    let keyspace = unique_name("bench_cql");
    let session = keel_cql::connect(&keel_testkit::cql_nodes(), &keyspace)
        .await
        .map_err(anyhow::Error::msg)?;
    session
        .query_unpaged("CREATE TABLE raw (k text, c bigint, v blob, PRIMARY KEY (k, c))", &[])
        .await?;
    let insert = session
        .prepare("INSERT INTO raw (k, c, v) VALUES (?, ?, ?) USING TIMESTAMP ?")
        .await?;
    let payload = vec![b'x'; row_bytes];
    let keys: Vec<String> = (0..args.streams).map(|i| format!("acme/c-{i:05}")).collect();
    let total = 5 * args.commands;
    eprintln!("bench: raw CQL writes of {total} rows, {in_flight} in flight");
    let started = Instant::now();
    let mut written = 0;
    while written < total {
        let count = in_flight.min(total - written);
        let writes = (written..written + count).map(|i| {
            let at = i as i64;
            session.execute_unpaged(&insert, (&keys[i % keys.len()], at, &payload, at))
        });
        try_join_all(writes).await?;
        written += count;
    }
    let elapsed = started.elapsed();
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), &[])
        .await?;
    Ok(RawCqlRun {
        rows_per_second: total as f64 / elapsed.as_secs_f64(),
    })
}

struct LatencyRun {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Streams every command result of `harness` as it is committed.
fn watch_results(harness: &HandlerHarness) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<CommandResult>> {
    // A tailing reader: a partition's end means nothing to it (and reported ends surface
    // as error logs from librdkafka's global error callback).
    let consumer: StreamConsumer = clients::read_committed_reader(harness.kafka.brokers(), &unique_name("results"))
        .set("enable.partition.eof", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..harness.config.partitions {
        assignment.add_partition_offset(&harness.config.results_topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let message = match consumer.recv().await {
                Ok(message) => message,
                Err(error) => {
                    eprintln!("bench: reading results failed: {error}");
                    break;
                }
            };
            if let Ok(result) = serde_json::from_slice::<CommandResult>(message.payload().unwrap_or_default())
                && send.send(result).is_err()
            {
                break;
            }
        }
    });
    Ok(receive)
}

async fn command_to_visible(args: &Args, steady_rate: u64) -> anyhow::Result<LatencyRun> {
    let mut harness = bench_harness(args.partitions).await?;
    harness.restart()?;
    let config = harness.projector_config(&unique_name("bench_visible"));
    let keyspace = config.cql.keyspace.clone();
    let projector = tokio::spawn(
        keel_projector::run_domain::<keel_support_projections::SupportProjections>(
            config,
            std::future::pending::<()>(),
        ),
    );
    let checkpoints = CqlCheckpoints::new(cql_session(&harness, &keyspace).await?).await?;
    let mut results = watch_results(&harness)?;
    let stream = |i: usize| format!("c-{:05}", i % args.streams);
    let registrations: Vec<_> = (0..args.streams)
        .map(|i| agent_command("acme", &stream(i), register(&stream(i))))
        .collect();
    harness.send_many(&registrations).await?;
    for _ in 0..args.streams {
        results.recv().await.context("the results stream ended")?;
    }

    eprintln!(
        "bench: {} commands at {}/s, each timed until visible",
        args.steady_commands, steady_rate
    );
    let mut sent: HashMap<Uuid, Instant> = HashMap::new();
    let mut waiting: Vec<(Uuid, i32, i64)> = Vec::new();
    let mut latencies: Vec<Duration> = Vec::with_capacity(args.steady_commands);
    let interval = Duration::from_micros(1_000_000 / steady_rate.max(1));
    let mut next_send = tokio::time::Instant::now();
    let mut next = 0;
    while latencies.len() < args.steady_commands {
        anyhow::ensure!(!projector.is_finished(), "the projector stopped");
        if next < args.steady_commands && tokio::time::Instant::now() >= next_send {
            let command = agent_command(
                "acme",
                &stream(next),
                SupportCommand::IssueRefund {
                    refund_id: format!("r-{next}"),
                    amount_cents: 100,
                    reason: "steady".into(),
                },
            );
            sent.insert(command.command_id, Instant::now());
            harness.send(&command).await?;
            next += 1;
            next_send += interval;
        }
        while let Ok(result) = results.try_recv() {
            if let Outcome::Accepted {
                position: Some(position),
                ..
            } = result.outcome
                && sent.contains_key(&result.command_id)
            {
                waiting.push((result.command_id, position.partition, position.offset));
            }
        }
        if !waiting.is_empty() {
            let applied: HashMap<i32, i64> = checkpoints
                .checkpoints(keel_support_projections::REFUNDS)
                .await?
                .into_iter()
                .map(|c| (c.partition, c.next_offset))
                .collect();
            let now = Instant::now();
            waiting.retain(|(command_id, partition, offset)| {
                let visible = applied.get(partition).is_some_and(|next| next > offset);
                if visible && let Some(at) = sent.get(command_id) {
                    latencies.push(now.duration_since(*at));
                }
                !visible
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    projector.abort();
    harness.stop().await?;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok(LatencyRun {
        count: latencies.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

struct ErasureRun {
    small_ms: f64,
    small_count: usize,
    large_ms: f64,
    rotation_seconds: f64,
    rewrapped: usize,
}

/// Erase latency for subjects with short and long histories, then a KEK rotation of a
/// tenant with `rotation_keys` live subject keys.
async fn erasure_figures(args: &Args) -> anyhow::Result<ErasureRun> {
    use keel_codec::{CommandHeader, Wire, to_wire_actor};
    use keel_erasure::{AdminCommand, System, erasure_stream};
    use keel_integration_tests::handler_harness::admin_credential;

    let mut harness = bench_harness(args.partitions).await?;
    let email = |j: usize| SupportCommand::SendEmail {
        email_id: format!("e-{j}"),
        to: "someone@example.com".into(),
        subject: "bench".into(),
        body: "bench".into(),
    };
    let small: Vec<String> = (0..6).map(|i| format!("small-{i}")).collect();
    let mut commands = Vec::new();
    for customer in &small {
        commands.push(agent_command("acme", customer, register(customer)));
        commands.extend((1..10).map(|j| agent_command("acme", customer, email(j))));
    }
    for i in 0..args.erasure_history {
        let customer = format!("ref-{i}");
        commands.push(agent_command("acme", &customer, register(&customer)));
        commands.push(agent_command(
            "acme",
            &customer,
            SupportCommand::ReferFriend {
                friend_id: "popular".into(),
                friend_name: "Popular Friend".into(),
                friend_email: "popular@example.com".into(),
                message: "bench".into(),
            },
        ));
    }
    eprintln!("bench: erasure: producing {} commands of history", commands.len());
    let mut results = watch_results(&harness)?;
    harness.send_many(&commands).await?;
    harness.restart()?;
    let mut seen = 0;
    while seen < commands.len() {
        results.recv().await.context("the results watcher stopped")?;
        seen += 1;
    }

    let directory = tempfile::tempdir()?;
    let (key_file, _) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, std::future::pending::<()>()));
    let producer: FutureProducer = clients::producer(harness.kafka.brokers()).create()?;
    let wire = Wire::new::<System>()?;
    let mut erase = async |subject: &str| -> anyhow::Result<f64> {
        let command_id = Uuid::new_v4();
        let stream = erasure_stream(subject);
        let header = CommandHeader {
            command_id,
            tenant: "acme".into(),
            stream: stream.clone(),
            expected_version: None,
            issued_at_micros: 0,
            actor: to_wire_actor(
                &keel_auth::Actor {
                    kind: keel_auth::ActorKind::Human,
                    id: "dpo".into(),
                },
                &[],
                None,
            ),
            credential: admin_credential("acme"),
            correlation_id: Uuid::new_v4(),
            causation_id: None,
        };
        let command = AdminCommand::EraseSubject {
            subject: subject.to_owned(),
            reason: "bench".into(),
        };
        let bytes = wire.encode_command(header, &command)?;
        let key = keel_kafka::partition::stream_key("acme", &stream);
        let started = Instant::now();
        producer
            .send(
                FutureRecord::to(&admin_topic).key(&key).payload(&bytes),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(error, _)| error)?;
        loop {
            let result = tokio::time::timeout(Duration::from_secs(120), results.recv())
                .await
                .context("no erase result within 120 s")?
                .context("the results watcher stopped")?;
            if result.command_id == command_id {
                anyhow::ensure!(
                    matches!(result.outcome, Outcome::Accepted { .. }),
                    "erase of {subject} refused: {result:?}"
                );
                return Ok(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    };
    // The first erase pays for the admin service joining its group.
    erase(&small[0]).await?;
    let mut small_ms = Vec::new();
    for subject in &small[1..] {
        small_ms.push(erase(subject).await?);
    }
    small_ms.sort_by(f64::total_cmp);
    let large_ms = erase("popular").await?;

    eprintln!("bench: rotation: creating {} subject keys", args.rotation_keys);
    let session = cql_session(&harness, &harness.config.cql.keyspace).await?;
    let ring =
        keel_vault_cql::service_key_ring(&harness.config.keys, &harness.config.cql.nodes, Arc::clone(&session)).await?;
    let store = keel_erasure::ErasureStore::new(session).await?;
    {
        use futures::StreamExt;
        let ring = &ring;
        futures::stream::iter(0..args.rotation_keys)
            .map(|i| async move {
                ring.seal_key("acme", &keel_crypto::KeyOwner::Subject(format!("r-{i}")))
                    .await
                    .map(|_| ())
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
    }
    eprintln!("bench: rotation: rotating");
    let rotated = keel_admin::rotation::rotate_tenant(&ring, &store, "acme", Duration::ZERO).await?;
    harness.stop().await?;
    Ok(ErasureRun {
        small_ms: small_ms[small_ms.len() / 2],
        small_count: small_ms.len(),
        large_ms,
        rotation_seconds: rotated.seconds,
        rewrapped: rotated.rewrapped,
    })
}

fn report(args: &Args, figures: &[Figure]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut markdown = String::from("| figure | value | unit | note |\n|---|---:|---|---|\n");
    for figure in figures {
        markdown.push_str(&format!(
            "| {} | {:.2} | {} | {} |\n",
            figure.name, figure.value, figure.unit, figure.note
        ));
    }
    std::fs::write(args.out.join("bench.md"), &markdown)?;
    std::fs::write(args.out.join("bench.json"), serde_json::to_vec_pretty(figures)?)?;
    println!("{markdown}");
    println!("written to {}", args.out.display());
    Ok(())
}
