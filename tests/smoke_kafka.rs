//! Smoke test of the real Kafka broker: transactions work on a single node and
//! `read_committed` readers never see records of an aborted transaction.

use std::time::Duration;

use anyhow::Context;
use keel_testkit::{TestKafka, TestResult, unique_name};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_sees_committed_records_and_not_aborted_ones() -> TestResult {
    let kafka = TestKafka::connect().await?;
    let topic = kafka.create_topic("smoke_txn", 1).await?;

    let producer: FutureProducer = kafka
        .client_config()
        .set("transactional.id", unique_name("smoke_txn_producer"))
        .create()?;
    producer.init_transactions(TIMEOUT)?;

    producer.begin_transaction()?;
    for i in 0..3 {
        send(&producer, &topic, &format!("aborted-{i}")).await?;
    }
    producer.abort_transaction(TIMEOUT)?;

    producer.begin_transaction()?;
    for i in 0..3 {
        send(&producer, &topic, &format!("committed-{i}")).await?;
    }
    producer.commit_transaction(TIMEOUT)?;

    // The committed records follow the aborted ones in the log, so a reader that could see
    // aborted records would receive them before the committed ones.
    let committed = read_values(&kafka, &topic, "read_committed", 3).await?;
    assert_eq!(committed, ["committed-0", "committed-1", "committed-2"]);

    // Control: the aborted records really are in the log, so the assertion above can fail.
    let uncommitted = read_values(&kafka, &topic, "read_uncommitted", 6).await?;
    assert_eq!(
        uncommitted,
        [
            "aborted-0",
            "aborted-1",
            "aborted-2",
            "committed-0",
            "committed-1",
            "committed-2"
        ]
    );

    eprintln!("kafka smoke: transactions verified against {}", kafka.brokers());
    kafka.delete_topic(&topic).await
}

async fn send(producer: &FutureProducer, topic: &str, value: &str) -> TestResult {
    producer
        .send(FutureRecord::to(topic).key("smoke").payload(value), TIMEOUT)
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("producing {value} to {topic}"))?;
    Ok(())
}

/// Reads the first `count` values of partition 0 of `topic` with the given isolation level.
async fn read_values(kafka: &TestKafka, topic: &str, isolation: &str, count: usize) -> TestResult<Vec<String>> {
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", unique_name("smoke_reader"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;

    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .with_context(|| format!("waiting for record {} of {topic} ({isolation})", values.len()))??;
        let payload = message.payload().context("record without a value")?;
        values.push(String::from_utf8(payload.to_vec())?);
    }
    Ok(values)
}
