//! Errors of the query API and the one table that maps them to HTTP statuses and codes.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_checkpoints::Freshness;
use serde::Serialize;
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

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

/// The machine-readable code of an error, as the body's `error.code` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no credential, or one that does not verify for the tenant.
    Unauthorized,
    /// 403: the credential lacks a scope.
    Forbidden,
    /// 404: nothing by that id, or nothing this credential may see.
    NotFound,
    /// 400: a malformed path or query parameter.
    BadParameter,
    /// 400: an id in the path breaks the id grammar (`keel_ids::InvalidId::CODE`).
    InvalidId,
    /// 503: read-your-writes ran out of time; the body carries the freshness reached.
    NotFresh,
    /// 500: the store or the vault failed.
    Internal,
}

impl ErrorCode {
    /// The code as the body and the `keel_query_errors_total` metric spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::BadParameter => "bad_parameter",
            Self::InvalidId => keel_ids::InvalidId::CODE,
            Self::NotFresh => "not_fresh",
            Self::Internal => "internal",
        }
    }
}

impl ApiError {
    /// An internal error: the store or the vault failed. The detail is logged, not answered.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    /// The HTTP status and the machine-readable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Self::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::BadParameter { .. } => (StatusCode::BAD_REQUEST, ErrorCode::BadParameter),
            Self::InvalidId(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidId),
            Self::NotFresh(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::NotFresh),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

/// The body of every error answer.
// `Error` in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What failed.
    pub error: ErrorDetail,
    /// With `not_fresh`: how far the projection got.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub freshness: Option<Freshness>,
}

/// What failed: a stable code and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable.
    pub code: ErrorCode,
    /// Lowercase, for people; names no other tenant's data.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "query failed");
        }
        let message = self.to_string();
        let freshness = match self {
            Self::NotFresh(freshness) => Some(freshness),
            _ => None,
        };
        metrics::counter!("keel_query_errors_total", "code" => code.as_str()).increment(1);
        let body = ErrorBody {
            error: ErrorDetail { code, message },
            freshness,
        };
        (status, Json(body)).into_response()
    }
}

/// The error answers of a read route, for its `#[utoipa::path(responses(...))]`: each status
/// the table gives a read, with the `Error` body.
pub struct ReadErrors;

/// The error answers of a lookup that does not read a projection (no read-your-writes, so no
/// 503), for its `#[utoipa::path(responses(...))]`.
pub struct LookupErrors;

/// The error answers of a route that needs a scope besides the tenant's credential (the
/// access log's `keel:privacy`): [`LookupErrors`] and 403.
pub struct ScopedErrors;

const FORBIDDEN: (&str, &str) = (
    "403",
    "The credential verifies but lacks the scope this route needs (code forbidden).",
);

const BAD_REQUEST: (&str, &str) = ("400", "A malformed parameter or id (codes bad_parameter, invalid_id).");
const UNAUTHORIZED: (&str, &str) = (
    "401",
    "No bearer token, or one that does not verify for this tenant (code unauthorized).",
);
const NOT_FOUND: (&str, &str) = (
    "404",
    "Nothing by that id in this tenant, or nothing this credential may see (code not_found).",
);
const INTERNAL: (&str, &str) = ("500", "The store or the vault failed (code internal).");
const NOT_FRESH: (&str, &str) = (
    "503",
    "Read-your-writes: the position was not reached in time (code not_fresh, with the freshness).",
);

/// Responses with the `Error` body, by status.
fn error_responses(statuses: &[(&str, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    statuses
        .iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name(ErrorBody::name())))
                        .build(),
                )
                .build();
            ((*status).to_owned(), response.into())
        })
        .collect()
}

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, INTERNAL, NOT_FRESH])
    }
}

impl IntoResponses for LookupErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[BAD_REQUEST, UNAUTHORIZED, NOT_FOUND, INTERNAL])
    }
}

impl IntoResponses for ScopedErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, INTERNAL])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_spelled_as_the_body_serializes_it() -> Result<(), serde_json::Error> {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::BadParameter,
            ErrorCode::InvalidId,
            ErrorCode::NotFresh,
            ErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_value(code)?, code.as_str());
        }
        Ok(())
    }
}
