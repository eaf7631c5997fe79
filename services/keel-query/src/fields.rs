//! Personal fields on read: stored sealed (a projection copies the event's ciphertext), opened
//! here per request with the subject's key. A field whose subject was erased answers
//! `{"erased": true, "value": null}`, one the reader may not see (`crate::reads`)
//! `{"redacted": true, "value": null}`: explicit markers, never an error or garbage. Every
//! other failure to open (a tampered ciphertext, an unreachable vault) is an error, not a
//! guess.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use keel_codec::{EventCodec, FieldOrigin};
use keel_crypto::LocalFileKms;
use keel_projection::StoredField;
use keel_trails::StreamLog;
use keel_vault_cql::CqlKeyVault;
use serde::Serialize;

use crate::ApiError;

/// A personal field, sealed at rest and opened on read with the data subject's key: its
/// value; `{"erased": true, "value": null}` once the subject is erased; or
/// `{"redacted": true, "value": null}` when no read rule of the tenant shows it to the reader.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Personal {
    /// True once the data subject was erased: the value is gone for good.
    pub erased: bool,
    /// True when the tenant's read policy does not show this field to this reader.
    pub redacted: bool,
    /// The value while the subject's key exists and the reader may see it; null otherwise.
    #[schema(required = true)]
    pub value: Option<serde_json::Value>,
}

impl Personal {
    /// The marker of a field the reader may not see.
    pub fn redacted() -> Self {
        Self {
            erased: false,
            redacted: true,
            value: None,
        }
    }
}

/// Opens stored personal fields: the domain's codec, and the subjects seen erased.
pub struct Fields {
    codec: EventCodec<LocalFileKms, CqlKeyVault>,
    /// Subjects seen erased in the projections (tenant, subject).
    erased: Mutex<HashSet<(String, String)>>,
}

impl Fields {
    pub(crate) fn new(codec: EventCodec<LocalFileKms, CqlKeyVault>) -> Self {
        Self {
            codec,
            erased: Mutex::default(),
        }
    }

    /// The codec that opens the domain's events.
    pub fn codec(&self) -> &EventCodec<LocalFileKms, CqlKeyVault> {
        &self.codec
    }

    /// Whether the projections mark `subject` erased (its `SubjectErased` was applied): the
    /// first line of erasure, before any key cache expires. Erasure is final, so a subject
    /// seen erased is remembered; one not erased is asked again next time.
    async fn erased(&self, log: &StreamLog, tenant: &str, subject: &str) -> Result<bool, ApiError> {
        let key = (tenant.to_owned(), subject.to_owned());
        if self
            .erased
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Ok(true);
        }
        let erased = log.is_erased(tenant, subject).await.map_err(ApiError::internal)?;
        if erased {
            self.erased.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
        }
        Ok(erased)
    }

    /// Opens a stored field of `tenant`'s stream `stream`; `None` when nothing is stored.
    pub(crate) async fn open(
        &self,
        log: &StreamLog,
        tenant: &str,
        stream: &str,
        field: Option<&StoredField>,
    ) -> Result<Option<Personal>, ApiError> {
        let Some(field) = field else { return Ok(None) };
        if self.erased(log, tenant, &field.subject_id).await? {
            metrics::counter!("keel_query_personal_fields_total", "shown" => "erased").increment(1);
            return Ok(Some(Personal {
                erased: true,
                redacted: false,
                value: None,
            }));
        }
        let origin = FieldOrigin {
            tenant,
            stream,
            event_id: &field.event_id,
            event_type: &field.event_type,
            schema_version: field.schema_version,
        };
        let value = self
            .codec
            .open_field(origin, &field.sealed())
            .await
            .map_err(ApiError::internal)?;
        let shown = if value.is_none() { "erased" } else { "clear" };
        metrics::counter!("keel_query_personal_fields_total", "shown" => shown).increment(1);
        Ok(Some(Personal {
            erased: value.is_none(),
            redacted: false,
            value,
        }))
    }
}
