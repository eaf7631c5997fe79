//! The read models the projector keeps: the runtime's own (the audit and activity trails,
//! the per-subject event counts, every stream's sealed events and the erased subjects, from
//! envelope metadata and the record's bytes only) and a domain's, through
//! the projection port (`keel_projection::Projections`: ids, amounts and statuses from the
//! opened payload; personal fields copied sealed from the envelope).

use std::sync::Arc;

use futures::TryFutureExt;
use keel_codec::{EventCodec, WireError};
use keel_crypto::CryptoError;
use keel_envelope::EventEnvelope;
use keel_projection::{LoggedEvent, ProjectionError, Projections};
use keel_trails::{EventMeta, StreamLog, Trails};
use keel_vault_cql::ServiceKeyRing;
use scylla::client::session::Session;

use crate::avro::meta_of;

/// The read models the runtime keeps for every domain, as checkpoints name them.
pub const RUNTIME_PROJECTIONS: [&str; 4] = [
    keel_trails::AUDIT,
    keel_trails::ACTIVITY,
    keel_trails::SUBJECT_EVENTS,
    keel_trails::STREAM_EVENTS,
];

/// Every projection a projector of `P` keeps, as checkpoints name them: the runtime's,
/// then the domain's.
pub fn projection_names<P: Projections>() -> Vec<&'static str> {
    RUNTIME_PROJECTIONS.iter().chain(P::NAMES).copied().collect()
}

/// One record of the events topic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// Its partition.
    pub(crate) partition: i32,
    /// Its offset.
    pub(crate) offset: i64,
    /// Its value: a single-object Avro event envelope.
    pub(crate) bytes: &'a [u8],
}

/// An event read and opened, ready to be written to every projection.
pub(crate) struct Prepared<'a, E> {
    /// Where it is in the log.
    pub(crate) record: Record<'a>,
    envelope: EventEnvelope,
    meta: EventMeta,
    /// The domain event; `None` for system events and events of an erased tenant.
    event: Option<E>,
}

impl<E> Prepared<'_, E> {
    /// When the event was recorded, µs since the Unix epoch.
    pub(crate) fn recorded_at_micros(&self) -> i64 {
        self.meta.recorded_at_micros
    }
}

/// Why events could not be projected.
#[derive(Debug)]
pub(crate) enum Failure {
    /// May pass: the CQL store or the key vault out of reach, or an event of a payload
    /// schema this release does not know yet (a newer handler wrote it: upgrade the
    /// projector). The batch is retried; nothing is skipped.
    Transient(String),
    /// Will never pass for this event (it does not read, its ids break the grammar, the
    /// store refuses its rows): it is dead-lettered and the projection moves on.
    Permanent {
        /// The stable reason.
        reason: &'static str,
        /// What was wrong.
        error: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(error) => write!(f, "{error}"),
            Self::Permanent { reason, error } => write!(f, "{reason}: {error}"),
        }
    }
}

fn permanent(reason: &'static str) -> impl Fn(String) -> Failure {
    move |error| Failure::Permanent { reason, error }
}

/// A failed write of the trails: transient when the store is out of reach, else permanent.
fn trails_failure(error: anyhow::Error) -> Failure {
    let transient = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<scylla::errors::ExecutionError>())
        .is_some_and(|error| !keel_cql::is_permanent(error));
    let error = format!("{error:#}");
    if transient {
        Failure::Transient(error)
    } else {
        Failure::Permanent {
            reason: "unstorable",
            error,
        }
    }
}

/// A failed write of a domain's projections, likewise.
fn projection_failure(error: ProjectionError) -> Failure {
    match error {
        ProjectionError::Store(store) if !keel_cql::is_permanent(&store) => Failure::Transient(store.to_string()),
        ProjectionError::Store(store) => Failure::Permanent {
            reason: "unstorable",
            error: store.to_string(),
        },
        other => Failure::Permanent {
            reason: "unstorable",
            error: other.to_string(),
        },
    }
}

/// The read models of one domain's projections `P`, beside the runtime's own.
pub(crate) struct Models<P> {
    codec: EventCodec<keel_crypto::LocalFileKms, keel_vault_cql::CqlKeyVault>,
    trails: Trails,
    log: StreamLog,
    projections: P,
}

impl<P: Projections> Models<P> {
    /// The tables in `session`'s keyspace (created if missing), opening payloads with `keys`.
    pub(crate) async fn new(session: Arc<Session>, keys: Arc<ServiceKeyRing>) -> anyhow::Result<Self> {
        let codec = EventCodec::new::<P::Domain>(keys, keel_envelope::Upcasters::new())?;
        keel_projection::create_types(&session).await?;
        Ok(Self {
            codec,
            trails: Trails::new(Arc::clone(&session)).await?,
            log: StreamLog::new(Arc::clone(&session)).await?,
            projections: P::connect(session).await?,
        })
    }

