//! The worked domain's read models: the two trails (envelope metadata only) and the
//! customer-support projections (ids, amounts and statuses from the opened payload; personal
//! fields copied sealed from the envelope).

use std::sync::Arc;

use keel_codec::{EventCodec, WireError};
use keel_crypto::CryptoError;
use keel_customer_support::SupportEvent;
use keel_envelope::EventEnvelope;
use keel_support_projections::{LoggedEvent, SupportProjections};
use keel_trails::{EventMeta, Trails};
use keel_vault_cql::ServiceKeyRing;
use scylla::client::session::Session;

use crate::avro::meta_of;

/// Every projection the projector keeps, as checkpoints name them.
pub const PROJECTIONS: [&str; 9] = [
    keel_trails::AUDIT,
    keel_trails::ACTIVITY,
    keel_trails::SUBJECT_EVENTS,
    keel_support_projections::PROFILES,
    keel_support_projections::SUBSCRIPTIONS,
    keel_support_projections::REFUNDS,
    keel_support_projections::EMAILS,
    keel_support_projections::REFERRALS,
    keel_support_projections::STREAM_EVENTS,
];

/// One record of the events topic.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its value: a single-object Avro event envelope.
    pub bytes: &'a [u8],
}

/// The read models of the customer-support domain.
pub struct SupportModels {
    codec: EventCodec<keel_crypto::LocalFileKms, keel_vault_cql::CqlKeyVault>,
    trails: Trails,
    projections: SupportProjections,
}

impl SupportModels {
    /// The tables in `session`'s keyspace (created if missing), opening payloads with `keys`.
    pub async fn new(session: Arc<Session>, keys: Arc<ServiceKeyRing>) -> anyhow::Result<Self> {
        let codec = EventCodec::new::<keel_customer_support::Customer>(keys, keel_envelope::Upcasters::new())?;
        Ok(Self {
            codec,
            trails: Trails::new(Arc::clone(&session)).await?,
            projections: SupportProjections::new(session).await?,
        })
    }

    /// Applies `records`, idempotently; returns each one's recorded-at time (µs).
    pub async fn apply(&self, records: &[Record<'_>]) -> anyhow::Result<Vec<i64>> {
        let mut envelopes = Vec::with_capacity(records.len());
        let mut metas = Vec::with_capacity(records.len());
        for record in records {
            let at = || format!("event at {}/{}", record.partition, record.offset);
            let envelope = self
                .codec
                .wire()
                .read_event(record.bytes)
                .map_err(|error| anyhow::anyhow!("{} does not read: {error}", at()))?;
            let meta = meta_of(&envelope).map_err(|error| anyhow::anyhow!("{}: {error}", at()))?;
            metas.push((record.partition, record.offset, meta));
            envelopes.push(envelope);
        }
        let mut events = Vec::with_capacity(records.len());
        for envelope in &envelopes {
            events.push(self.open(envelope).await?);
        }
        let logged: Vec<LoggedEvent<'_>> = records
            .iter()
            .zip(&envelopes)
            .zip(&events)
            .map(|((record, envelope), event)| LoggedEvent {
                partition: record.partition,
                offset: record.offset,
                bytes: record.bytes,
                envelope,
                event: event.as_ref(),
            })
            .collect();
        futures::try_join!(self.trails.write(&metas), self.projections.write(&logged))?;
        Ok(metas
            .iter()
            .map(|(_, _, meta): &(i32, i64, EventMeta)| meta.recorded_at_micros)
            .collect())
    }

    /// The domain event of `envelope`; `None` when its tenant was erased (its events keep
    /// their place in the trails and the sealed copy, and nothing else) and for system
    /// events (erasures), which are in the trails only.
    async fn open(&self, envelope: &EventEnvelope) -> anyhow::Result<Option<SupportEvent>> {
        if keel_erasure::is_system_schema(&envelope.payload.schema_name) {
            metrics::counter!("keel_projector_system_events_total", "type" => envelope.event_type.clone()).increment(1);
            return Ok(None);
        }
        // Personal fields are copied sealed from the envelope, so they stay sealed here: the
        // projector never looks up (or holds) a subject key.
        match self.codec.open_event_payload::<SupportEvent>(envelope.clone()).await {
            Ok(opened) => Ok(Some(opened.event)),
            Err(WireError::Crypto(CryptoError::TenantDestroyed(tenant))) => {
                tracing::debug!(tenant, event_id = envelope.event_id, "event of an erased tenant");
                metrics::counter!("keel_projector_erased_tenant_events_total").increment(1);
                Ok(None)
            }
            Err(error) => Err(anyhow::anyhow!(
                "event {} of {}/{} does not open: {error}",
                envelope.event_id,
                envelope.tenant_id,
                envelope.stream_id
            )),
        }
    }
}
