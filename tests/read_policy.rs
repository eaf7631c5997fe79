//! Reads of personal data are authorised by the tenant's read rules and recorded (issue 18,
//! items 1 and 2), on the real servers: a credential that no read rule names gets every
//! personal field redacted, explicitly; a reader a rule names sees them in clear, and each
//! field shown is in the access log, per subject and per actor, without its value; only a
//! credential granting `keel:privacy` reads the log.

use keel_auth::{Actor, ActorKind};
use keel_cli::demo::personal;
use keel_customer_support::SupportCommand;
use keel_integration_tests::handler_harness::{
    HandlerHarness, agent, agent_command, agent_credential, scoped_credential, supervisor,
};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_query::{PRIVACY_SCOPE, PURPOSE_HEADER};
use keel_testkit::TestResult;
use serde_json::Value;
use uuid::Uuid;

/// GET `path` with a bearer token and a stated purpose.
async fn get_for(base: &str, path: &str, bearer: &str, purpose: &str) -> TestResult<(u16, Value)> {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(bearer)
        .header(PURPOSE_HEADER, purpose)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_fields_are_shown_by_read_rule_and_every_field_shown_is_recorded() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let base = start_read_side(&harness).await?;
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let register = agent_command(
        "acme",
        &customer,
        SupportCommand::RegisterCustomer {
            customer_id: customer.clone(),
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            address: "12 St James's Square".into(),
        },
    );
    harness.send(&register).await?;
    let position = harness
        .result_of(register.command_id)
        .await?
        .accepted_at()
        .ok_or_else(|| anyhow::anyhow!("the registration was refused"))?;
    let profile = format!(
        "/v1/tenants/acme/customers/{customer}?after={}:{}&wait_ms=20000",
        position.partition, position.offset
    );

    // A valid credential of the tenant, for an actor no read rule names, with no scope a rule
    // asks for: the customer is there, every personal field redacted, and said so.
    let scraper = Actor {
        kind: ActorKind::Agent,
        id: "scraper".into(),
    };
    let (status, body) = get(
        &base,
        &profile,
        &scoped_credential("acme", &scraper, &[], "reports:read"),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    for field in ["name", "email", "address"] {
        assert_eq!(
            body["data"][field],
            serde_json::json!({"erased": false, "redacted": true, "value": null}),
            "{field} for a reader no rule names: {body}"
        );
    }

    // The support agent's rule shows them; the purpose it states is recorded.
    let (status, body) = get_for(&base, &profile, &agent_credential("acme"), "refund-review").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(personal(&body["data"], "name"), "Ada Lovelace", "{body}");
    assert_eq!(personal(&body["data"], "address"), "12 St James's Square", "{body}");

    // The access log: not for the agent, nor for a DPO without keel:privacy.
    let by_subject = format!("/v1/tenants/acme/access/subjects/{customer}");
    let (status, body) = get(&base, &by_subject, &agent_credential("acme")).await?;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &Value::from("forbidden")),
        "{body}"
    );
    let dpo = Actor {
        kind: ActorKind::Human,
        id: "dpo".into(),
    };
    let privacy = scoped_credential("acme", &dpo, &[], PRIVACY_SCOPE);
    let (status, body) = get(&base, &by_subject, &privacy).await?;
    assert_eq!(status, 200, "{body}");
    let entries = body["data"].as_array().cloned().unwrap_or_default();
    let mut fields: Vec<&str> = entries.iter().filter_map(|entry| entry["field"].as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["address", "email", "name"],
        "one entry per field shown, none for the redacted read: {body}"
    );
    for entry in &entries {
        assert_eq!(entry["actor"], serde_json::to_value(agent())?, "{entry}");
        assert_eq!(entry["on_behalf_of"], serde_json::to_value([supervisor()])?, "{entry}");
        assert_eq!(entry["subject"], customer.as_str(), "{entry}");
        assert_eq!(entry["purpose"], "refund-review", "{entry}");
        assert_eq!(entry["authorization"]["rule"], "support-agent-reads", "{entry}");
    }
    let text = body.to_string();
    for value in ["Ada", "ada@example.com", "St James"] {
        assert!(!text.contains(value), "the access log holds no personal data: {text}");
    }

    // The same entries per actor, for today.
    let (status, body) = get(
        &base,
        "/v1/tenants/acme/access/actors/agent/support-bot?limit=1000",
        &privacy,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let of_this_subject = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["subject"] == customer.as_str())
        .count();
    assert_eq!(of_this_subject, 3, "{body}");
    harness.stop().await
}
