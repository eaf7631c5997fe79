//! Keel's Kafka layout on the real broker: records land where the Java partitioner puts
//! them, and topics are created with equal partition counts or refused.

use std::time::Duration;

use anyhow::Context;
use keel_kafka::clients;
use keel_kafka::partition::{partition_for, stream_key};
use keel_kafka::topics::{TopicNames, TopicSettings, command_path_topics, ensure_topics};
use keel_testkit::{TestKafka, TestResult, unique_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test]
async fn keyed_records_land_on_the_java_partition() -> TestResult {
    let kafka = TestKafka::connect().await?;
    let topic = kafka.create_topic("layout_keys", 6).await?;
    let producer: FutureProducer = clients::producer(kafka.brokers()).create()?;

    for i in 0..50 {
        let key = stream_key("acme", &format!("customer-{i}"));
        let delivery = producer
            .send(FutureRecord::to(&topic).key(&key).payload("x"), Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("producing {key}"))?;
        assert_eq!(
            delivery.partition,
            partition_for(key.as_bytes(), 6),
            "placement of {key}"
        );
    }
    kafka.delete_topic(&topic).await
}

fn names(prefix: &str) -> TopicNames {
    TopicNames {
        commands: unique_name(&format!("{prefix}_commands")),
        events: unique_name(&format!("{prefix}_events")),
        results: unique_name(&format!("{prefix}_results")),
        dlq: unique_name(&format!("{prefix}_dlq")),
    }
}

#[tokio::test]
async fn ensure_topics_creates_the_layout_and_is_idempotent() -> TestResult {
    let kafka = TestKafka::connect().await?;
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let names = names("layout_ok");
    let specs = command_path_topics(
        &names,
        &TopicSettings {
            partitions: 3,
            ..TopicSettings::default()
        },
    );

    ensure_topics(&admin, &specs).await?;
    ensure_topics(&admin, &specs)
        .await
        .context("a second ensure must accept existing topics")?;
    for topic in [&names.commands, &names.events, &names.results, &names.dlq] {
        kafka.delete_topic(topic).await?;
    }
    Ok(())
}

#[tokio::test]
async fn ensure_topics_refuses_events_with_another_partition_count() -> TestResult {
    let kafka = TestKafka::connect().await?;
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let names = names("layout_bad");
    // Someone created the events topic by hand with 2 partitions.
    let events = NewTopic::new(&names.events, 2, TopicReplication::Fixed(1));
    admin.create_topics([&events], &AdminOptions::new()).await?;

    let specs = command_path_topics(
        &names,
        &TopicSettings {
            partitions: 3,
            ..TopicSettings::default()
        },
    );
    let refused = ensure_topics(&admin, &specs).await;
    let message = refused
        .expect_err("mismatched partition counts must be refused")
        .to_string();
    assert!(message.contains("equal partition counts"), "{message}");
    for topic in [&names.commands, &names.events, &names.results, &names.dlq] {
        kafka.delete_topic(topic).await?;
    }
    Ok(())
}