    /// Reads and opens the event of `record`: its envelope, its metadata (every id checked
    /// against the id grammar, so no row key can be refused for it) and its payload.
    pub(crate) async fn prepare<'a>(&self, record: Record<'a>) -> Result<Prepared<'a, P::Event>, Failure> {
        let envelope = self
            .codec
            .wire()
            .read_event(record.bytes)
            .map_err(|error| error.to_string())
            .map_err(permanent("undecodable"))?;
        check_ids(&envelope)
            .map_err(|error| error.to_string())
            .map_err(permanent(keel_ids::InvalidId::CODE))?;
        let meta = meta_of(&envelope).map_err(permanent("undecodable"))?;
        let event = self.open(&envelope).await?;
        Ok(Prepared {
            record,
            envelope,
            meta,
            event,
        })
    }

    /// The id of the event in `bytes`, if its envelope reads and the id is an id.
    pub(crate) fn event_id(&self, bytes: &[u8]) -> Option<String> {
        let envelope = self.codec.wire().read_event(bytes).ok()?;
        keel_ids::is_valid(&envelope.event_id).then_some(envelope.event_id)
    }

    /// Writes `prepared` to every projection, idempotently. A panic in a projection's code
    /// is a permanent failure, like a row the store refuses.
    pub(crate) async fn write(&self, prepared: &[Prepared<'_, P::Event>]) -> Result<(), Failure> {
        use futures::FutureExt;
        let metas: Vec<(i32, i64, EventMeta)> = prepared
            .iter()
            .map(|p| (p.record.partition, p.record.offset, p.meta.clone()))
            .collect();
        let copies: Vec<(i32, i64, &EventMeta, &[u8])> = prepared
            .iter()
            .map(|p| (p.record.partition, p.record.offset, &p.meta, p.record.bytes))
            .collect();
        let logged: Vec<LoggedEvent<'_, P::Event>> = prepared
            .iter()
            .map(|p| LoggedEvent {
                partition: p.record.partition,
                offset: p.record.offset,
                bytes: p.record.bytes,
                envelope: &p.envelope,
                event: p.event.as_ref(),
            })
            .collect();
        let writes = async {
            futures::try_join!(
                self.trails.write(&metas).map_err(trails_failure),
                self.log.write(&copies).map_err(trails_failure),
                self.projections.write(&logged).map_err(projection_failure)
            )
        };
        match std::panic::AssertUnwindSafe(writes).catch_unwind().await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(failure)) => Err(failure),
            Err(panic) => {
                metrics::counter!("keel_projector_panics_total").increment(1);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".into());
                Err(Failure::Permanent {
                    reason: "projection_panicked",
                    error: what,
                })
            }
        }
    }

    /// The domain event of `envelope`; `None` when its tenant was erased (its events keep
    /// their place in the trails and the sealed copy, and nothing else) and for system
    /// events (erasures), which are in the trails only.
    async fn open(&self, envelope: &EventEnvelope) -> Result<Option<P::Event>, Failure> {
        if keel_erasure::is_system_schema(&envelope.payload.schema_name) {
            metrics::counter!("keel_projector_system_events_total", "type" => envelope.event_type.clone()).increment(1);
            return Ok(None);
        }
        // Personal fields are copied sealed from the envelope, so they stay sealed here: the
        // projector never looks up (or holds) a subject key.
        match self.codec.open_event_payload::<P::Event>(envelope.clone()).await {
            Ok(opened) => Ok(Some(opened.event)),
            Err(WireError::Crypto(CryptoError::TenantDestroyed(tenant))) => {
                tracing::debug!(tenant, event_id = envelope.event_id, "event of an erased tenant");
                metrics::counter!("keel_projector_erased_tenant_events_total").increment(1);
                Ok(None)
            }
            Err(WireError::Crypto(error)) if error.is_transient() => Err(Failure::Transient(format!(
                "event {} does not open yet: {error}",
                envelope.event_id
            ))),
            Err(WireError::UnknownPayload(schema)) => Err(Failure::Transient(format!(
                "event {} has payload schema {schema}, unknown to this release: upgrade the projector",
                envelope.event_id
            ))),
            Err(error) => Err(Failure::Permanent {
                reason: "unopenable",
                error: format!("event {} does not open: {error}", envelope.event_id),
            }),
        }
    }
}

/// Checks the ids an event's rows are keyed by against the id grammar: an older handler
/// (or a writer other than the handler) may have let any string through.
fn check_ids(envelope: &EventEnvelope) -> Result<(), keel_ids::InvalidId> {
    keel_ids::check("tenant_id", &envelope.tenant_id)?;
    keel_ids::check_stream("stream_id", &envelope.stream_id)?;
    keel_ids::check("actor.id", &envelope.actor.id)?;
    for principal in &envelope.actor.delegation {
        keel_ids::check("actor.delegation.id", &principal.id)?;
    }
    for subject in &envelope.data_subjects {
        keel_ids::check("data_subjects", subject)?;
    }
    Ok(())
}
