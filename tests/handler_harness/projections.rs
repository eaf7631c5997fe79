//! The projections of the crash and scale-out workload ([`super::workload`]) read back whole,
//! and their comparison with a projector that builds the same events from scratch, in a
//! keyspace of its own, in one go: what the tests that kill projectors mid-stream check.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use keel_customer_support::SupportCommand;
use keel_support_projections::{EmailRow, ProfileRow, RefundRow, SupportProjections};
use keel_testkit::{TestResult, unique_name};
use keel_trails::{ActivityEntry, AuditEntry, StoredEvent, StreamLog, Trails};
use scylla::client::session::Session;

use super::{HandlerHarness, TestCommand, agent};

/// How long reading waits for the projections to hold every event.
const COMPLETE_WITHIN: Duration = Duration::from_secs(120);

/// The tenant of the workload.
const TENANT: &str = "acme";

fn stream_name(index: usize) -> String {
    format!("c-{index:03}")
}

/// A session on `keyspace`, created if the projector has not done it yet.
async fn session_in(harness: &HandlerHarness, keyspace: &str) -> TestResult<Arc<Session>> {
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&harness.config.cql.nodes)
        .build()
        .await?;
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    );
    session.query_unpaged(create, &[]).await?;
    session.use_keyspace(keyspace, true).await?;
    Ok(Arc::new(session))
}

/// One customer's domain projections as stored (personal fields sealed).
#[derive(Debug, PartialEq)]
pub struct CustomerRows {
    /// The profile.
    pub profile: Option<ProfileRow>,
    /// The refunds.
    pub refunds: Vec<RefundRow>,
    /// The emails.
    pub emails: Vec<EmailRow>,
    /// The stream's sealed event copies.
    pub events: Vec<StoredEvent>,
}

/// Every row a projector built for the workload's streams in one keyspace.
#[derive(Debug)]
pub struct WorkloadProjections {
    /// The keyspace read.
    pub keyspace: String,
    /// Each stream's audit trail, by stream index.
    pub audits: Vec<Vec<AuditEntry>>,
    /// The agent's activity trail.
    pub activity: Vec<ActivityEntry>,
    /// Each customer's domain projections, by stream index.
    pub customers: Vec<CustomerRows>,
}

impl WorkloadProjections {
    /// Reads the projections of `streams` streams in `keyspace`, once the audit trails and
    /// the sealed event copies hold `events` entries in all, or after two minutes (whatever
    /// is missing then shows in the checks).
    pub async fn read(harness: &HandlerHarness, keyspace: &str, streams: usize, events: usize) -> TestResult<Self> {
        let session = session_in(harness, keyspace).await?;
        let trails = Trails::new(Arc::clone(&session)).await?;
        let audits = all_audits(&trails, streams, events).await?;
        let log = StreamLog::new(Arc::clone(&session)).await?;
        let customers = all_customers(&SupportProjections::new(session).await?, &log, streams, events).await?;
        Ok(Self {
            keyspace: keyspace.to_owned(),
            audits,
            activity: trails.activity(TENANT, &agent()).await?,
            customers,
        })
    }
}

