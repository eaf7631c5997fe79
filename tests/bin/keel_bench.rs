//! `make bench`: Keel's throughput next to the raw baseline of the same broker, measured in
//! one run, printed as a table and written to `bench/results/` as JSON and Markdown.
//!
//! - **handler**: commands → events per second. The commands are produced first; the handler
//!   then starts and drains them; the rate is taken between its first and its last result.
//! - **raw transactional produce**: an rdkafka transactional producer writing records of the
//!   handler's average event size, with as many records per transaction as the handler
//!   writes per batch (an event and a result per command), on the same broker.
//!
//! A benchmark, not a test: it asserts nothing about time.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use keel_customer_support::SupportCommand;
use keel_integration_tests::handler_harness::{HandlerHarness, agent_command, register};
use keel_kafka::clients;
use keel_testkit::unique_name;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;

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
    /// Where to write the results.
    #[arg(long, default_value = "bench/results")]
    out: std::path::PathBuf,
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

    let handler = handler_throughput(&args).await?;
    let raw = raw_transactional_produce(&args, handler.average_event_bytes, handler.records_per_transaction).await?;
    figures.push(Figure {
        name: "handler commands -> events",
        value: handler.commands_per_second,
        unit: "commands/s",
        note: format!(
            "{} commands on {} streams, {} partitions, batches of up to {} commands; production codec (Avro envelopes, payloads sealed per tenant and subject, SHA-256 chain)",
            args.commands, args.streams, args.partitions, handler.batch
        ),
    });
    figures.push(Figure {
        name: "raw transactional produce",
        value: raw.records_per_second / 2.0,
        unit: "command-equivalents/s",
        note: format!(
            "{:.0} records/s of {} B, {} records per transaction (an event and a result per command)",
            raw.records_per_second, handler.average_event_bytes, handler.records_per_transaction
        ),
    });
    figures.push(Figure {
        name: "handler / raw",
        value: handler.commands_per_second / (raw.records_per_second / 2.0),
        unit: "ratio",
        note: "same broker, same run".into(),
    });
    report(&args, &figures)
}

struct HandlerRun {
    commands_per_second: f64,
    average_event_bytes: usize,
    records_per_transaction: usize,
    batch: usize,
}

async fn handler_throughput(args: &Args) -> anyhow::Result<HandlerRun> {
    let mut harness = HandlerHarness::prepare(args.partitions).await?;
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

    eprintln!("bench: starting the handler");
    harness.restart()?;
    let mut first: Option<Instant> = None;
    let finished = loop {
        let results = harness.results(0).await?;
        if first.is_none() && !results.is_empty() {
            first = Some(Instant::now());
        }
        if results.len() >= args.commands {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    let average_event_bytes = events.iter().map(Vec::len).sum::<usize>() / events.len().max(1);
    Ok(HandlerRun {
        commands_per_second: args.commands as f64 / elapsed.as_secs_f64(),
        average_event_bytes,
        records_per_transaction: 2 * harness.config.max_batch,
        batch: harness.config.max_batch,
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
