//! Errors of the query API and the one table that maps them to HTTP statuses and codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_checkpoints::Freshness;
use serde_json::json;

/// What a request can fail with. The `code` in the body is stable and machine-readable.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or one that does not verify for this tenant (forged, expired, or
    /// another tenant's: which, the answer does not say).
    #[error("missing or invalid credential")]
    Unauthorized,
    /// The credential is valid but lacks the scope this read needs.
    #[error("the credential lacks the scope {0}")]
    Forbidden(&'static str),
    /// Nothing here by that id, or nothing this credential may see.
    #[error("not found")]
    NotFound,
    /// A path or query parameter is malformed.
    #[error("bad parameter {name}: {reason}")]
    BadParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An id in the path breaks the id grammar every entry point enforces (`keel-ids`).
    #[error(transparent)]
    InvalidId(#[from] keel_ids::InvalidId),
    /// Read-your-writes: the projection did not reach the asked position in time.
    #[error("the projection has not reached the requested position yet")]
    NotFresh(Freshness),
    /// The store failed; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// An internal error: the store or the vault failed. The detail is logged, not answered.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    /// The HTTP status and the machine-readable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::BadParameter { .. } => (StatusCode::BAD_REQUEST, "bad_parameter"),
            Self::InvalidId(_) => (StatusCode::BAD_REQUEST, keel_ids::InvalidId::CODE),
            Self::NotFresh(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_fresh"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "query failed");
        }
        let mut body = json!({ "error": { "code": code, "message": self.to_string() } });
        if let Self::NotFresh(freshness) = &self {
            body["freshness"] = json!(freshness);
        }
        metrics::counter!("keel_query_errors_total", "code" => code).increment(1);
        (status, Json(body)).into_response()
    }
}
