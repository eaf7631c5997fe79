//! The `make demo` scenario (`keel demo`) as a test, against the real servers and the
//! services started the way the demo starts them: the credentials come from `keel dev
//! init`, and every step of the scenario checks what it shows (the agent's refund above its
//! limit refused, the compensation, the audit trail and its chain, the erasure certificate
//! verifying and a tampered copy not, exactly the erased customer's fields gone). A step
//! that does not go as told fails the test with the step and the reason.

use std::future::pending;

use keel_cli::command::CommandPathArgs;
use keel_cli::demo::DemoArgs;
use keel_integration_tests::handler_harness::HandlerHarness;
use keel_integration_tests::read_side::start_read_side;
use keel_testkit::TestResult;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_scenario_runs_end_to_end() -> TestResult {
    let dev = tempfile::tempdir()?;
    let tenants = keel_cli::dev::init(dev.path())?;
    let (certificate_key, _) = keel_cli::dev::certificate_key(dev.path())?;
    let mut harness = HandlerHarness::prepare(6).await?;
    harness.config.tenants = tenants;
    harness.restart()?;
    let api = start_read_side(&harness).await?;
    let admin = harness.admin_config(certificate_key);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, pending::<()>()));

    keel_cli::demo::run(DemoArgs {
        kafka: CommandPathArgs {
            cluster: keel_kafka::KafkaArgs::new(harness.config.kafka.brokers.clone()),
            commands_topic: harness.config.commands_topic.clone(),
            results_topic: harness.config.results_topic.clone(),
        },
        admin_topic,
        api,
        dir: dev.path().to_owned(),
        run: None,
    })
    .await?;
    harness.stop().await
}
