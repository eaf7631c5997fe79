//! `keel demo`: the README's scenario against running services, narrated step by step.
//!
//! An AI support agent, acting on behalf of a human supervisor, onboards customers in two
//! tenants, starts and cancels a subscription, refunds within its limit and is refused above
//! it, sends an email; the supervisor compensates the cancellation; the projections and the
//! audit trail show who did what, on whose behalf, in what order, and the chain verifies; a
//! data-protection officer erases one customer, and the certificate and the erased fields
//! show it. Any step that does not go as told stops the demo with the step and the reason.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use keel_auth::{Actor, ActorKind};
use keel_codec::Wire;
use keel_customer_support::{Customer, SupportCommand};
use keel_erasure::certificate::{verify, verifying_key_from_hex};
use keel_kafka::partition::stream_key;
use keel_results::{CommandResult, LogPosition, Outcome};
use serde_json::Value;
use uuid::Uuid;

use crate::admin::{AdminSendArgs, EraseArgs, erase};
use crate::command::{CommandPathArgs, header_for, produce};

/// `keel demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where Kafka is.
    #[command(flatten)]
    pub kafka: CommandPathArgs,
    /// The admin commands topic.
    #[arg(long, env = "KEEL_ADMIN_TOPIC", default_value = "keel.admin")]
    pub admin_topic: String,
    /// The query API's base URL.
    #[arg(long, env = "KEEL_QUERY_URL", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The development directory (`keel dev init`): signing keys, certificate key.
    #[arg(long, env = "KEEL_DEV_DIR", default_value = ".local/dev")]
    pub dir: PathBuf,
    /// Suffix of this run's customer ids (a fresh one if absent), so runs do not collide.
    #[arg(long)]
    pub run: Option<String>,
}

/// The purpose the demo's reads state (`Keel-Purpose`), recorded in the access log.
const PURPOSE: &str = "customer-support";

/// What a step found, to be shown and checked.
type StepResult<T = ()> = anyhow::Result<T>;

/// A tenant's credentials for the scenario; the API is read with the agent's (any
/// credential of the tenant reads its projections).
struct Credentials {
    agent: String,
    supervisor: String,
    dpo: String,
    /// The data-protection officer reading the access log (`keel:privacy`).
    privacy: String,
    /// A reporting job: a valid credential of the tenant that no read rule names.
    reporter: String,
}

impl Credentials {
    fn for_tenant(dir: &std::path::Path, tenant: &str) -> anyhow::Result<Self> {
        let sam = Actor {
            kind: ActorKind::Human,
            id: "sam".into(),
        };
        let token = |actor: Actor, on_behalf_of: Vec<Actor>, scope: &str| {
            crate::dev::issue(dir, tenant, actor, on_behalf_of, vec![scope.to_owned()])
        };
        Ok(Self {
            agent: token(
                Actor {
                    kind: ActorKind::Agent,
                    id: "support-bot".into(),
                },
                vec![sam.clone()],
                "support:agent",
            )?,
            supervisor: token(sam, Vec::new(), "support:supervisor")?,
            dpo: token(
                Actor {
                    kind: ActorKind::Human,
                    id: "dpo".into(),
                },
                Vec::new(),
                keel_erasure::ADMIN_SCOPE,
            )?,
            privacy: token(
                Actor {
                    kind: ActorKind::Human,
                    id: "dpo".into(),
                },
                Vec::new(),
                "keel:privacy",
            )?,
            reporter: token(
                Actor {
                    kind: ActorKind::Service,
                    id: "weekly-report".into(),
                },
                Vec::new(),
                "reports:read",
            )?,
        })
    }
}

struct Demo {
    args: DemoArgs,
    http: reqwest::Client,
    step: usize,
}

fn accepted(result: &CommandResult) -> StepResult<(LogPosition, Vec<Uuid>)> {
    match &result.outcome {
        Outcome::Accepted {
            position: Some(position),
            event_ids,
            ..
        } => Ok((*position, event_ids.clone())),
        other => anyhow::bail!(
            "{} was not accepted: {other:?}",
            result.command_type.as_deref().unwrap_or("the command")
        ),
    }
}

/// A personal field of a query API answer (`{"value": …}` or `{"erased": true}`, schema
/// `Personal` in its OpenAPI document) as text: its value, `<erased>` or `<redacted>`.
pub fn personal(value: &Value, field: &str) -> String {
    let field = &value[field];
    if field["erased"] == true {
        return "<erased>".into();
    }
    if field["redacted"] == true {
        return "<redacted>".into();
    }
    field["value"].as_str().unwrap_or("<missing>").to_owned()
}

