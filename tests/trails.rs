//! End to end on the real Kafka and CQL store: commands through the handler, events through
//! the projector, and one query to the API answers what happened to a stream, in what order,
//! who did it, on whose behalf, allowed by what, and the chain that proves it — waiting for
//! the command's own position first (read-your-writes).

use std::time::Duration;

use keel_customer_support::SupportCommand;
use keel_domain::DomainCommand;
use keel_integration_tests::handler_harness::TestCommand;
use keel_integration_tests::handler_harness::{
    HandlerHarness, agent, agent_command, agent_credential, register, supervisor, supervisor_credential,
};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_results::Outcome;
use keel_testkit::TestResult;
use uuid::Uuid;

fn supervisor_command(tenant: &str, stream: &str, payload: SupportCommand) -> TestCommand {
    TestCommand {
        command_id: Uuid::new_v4(),
        tenant: tenant.into(),
        stream: stream.into(),
        command_type: payload.command_type().into(),
        expected_version: None,
        actor: supervisor(),
        on_behalf_of: vec![],
        credential: supervisor_credential(tenant),
        correlation_id: Uuid::new_v4(),
        payload,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_tells_who_did_what_on_whose_behalf_in_order_and_the_chain() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let base = start_read_side(&harness).await?;

    // The agent, on behalf of alice, registers a customer, starts and cancels a subscription.
    let subscription = "s-1".to_owned();
    for payload in [
        register("c-1"),
        SupportCommand::StartSubscription {
            subscription_id: subscription.clone(),
            plan: "pro".into(),
        },
        SupportCommand::CancelSubscription {
            subscription_id: subscription.clone(),
            reason: "asked".into(),
        },
    ] {
        harness.send(&agent_command("acme", "c-1", payload)).await?;
    }
    let cancellation = loop {
        let results = harness.results(3).await?;
        if let Some(Outcome::Accepted { event_ids, .. }) = results
            .iter()
            .find(|r| r.command_type.as_deref() == Some("CancelSubscription"))
            .map(|r| &r.outcome)
        {
            break event_ids[0];
        }
    };
    // Alice herself undoes the cancellation: a compensating event naming it.
    let reinstate = supervisor_command(
        "acme",
        "c-1",
        SupportCommand::ReinstateSubscription {
            subscription_id: subscription,
            compensates: cancellation,
        },
    );
    harness.send(&reinstate).await?;
    let result = harness.result_of(reinstate.command_id).await?;
    let Outcome::Accepted {
        position: Some(position),
        ..
    } = result.outcome
    else {
        panic!("the compensation should be accepted: {result:?}");
    };

    // Read-your-writes: wait for the compensation's own position, then one query answers.
    let path = format!(
        "/v1/tenants/acme/streams/c-1/audit?after={}:{}&wait_ms=20000",
        position.partition, position.offset
    );
    let (status, body) = get(&base, &path, &agent_credential("acme")).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stale"], false);
    let entries = body["data"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(i64, &str, &str, usize)> = entries
        .iter()
        .map(|e| {
            let kind = e["actor"]["kind"].as_str().unwrap_or("?");
            let on_behalf = e["on_behalf_of"].as_array().map_or(0, Vec::len);
            (
                e["version"].as_i64().unwrap_or(-1),
                e["event_type"].as_str().unwrap_or("?"),
                kind,
                on_behalf,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "CustomerRegistered", "agent", 1),
            (2, "SubscriptionStarted", "agent", 1),
            (3, "SubscriptionCancelled", "agent", 1),
            (4, "SubscriptionReinstated", "human", 0),
        ],
        "what happened, in order, who did it, on whose behalf"
    );
    assert_eq!(entries[0]["on_behalf_of"][0]["id"], "alice");
    assert_eq!(
        entries[0]["authorization"]["rule"], "agent-support",
        "the rule that allowed the agent"
    );
    assert_eq!(entries[3]["authorization"]["rule"], "supervisor-all");
    assert_eq!(
        entries[3]["compensates"],
        cancellation.to_string(),
        "the undo names what it undoes"
    );
    for pair in entries.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "each event links to the one before"
        );
    }

    // Everything the agent did, across streams, in order.
    let (status, body) = get(
        &base,
        "/v1/tenants/acme/actors/agent/support-bot/activity",
        &agent_credential("acme"),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let types: Vec<&str> = body["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["event_type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        ["CustomerRegistered", "SubscriptionStarted", "SubscriptionCancelled"]
    );
    assert_eq!(agent().id, "support-bot");

    // Caught up, the projection reports no lag (transaction markers are not events).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let lags = loop {
        let (_, body) = get(
            &base,
            "/v1/tenants/acme/projections/audit_trail.v1/freshness",
            &agent_credential("acme"),
        )
        .await?;
        let lags: Vec<i64> = body["freshness"]["partitions"]
            .as_object()
            .map(|partitions| partitions.values().filter_map(|p| p["lag_events"].as_i64()).collect())
            .unwrap_or_default();
        if (lags.len() == 2 && lags.iter().all(|lag| *lag == 0)) || tokio::time::Instant::now() >= deadline {
            break lags;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(lags, [0, 0], "lag per partition once caught up");

    // Another tenant's credential learns nothing.
    let (status, body) = get(&base, "/v1/tenants/acme/streams/c-1/audit", &agent_credential("globex")).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = get(
        &base,
        "/v1/tenants/acme/streams/no-such-stream/audit",
        &agent_credential("acme"),
    )
    .await?;
    assert_eq!(status, 404);
    harness.stop().await
}
