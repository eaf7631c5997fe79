//! The OpenAPI document, generated from the routes' own types: the runtime's routes
//! ([`crate::streams`], each with its `#[utoipa::path]`), the ops routes beside them, and the
//! domain's ([`ReadSide::openapi`]). [`openapi`] builds it; [`crate::router`] builds it once
//! and serves it at `/openapi.json`.

mod certificate;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use utoipa::OpenApi as _;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi, PathsBuilder, Ref, RefOr, ResponseBuilder, ResponsesBuilder};

pub(crate) use certificate::SignedCertificate;

use crate::error::{ErrorBody, ErrorCode};
use crate::{ApiError, ReadSide, streams};

/// The security scheme every `/v1/tenants/{tenant}/` route requires: a bearer JWT of that
/// tenant. A route declares it with `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

/// The tag of the routes the runtime serves for every domain.
pub const RUNTIME_TAG: &str = "runtime";

/// The tag of the health, readiness, metrics and document routes.
pub const OPS_TAG: &str = "ops";

/// The runtime's own part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keel query API",
        description = "Read-only, tenant-scoped projections of Keel's event log. Every answer \
            carries its freshness and honours read-your-writes (`after`, `wait_ms`, `on_timeout`); \
            every error is an `Error` with a stable code."
    ),
    paths(
        streams::freshness,
        streams::audit,
        streams::activity,
        streams::verify,
        streams::state_as_of,
        streams::certificate,
        crate::access::of_subject,
        crate::access::of_actor,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorCode)),
    modifiers(&BearerScheme),
    tags(
        (name = RUNTIME_TAG, description = "Served for every domain: trails, freshness, chain verification, state as of, erasure certificates."),
        (name = OPS_TAG, description = "Health, readiness, metrics and this document; no credential."),
    )
)]
struct RuntimeApi;

/// Declares the [`BEARER`] scheme.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, document: &mut OpenApi) {
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description =
            Some("A token the tenant's issuer signed (`keel-auth`); another tenant's does not verify.".into());
        document
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(bearer));
    }
}

/// The OpenAPI document of a query API serving domain `D`: the runtime's routes, the ops
/// routes and `D`'s ([`ReadSide::openapi`]); where both describe a path or a schema of one
/// name, the runtime's wins.
pub fn openapi<D: ReadSide>() -> OpenApi {
    let mut document = RuntimeApi::openapi();
    document.paths.merge(ops_paths());
    document.merge(D::openapi());
    refer_to_answer_data(&mut document);
    document
}

/// `/healthz`, `/readyz` and `/metrics`, which `keel_service::ops_router` serves.
fn ops_paths() -> utoipa::openapi::Paths {
    let operation = |id: &str, summary: &str, responses: &[(&str, &str)]| {
        let responses = responses
            .iter()
            .fold(ResponsesBuilder::new(), |built, (status, description)| {
                built.response(*status, ResponseBuilder::new().description(*description))
            });
        let operation = OperationBuilder::new()
            .tag(OPS_TAG)
            .operation_id(Some(id))
            .summary(Some(summary))
            .responses(responses);
        PathItem::new(HttpMethod::Get, operation)
    };
    PathsBuilder::new()
        .path(
            "/healthz",
            operation("healthz", "The process runs", &[("200", "`ok`.")]),
        )
        .path(
            "/readyz",
            operation(
                "readyz",
                "Every readiness check passes (CQL reachable, the projector's progress known)",
                &[
                    ("200", "Ready, with the checks."),
                    ("503", "Not ready, with the checks."),
                ],
            ),
        )
        .path(
            "/metrics",
            operation(
                "metrics",
                "Prometheus metrics",
                &[("200", "The text exposition format.")],
            ),
        )
        .build()
}

/// utoipa copies a generic type's argument into it: `Fresh<Profile>` becomes the schema
/// `Fresh_Profile` with `Profile`'s properties inlined as `data`. Each answer's `data`
/// becomes a reference to the named schema instead (or a list of them, for `Fresh_Vec_…`),
/// so a client sees one `Profile` wherever it appears.
fn refer_to_answer_data(document: &mut OpenApi) {
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let named: BTreeSet<String> = components.schemas.keys().cloned().collect();
    for (name, schema) in &mut components.schemas {
        let Some(data) = name.strip_prefix("Fresh_") else {
            continue;
        };
        let reference: RefOr<Schema> = if named.contains(data) {
            Ref::from_schema_name(data).into()
        } else if let Some(item) = data.strip_prefix("Vec_").filter(|item| named.contains(*item)) {
            ArrayBuilder::new().items(Ref::from_schema_name(item)).into()
        } else {
            continue;
        };
        if let RefOr::T(Schema::Object(envelope)) = schema {
            envelope.properties.insert("data".to_owned(), reference);
        }
    }
}

/// `GET /openapi.json` for `D`: the document, built once when the router is.
pub(crate) fn route<D: ReadSide, S: Clone + Send + Sync + 'static>() -> MethodRouter<S> {
    let document = Arc::new(openapi::<D>().to_pretty_json().map(Bytes::from));
    get(move || openapi_json(Arc::clone(&document)))
}

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = OPS_TAG,
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1, JSON.", content_type = "application/json", body = Object)),
)]
async fn openapi_json(document: Arc<Result<Bytes, serde_json::Error>>) -> Response {
    match &*document {
        Ok(json) => ([(CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(error) => ApiError::internal(format!("writing the OpenAPI document: {error}")).into_response(),
    }
}

#[cfg(test)]
mod tests;