fn refunds_text(refunds: &Value) -> String {
    format!(
        "{} refund(s), issued {} cents, net {} cents",
        refunds["refunds"].as_array().map_or(0, Vec::len),
        refunds["issued_cents"],
        refunds["net_cents"]
    )
}

fn actor_text(actor: &Value) -> String {
    format!(
        "{}:{}",
        actor["kind"].as_str().unwrap_or("?"),
        actor["id"].as_str().unwrap_or("?")
    )
}

impl Demo {
    fn begin(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
    }

    async fn send(
        &self,
        tenant: &str,
        stream: &str,
        token: &str,
        command: SupportCommand,
    ) -> StepResult<CommandResult> {
        let command_id = Uuid::new_v4();
        let header = header_for(token, tenant, stream, command_id)?;
        let bytes = Wire::new::<Customer>()?.encode_command(header, &command)?;
        produce(
            &self.args.kafka,
            &self.args.kafka.commands_topic,
            &stream_key(tenant, stream),
            &bytes,
            command_id,
            Some(30),
        )
        .await?
        .context("no result")
    }

    /// Sends `command` and requires it accepted; prints one line.
    async fn expect_accepted(
        &self,
        tenant: &str,
        stream: &str,
        token: &str,
        command: SupportCommand,
    ) -> StepResult<(LogPosition, Vec<Uuid>)> {
        let what = keel_domain::DomainCommand::command_type(&command);
        let result = self.send(tenant, stream, token, command).await?;
        let (position, events) = accepted(&result)?;
        let actor = result
            .actor
            .as_ref()
            .map_or_else(|| "?".into(), |a| format!("{}:{}", a.kind.as_str(), a.id));
        let on_behalf = result
            .on_behalf_of
            .iter()
            .map(|a| format!(" on behalf of {}:{}", a.kind.as_str(), a.id))
            .collect::<String>();
        println!(
            "    accepted  {tenant}/{stream} {what} by {actor}{on_behalf} -> event at {}:{}",
            position.partition, position.offset
        );
        Ok((position, events))
    }

    /// GET `path` as `token`, reading at or after `after`; the body's JSON, required 200.
    async fn get(&self, path: &str, token: &str, after: Option<LogPosition>) -> StepResult<Value> {
        let mut url = format!("{}{path}", self.args.api.trim_end_matches('/'));
        if let Some(after) = after {
            let join = if url.contains('?') { '&' } else { '?' };
            url.push_str(&format!(
                "{join}after={}:{}&wait_ms=20000",
                after.partition, after.offset
            ));
        }
        // The API waits a bounded time for the projection to reach `after`, then answers
        // 503 not_fresh: a client asks again, as a person would after a moment.
        let mut attempts = 0;
        loop {
            let response = self
                .http
                .get(&url)
                .bearer_auth(token)
                // The purpose this client reads for: recorded with every personal field shown.
                .header("keel-purpose", PURPOSE)
                .send()
                .await
                .with_context(|| format!("GET {url} (is keel-query running?)"))?;
            let status = response.status();
            let body: Value = response.json().await.with_context(|| format!("GET {url}: not JSON"))?;
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && body["error"]["code"] == "not_fresh"
                && attempts < 12
            {
                attempts += 1;
                println!("    (the projection has not reached the write yet; asking again)");
                continue;
            }
            anyhow::ensure!(status.is_success(), "GET {url}: {status}: {body}");
            return Ok(body);
        }
    }
}

/// Runs the scenario; an error names the step that failed and why.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let run = args
        .run
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string()[..6].to_owned());
    let mut demo = Demo {
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        args,
        step: 0,
    };
    let ada = format!("ada-{run}");
    let bob = format!("bob-{run}");
    let gina = format!("gina-{run}");
    println!("Keel demo, run {run}: customers {ada} and {bob} of tenant acme, {gina} of tenant globex");

    demo.begin("Credentials: an AI agent acting for supervisor sam, sam himself, a data-protection officer");
    let acme = Credentials::for_tenant(&demo.args.dir, "acme").context("step 1")?;
    let globex = Credentials::for_tenant(&demo.args.dir, "globex").context("step 1")?;
    println!(
        "    agent:support-bot on behalf of human:sam (scope support:agent, refunds up to {} cents)",
        crate::dev::AGENT_REFUND_LIMIT
    );
    println!("    human:sam (scope support:supervisor), human:dpo (scope keel:admin)");

    let outcome = scenario(&mut demo, &acme, &globex, [&ada, &bob, &gina]).await;
    if let Err(error) = outcome {
        anyhow::bail!("the demo stopped at step {}: {error:#}", demo.step);
    }
    summary(&demo, &ada);
    Ok(())
}