/// Every stream's audit trail, once they hold `expected` entries in all (or the timeout).
async fn all_audits(trails: &Trails, streams: usize, expected: usize) -> TestResult<Vec<Vec<AuditEntry>>> {
    let deadline = tokio::time::Instant::now() + COMPLETE_WITHIN;
    loop {
        let mut audits = Vec::with_capacity(streams);
        for stream in 0..streams {
            audits.push(trails.audit(TENANT, &stream_name(stream)).await?);
        }
        let total: usize = audits.iter().map(Vec::len).sum();
        if total >= expected || tokio::time::Instant::now() >= deadline {
            return Ok(audits);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every customer's projections, once their sealed event copies number `expected` in all
/// (the rows of an event are written with its copy, in the same batch), or the timeout.
async fn all_customers(
    projections: &SupportProjections,
    log: &StreamLog,
    streams: usize,
    expected: usize,
) -> TestResult<Vec<CustomerRows>> {
    let deadline = tokio::time::Instant::now() + COMPLETE_WITHIN;
    loop {
        let mut customers = Vec::with_capacity(streams);
        for stream in 0..streams {
            let stream = stream_name(stream);
            customers.push(CustomerRows {
                profile: projections.profile(TENANT, &stream).await?,
                refunds: projections.refunds(TENANT, &stream).await?,
                emails: projections.emails(TENANT, &stream).await?,
                events: log.events(TENANT, &stream).await?,
            });
        }
        let total: usize = customers.iter().map(|c| c.events.len()).sum();
        if total >= expected || tokio::time::Instant::now() >= deadline {
            return Ok(customers);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fails naming the first entry (labelled by `label`) where `built` and `rebuilt` differ.
fn same_rows<T: PartialEq + Debug>(
    what: &str,
    built: &[T],
    rebuilt: &[T],
    label: impl Fn(usize) -> String,
) -> TestResult {
    anyhow::ensure!(
        built.len() == rebuilt.len(),
        "{what}: {} entries, a rebuild from scratch has {}",
        built.len(),
        rebuilt.len()
    );
    if let Some((index, (ours, theirs))) = built
        .iter()
        .zip(rebuilt)
        .enumerate()
        .find(|(_, (ours, theirs))| ours != theirs)
    {
        anyhow::bail!(
            "{what} differ from a rebuild from scratch first at {}:\n  built:   {ours:?}\n  rebuilt: {theirs:?}",
            label(index)
        );
    }
    Ok(())
}

/// Checks what a projector (or several) built against the workload `commands` over
/// `streams` streams — every event once in the trails, each refund once in its customer's
/// total, one sealed copy per event, each profile at its stream's last version — and then,
/// row for row, against a projector that builds the same events from scratch in a keyspace
/// of its own.
pub async fn assert_equal_to_a_rebuild(
    harness: &HandlerHarness,
    built: &WorkloadProjections,
    commands: &[TestCommand],
    streams: usize,
) -> TestResult {
    let keyspace = &built.keyspace;
    let audited: usize = built.audits.iter().map(Vec::len).sum();
    anyhow::ensure!(
        audited == commands.len(),
        "{keyspace}: {audited} audit entries for {} events: every event must be in the trail, once",
        commands.len()
    );
    anyhow::ensure!(
        built.activity.len() == commands.len(),
        "{keyspace}: {} activity entries for {} events",
        built.activity.len(),
        commands.len()
    );
    for (index, customer) in built.customers.iter().enumerate() {
        let stream = stream_name(index);
        let sent = commands.iter().filter(|c| c.stream == stream).count();
        let refunds_sent = commands
            .iter()
            .filter(|c| c.stream == stream && matches!(c.payload, SupportCommand::IssueRefund { .. }))
            .count();
        let total: i64 = customer.refunds.iter().map(|r| r.amount_cents - r.reversed_cents).sum();
        anyhow::ensure!(
            total == 100 * refunds_sent as i64,
            "{keyspace} {stream}: refund total {total}, expected {} (every refund once)",
            100 * refunds_sent
        );
        anyhow::ensure!(
            customer.events.len() == sent,
            "{keyspace} {stream}: {} sealed copies for {sent} events",
            customer.events.len()
        );
        let profile = customer.profile.as_ref().map(|p| p.position.version);
        anyhow::ensure!(
            profile == Some(sent as i64),
            "{keyspace} {stream}: the profile is at version {profile:?}, the stream at {sent}"
        );
    }

    let rebuilt = harness.projector_config(&unique_name("prebuild"));
    let rebuilt_keyspace = rebuilt.cql.keyspace.clone();
    let rebuilding = tokio::spawn(
        keel_projector::run_domain::<keel_support_projections::SupportProjections>(
            rebuilt,
            std::future::pending::<()>(),
        ),
    );
    let from_scratch = WorkloadProjections::read(harness, &rebuilt_keyspace, streams, commands.len()).await;
    rebuilding.abort();
    // Let the cancelled projector drop its clients while the runtime is still up.
    let _cancelled = rebuilding.await;
    let from_scratch = from_scratch?;

    same_rows("audit trails", &built.audits, &from_scratch.audits, stream_name)?;
    same_rows(
        "the agent's activity trail",
        &built.activity,
        &from_scratch.activity,
        |index| format!("entry {index}"),
    )?;
    same_rows(
        "domain projections",
        &built.customers,
        &from_scratch.customers,
        stream_name,
    )
}
