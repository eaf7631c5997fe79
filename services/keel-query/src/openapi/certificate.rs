//! The erasure certificate as the document describes it. `keel_erasure::SignedCertificate`
//! is the real type; `/erasures/{subject}` answers the stored document as the admin service
//! wrote it, so these mirror its fields for the schema only. A test keeps them in step.

use keel_auth::{Actor, Authorization};
use utoipa::ToSchema;
use uuid::Uuid;

/// A certificate and its signature, as the admin service issued it.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes keel_erasure::SignedCertificate in the OpenAPI document"
)]
pub(crate) struct SignedCertificate {
    /// The certified facts.
    certificate: Certificate,
    /// The signature over their canonical JSON (sorted keys, no whitespace).
    signature: SignatureBlock,
}

/// The certified facts of one erasure.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes keel_erasure::Certificate in the OpenAPI document")]
struct Certificate {
    /// Always `keel.erasure-certificate.v1`.
    #[schema(example = "keel.erasure-certificate.v1")]
    format: String,
    /// The tenant.
    tenant: String,
    /// The erased subject; `*` when the whole tenant was erased.
    subject: String,
    /// When the keys were destroyed, µs since the Unix epoch.
    erased_at_micros: i64,
    /// Who asked, authenticated.
    requested_by: Actor,
    /// On whose behalf, outermost first.
    on_behalf_of: Vec<Actor>,
    /// The policy rule that allowed it.
    authorization: Authorization,
    /// Why, as the request said.
    reason: String,
    /// The erase command's id.
    command_id: Uuid,
    /// Every subject key version destroyed (empty for a tenant's erasure, which destroys
    /// every key of the tenant).
    destroyed_key_ids: Vec<String>,
    /// How many data key versions were destroyed.
    destroyed_key_count: u64,
    /// How many events referenced the subject, as the projections had applied them when it
    /// was erased; null for a whole tenant.
    referencing_events: Option<u64>,
    /// The `SubjectErased` (or `TenantErased`) event.
    event: ErasureEvent,
    /// When erasure is final against copies on disk, µs since the Unix epoch; null while no
    /// KEK rotation is scheduled.
    final_by_micros: Option<i64>,
}

/// Where the erasure's event sits in the log.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes keel_erasure::EventRef in the OpenAPI document")]
struct ErasureEvent {
    /// The event's id.
    event_id: Uuid,
    /// Its stream (`keel.erasure:<subject>`).
    stream: String,
    /// The events topic.
    topic: String,
    /// Partition.
    partition: i32,
    /// Offset: a projection that reached it has applied the erasure.
    offset: i64,
    /// The event's chain hash, hex.
    hash: String,
}

/// The signature block.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes keel_erasure::SignatureBlock in the OpenAPI document")]
struct SignatureBlock {
    /// Always `Ed25519`.
    #[schema(example = "Ed25519")]
    algorithm: String,
    /// The signing key's id: the hex of its public key's first 8 bytes.
    key_id: String,
    /// The signature, base64 (standard alphabet, padded).
    value: String,
}