async fn scenario(
    demo: &mut Demo,
    acme: &Credentials,
    globex: &Credentials,
    [ada, bob, gina]: [&String; 3],
) -> StepResult {
    let register = |id: &str, name: &str| SupportCommand::RegisterCustomer {
        customer_id: id.to_owned(),
        name: name.to_owned(),
        email: format!("{id}@example.com"),
        address: format!("{name}'s street 1"),
    };

    demo.begin("The agent onboards customers in two tenants");
    demo.expect_accepted("acme", ada, &acme.agent, register(ada, "Ada Lovelace"))
        .await?;
    demo.expect_accepted("acme", bob, &acme.agent, register(bob, "Bob Noyce"))
        .await?;
    demo.expect_accepted("globex", gina, &globex.agent, register(gina, "Gina Hopper"))
        .await?;

    demo.begin("The agent starts a subscription for Ada, then cancels it");
    let subscription = || "sub-1".to_owned();
    demo.expect_accepted(
        "acme",
        ada,
        &acme.agent,
        SupportCommand::StartSubscription {
            subscription_id: subscription(),
            plan: "pro".into(),
        },
    )
    .await?;
    let (_, cancelled) = demo
        .expect_accepted(
            "acme",
            ada,
            &acme.agent,
            SupportCommand::CancelSubscription {
                subscription_id: subscription(),
                reason: "customer asked in chat".into(),
            },
        )
        .await?;
    let cancellation = *cancelled.first().context("the cancellation has no event")?;

    demo.begin("The agent refunds within its limit, and is refused above it");
    demo.expect_accepted(
        "acme",
        ada,
        &acme.agent,
        SupportCommand::IssueRefund {
            refund_id: "r-1".into(),
            amount_cents: 2_500,
            reason: "late delivery".into(),
        },
    )
    .await?;
    let refused = demo
        .send(
            "acme",
            ada,
            &acme.agent,
            SupportCommand::IssueRefund {
                refund_id: "r-2".into(),
                amount_cents: 9_000,
                reason: "goodwill".into(),
            },
        )
        .await?;
    match &refused.outcome {
        Outcome::Rejected { reason, message, .. } => {
            println!("    REFUSED   acme/{ada} IssueRefund 9000 cents: {reason}: {message}");
        }
        Outcome::Accepted { .. } => {
            anyhow::bail!("a refund of 9000 cents by the agent was accepted: the limit did not hold")
        }
    }

    demo.begin("The agent sends Ada an email");
    demo.expect_accepted(
        "acme",
        ada,
        &acme.agent,
        SupportCommand::SendEmail {
            email_id: "e-1".into(),
            to: format!("{ada}@example.com"),
            subject: "Your refund".into(),
            body: "Dear Ada, 25.00 are on their way.".into(),
        },
    )
    .await?;

    demo.begin("Supervisor sam compensates the cancellation (an event, never an edit)");
    let (last, _) = demo
        .expect_accepted(
            "acme",
            ada,
            &acme.supervisor,
            SupportCommand::ReinstateSubscription {
                subscription_id: subscription(),
                compensates: cancellation,
            },
        )
        .await?;
    println!("    compensates event {cancellation}");

    demo.begin("Projections, read at or after the last write, with their freshness");
    show_customer(demo, "acme", ada, &acme.agent, Some(last)).await?;
    let body = demo
        .get(
            &format!("/v1/tenants/acme/customers/{ada}/subscriptions"),
            &acme.agent,
            Some(last),
        )
        .await?;
    let status = body["data"][0]["status"].as_str().unwrap_or("?").to_owned();
    println!("    subscription sub-1: {status}");
    anyhow::ensure!(status == "active", "the reinstated subscription reads {status}: {body}");
    let body = demo
        .get(
            &format!("/v1/tenants/acme/customers/{ada}/refunds"),
            &acme.agent,
            Some(last),
        )
        .await?;
    println!("    refunds: {}", refunds_text(&body["data"]));
    let body = demo
        .get(
            &format!("/v1/tenants/acme/customers/{ada}/emails"),
            &acme.agent,
            Some(last),
        )
        .await?;
    println!(
        "    email e-1 to {}: {:?}",
        personal(&body["data"][0], "recipient"),
        personal(&body["data"][0], "body")
    );
    let lag: i64 = body["freshness"]["partitions"]
        .as_object()
        .map(|partitions| partitions.values().filter_map(|p| p["lag_events"].as_i64()).sum())
        .unwrap_or(0);
    println!("    freshness: {lag} events not yet applied across partitions");

    demo.begin("Personal data is shown by read rule and every field shown is recorded");
    println!("    the agent (rule support-agent-reads), then a weekly-report service that no read rule names:");
    show_customer(demo, "acme", ada, &acme.agent, Some(last)).await?;
    let redacted = show_customer(demo, "acme", ada, &acme.reporter, Some(last)).await?;
    anyhow::ensure!(
        personal(&redacted, "name") == "<redacted>",
        "a reporting job no read rule names read Ada's name: {redacted}"
    );
    let body = demo
        .get(
            &format!("/v1/tenants/acme/access/subjects/{ada}?limit=3"),
            &acme.privacy,
            None,
        )
        .await?;
    let entries = body["data"].as_array().context("the access log is not a list")?;
    for entry in entries {
        println!(
            "    access log: {} for {} saw {}'s {} in {} (purpose {}, rule {})",
            actor_text(&entry["actor"]),
            entry["on_behalf_of"]
                .as_array()
                .map(|chain| chain.iter().map(actor_text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            entry["subject"].as_str().unwrap_or("?"),
            entry["field"].as_str().unwrap_or("?"),
            entry["stream"].as_str().unwrap_or("?"),
            entry["purpose"].as_str().unwrap_or("-"),
            entry["authorization"]["rule"].as_str().unwrap_or("?"),
        );
    }
    anyhow::ensure!(
        entries
            .iter()
            .any(|entry| entry["purpose"] == PURPOSE && entry["authorization"]["rule"] == "support-agent-reads"),
        "the agent's read of Ada is not in the access log: {body}"
    );

    demo.begin("The audit trail: who did what, on whose behalf, in what order, and the chain verifies");
    let body = demo
        .get(
            &format!("/v1/tenants/acme/streams/{ada}/audit"),
            &acme.agent,
            Some(last),
        )
        .await?;
    let entries = body["data"].as_array().context("the audit trail is not a list")?;
    for entry in entries {
        let on_behalf = entry["on_behalf_of"]
            .as_array()
            .map(|chain| {
                chain
                    .iter()
                    .map(|a| format!(" for {}", actor_text(a)))
                    .collect::<String>()
            })
            .unwrap_or_default();
        let compensates = entry["compensates"]
            .as_str()
            .map(|id| format!(" (compensates {id})"))
            .unwrap_or_default();
        println!(
            "    v{} {:<22} by {}{} rule {}{}",
            entry["version"],
            entry["event_type"].as_str().unwrap_or("?"),
            actor_text(&entry["actor"]),
            on_behalf,
            entry["authorization"]["rule"].as_str().unwrap_or("?"),
            compensates
        );
    }
    anyhow::ensure!(
        entries.len() == 6,
        "Ada's stream has {} events, 6 expected",
        entries.len()
    );
    let verdict = verify_chain(demo, "acme", ada, &acme.agent).await?;
    anyhow::ensure!(verdict == "intact", "Ada's chain: {verdict}");

    demo.begin("The data-protection officer erases Ada (crypto-shredding)");
    let erasure = EraseArgs {
        send: AdminSendArgs {
            kafka: demo.args.kafka.clone(),
            admin_topic: demo.args.admin_topic.clone(),
            tenant: "acme".into(),
            reason: "GDPR art. 17 request, ticket 4711".into(),
            token: acme.dpo.clone(),
            command_id: None,
            wait: true,
            timeout: 60,
        },
        subject: ada.clone(),
    };
    let result = erase(&erasure).await?.1.context("no erase result")?;
    let (erased_at, _) = accepted(&result)?;
    println!(
        "    erased: SubjectErased at {}:{}",
        erased_at.partition, erased_at.offset
    );
    let document = demo
        .get(&format!("/v1/tenants/acme/erasures/{ada}"), &acme.agent, None)
        .await?;
    let public = std::fs::read_to_string(demo.args.dir.join("certificate.ed25519.pub"))
        .context("reading the certificate public key")?;
    let certified = verify(&serde_json::to_vec(&document)?, &verifying_key_from_hex(&public)?)?;
    let final_by = certified
        .final_by_micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map_or_else(|| "not scheduled".into(), |at| at.to_rfc3339());
    println!(
        "    certificate verifies: {} key version(s) destroyed, {} event(s) carried the subject's data, \
         final against copies on disk by {final_by}",
        certified.destroyed_key_count,
        certified
            .referencing_events
            .map_or_else(|| "-".into(), |n| n.to_string()),
    );
    println!(
        "    requested by {}:{}, reason {:?}, signed with key {}",
        certified.requested_by.kind.as_str(),
        certified.requested_by.id,
        certified.reason,
        document["signature"]["key_id"].as_str().unwrap_or("?")
    );
    let mut tampered = document.clone();
    tampered["certificate"]["reason"] = Value::from("edited");
    anyhow::ensure!(
        verify(&serde_json::to_vec(&tampered)?, &verifying_key_from_hex(&public)?).is_err(),
        "a tampered certificate verified"
    );
    println!("    a tampered copy does not verify");

    demo.begin("After the erasure: Ada's personal fields are gone, nothing else changed");
    let profile = show_customer(demo, "acme", ada, &acme.agent, Some(erased_at)).await?;
    anyhow::ensure!(
        personal(&profile, "name") == "<erased>",
        "Ada's name still reads: {profile}"
    );
    let body = demo
        .get(
            &format!("/v1/tenants/acme/customers/{ada}/refunds"),
            &acme.agent,
            Some(erased_at),
        )
        .await?;
    println!("    refunds (not personal, kept): {}", refunds_text(&body["data"]));
    let other = show_customer(demo, "acme", bob, &acme.agent, None).await?;
    anyhow::ensure!(personal(&other, "name") == "Bob Noyce", "Bob changed: {other}");
    let other = show_customer(demo, "globex", gina, &globex.agent, None).await?;
    anyhow::ensure!(personal(&other, "name") == "Gina Hopper", "Gina changed: {other}");
    let verdict = verify_chain(demo, "acme", ada, &acme.agent).await?;
    anyhow::ensure!(verdict == "intact", "Ada's chain after erasure: {verdict}");
    Ok(())
}

/// Prints a customer's profile; returns it.
async fn show_customer(
    demo: &Demo,
    tenant: &str,
    customer: &str,
    token: &str,
    after: Option<LogPosition>,
) -> StepResult<Value> {
    let body = demo
        .get(&format!("/v1/tenants/{tenant}/customers/{customer}"), token, after)
        .await?;
    let profile = body["data"].clone();
    println!(
        "    {tenant}/{customer}: name {:?}, email {:?}, address {:?}, status {}",
        personal(&profile, "name"),
        personal(&profile, "email"),
        personal(&profile, "address"),
        profile["status"].as_str().unwrap_or("?")
    );
    Ok(profile)
}

/// Verifies a stream's chain through the API; prints and returns the verdict.
async fn verify_chain(demo: &Demo, tenant: &str, stream: &str, token: &str) -> StepResult<String> {
    let body = demo
        .get(&format!("/v1/tenants/{tenant}/streams/{stream}/verify"), token, None)
        .await?;
    let verdict = body["data"]["verdict"].as_str().unwrap_or("?").to_owned();
    println!(
        "    chain of {tenant}/{stream}: {verdict} through version {}",
        body["data"]["version"]
    );
    Ok(verdict)
}

fn summary(demo: &Demo, ada: &str) {
    let api = demo.args.api.trim_end_matches('/');
    println!(
        "\nDone: {} steps passed.\n\
         \n\
         Where to look next\n  \
           query API       {api}/openapi.json   e.g. {api}/v1/tenants/acme/streams/{ada}/audit\n  \
           metrics         http://127.0.0.1:9101/metrics (handler), :9102 (projector), :9104 (admin), {api}/metrics (query)\n  \
           logs            .local/logs/<service>.log\n  \
           a token         TOKEN=$(target/debug/keel token --tenant acme --actor agent:support-bot --on-behalf-of human:sam --scope support:agent)\n  \
           read            curl -H \"Authorization: Bearer $TOKEN\" {api}/v1/tenants/acme/customers/{ada}\n  \
           certificate     target/debug/keel admin certificate --tenant acme --subject {ada}\n  \
           make it final   target/debug/keel admin rotate --tenant acme\n  \
           stop            make down",
        demo.step
    );
}
