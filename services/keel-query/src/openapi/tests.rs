//! The generated document: a domain's routes join the runtime's, and the document holds
//! together (every reference resolves, every answer names its data, every tenant route needs
//! the bearer token).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use keel_auth::{Actor, ActorKind, Authorization};
use keel_checkpoints::Checkpoints;
use keel_domain::{Aggregate, DomainCommand, DomainError, DomainEvent, Recorded, WireSchemas};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::*;
use crate::fresh::{Consistency, Fresh};
use crate::{AppState, ReadErrors};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The runtime's routes and the ops routes, which every domain's document has.
const RUNTIME_ROUTES: [&str; 12] = [
    "/v1/tenants/{tenant}/projections/{projection}/freshness",
    "/v1/tenants/{tenant}/streams/{stream}/audit",
    "/v1/tenants/{tenant}/actors/{kind}/{id}/activity",
    "/v1/tenants/{tenant}/streams/{stream}/verify",
    "/v1/tenants/{tenant}/streams/{stream}/state",
    "/v1/tenants/{tenant}/erasures/{subject}",
    "/v1/tenants/{tenant}/access/subjects/{subject}",
    "/v1/tenants/{tenant}/access/actors/{kind}/{id}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
];

const TICKET_ROUTE: &str = "/v1/tenants/{tenant}/tickets/{ticket}";

/// A made-up domain, a help desk, with one read route that it describes.
struct Desk;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct DeskState;

enum DeskCommand {}

impl DomainCommand for DeskCommand {
    fn command_type(&self) -> &'static str {
        match *self {}
    }
}

#[derive(Debug, Clone, Deserialize)]
enum DeskEvent {}

impl DomainEvent for DeskEvent {
    fn event_type(&self) -> &'static str {
        match *self {}
    }
}

impl Aggregate for Desk {
    const NAME: &'static str = "desk";
    type State = DeskState;
    type Command = DeskCommand;
    type Event = DeskEvent;

    fn handle(_: &DeskState, command: &DeskCommand) -> Result<Vec<DeskEvent>, DomainError> {
        match *command {}
    }

    fn apply(_: DeskState, event: &DeskEvent, _: &Recorded) -> DeskState {
        match *event {}
    }
}

impl WireSchemas for Desk {
    const COMMAND_NAMESPACE: &'static str = "test.desk.commands";
    const EVENT_NAMESPACE: &'static str = "test.desk.events";
    const SCHEMAS: &'static [&'static str] = &[];
}

/// A ticket, as the desk answers it.
#[derive(Serialize, ToSchema)]
struct Ticket {
    /// Its id.
    ticket_id: String,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/tickets/{ticket}",
    tag = "desk",
    params(("tenant" = String, Path), ("ticket" = String, Path), Consistency),
    responses((status = 200, description = "The ticket.", body = Fresh<Ticket>), ReadErrors),
    security(("bearer" = [])),
)]
async fn ticket() -> Json<Ticket> {
    Json(Ticket {
        ticket_id: "t-1".into(),
    })
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(ticket))]
struct DeskApi;

impl ReadSide for Desk {
    type Aggregate = Desk;

    const PROJECTIONS: &'static [&'static str] = &["tickets.v1"];

    async fn connect(_: Arc<scylla::client::session::Session>) -> anyhow::Result<Self> {
        Ok(Desk)
    }

    fn routes<C: Checkpoints>() -> Router<Arc<AppState<C, Self>>> {
        Router::new().route(TICKET_ROUTE, get(ticket))
    }

    fn openapi() -> OpenApi {
        DeskApi::openapi()
    }
}

/// A domain that describes none of its routes.
struct Quiet;

impl ReadSide for Quiet {
    type Aggregate = Desk;

    const PROJECTIONS: &'static [&'static str] = &[];

    async fn connect(_: Arc<scylla::client::session::Session>) -> anyhow::Result<Self> {
        Ok(Quiet)
    }

    fn routes<C: Checkpoints>() -> Router<Arc<AppState<C, Self>>> {
        Router::new()
    }
}

fn document<D: ReadSide>() -> Result<Value, serde_json::Error> {
    serde_json::to_value(openapi::<D>())
}

fn paths(document: &Value) -> BTreeSet<&str> {
    document["paths"]
        .as_object()
        .map(|paths| paths.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// `schema` with references followed, and a nullable one's other branch taken.
fn resolve<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
    {
        return resolve(document, &document["components"]["schemas"][name]);
    }
    match schema["oneOf"]
        .as_array()
        .and_then(|branches| branches.iter().find(|b| b["type"] != "null"))
    {
        Some(branch) => resolve(document, branch),
        None => schema,
    }
}

/// Every `$ref` anywhere under `value`.
fn references<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field.as_str()) {
                    ("$ref", Some(reference)) => found.push(reference),
                    _ => references(field, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[test]
fn a_route_the_domain_describes_in_read_side_openapi_is_in_the_document() -> TestResult {
    let document = document::<Desk>()?;
    let ticket = &document["paths"][TICKET_ROUTE]["get"];
    assert_eq!(ticket["operationId"], "ticket", "{document:#}");
    assert_eq!(
        ticket["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Fresh_Ticket"
    );
    assert_eq!(
        document["components"]["schemas"]["Fresh_Ticket"]["properties"]["data"]["$ref"],
        "#/components/schemas/Ticket"
    );
    assert!(document["components"]["schemas"]["Ticket"].is_object(), "{document:#}");
    let expected: BTreeSet<&str> = RUNTIME_ROUTES.into_iter().chain([TICKET_ROUTE]).collect();
    assert_eq!(paths(&document), expected);
    Ok(())
}

#[test]
fn a_domain_that_describes_nothing_gets_the_runtime_routes_alone() -> TestResult {
    let document = document::<Quiet>()?;
    assert_eq!(paths(&document), RUNTIME_ROUTES.into_iter().collect());
    Ok(())
}

#[test]
fn the_document_is_openapi_3_and_every_reference_resolves() -> TestResult {
    let document = document::<Desk>()?;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > 20, "only {} references", found.len());
    for reference in found {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("{reference} is not a schema reference"))?;
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{reference} does not resolve"
        );
    }
    Ok(())
}

/// Every `propertyNames` schema anywhere under `value`.
fn property_names<'v>(value: &'v Value, found: &mut Vec<&'v Value>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if key == "propertyNames" {
                    found.push(field);
                }
                property_names(field, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| property_names(item, found)),
        _ => {}
    }
}

#[test]
fn every_map_is_keyed_by_strings_as_json_objects_are() -> TestResult {
    let document = document::<Desk>()?;
    let mut found = Vec::new();
    property_names(&document, &mut found);
    assert!(!found.is_empty(), "freshness is a map by partition");
    for keys in found {
        assert_eq!(keys["type"], "string", "{keys}");
    }
    Ok(())
}

#[test]
fn every_answer_names_its_data_schema() -> TestResult {
    let document = document::<Desk>()?;
    let schemas = document["components"]["schemas"].as_object().ok_or("no schemas")?;
    let answers: Vec<_> = schemas.iter().filter(|(name, _)| name.starts_with("Fresh_")).collect();
    assert!(answers.len() >= 6, "{:?}", schemas.keys());
    for (name, answer) in answers {
        let data = &answer["properties"]["data"];
        let named = data["$ref"].as_str().or_else(|| data["items"]["$ref"].as_str());
        assert!(named.is_some(), "{name}'s data is not a named schema: {data}");
        for field in ["freshness", "stale", "generation"] {
            assert!(answer["properties"][field].is_object(), "{name} lacks {field}");
        }
    }
    Ok(())
}

#[test]
fn every_tenant_route_needs_the_bearer_token_and_answers_errors_with_the_error_schema() -> TestResult {
    let document = document::<Desk>()?;
    assert_eq!(document["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
    let error = "#/components/schemas/Error";
    for (path, item) in document["paths"].as_object().ok_or("no paths")? {
        let operation = &item["get"];
        if path.starts_with("/v1/tenants/{tenant}/") {
            assert_eq!(operation["security"], serde_json::json!([{ BEARER: [] }]), "{path}");
            for status in ["400", "401", "404", "500"] {
                let schema = &operation["responses"][status]["content"]["application/json"]["schema"];
                assert_eq!(schema["$ref"], error, "{path} {status}");
            }
        } else {
            assert!(operation["security"].is_null(), "{path} needs no credential");
        }
    }
    Ok(())
}

#[test]
fn every_projection_read_takes_the_read_your_writes_parameters() -> TestResult {
    let document = document::<Desk>()?;
    for (path, item) in document["paths"].as_object().ok_or("no paths")? {
        // Certificates and the access log are written before they are read: no projection.
        if !path.starts_with("/v1/tenants/{tenant}/") || path.contains("/erasures/") || path.contains("/access/") {
            continue;
        }
        let parameters = item["get"]["parameters"].as_array().ok_or("no parameters")?;
        let query = |name: &str| parameters.iter().find(|p| p["name"] == name && p["in"] == "query");
        assert!(
            query("after").is_some_and(|p| p["schema"]["pattern"].is_string()),
            "{path}"
        );
        assert!(query("wait_ms").is_some(), "{path}");
        assert_eq!(
            query("on_timeout").map(|p| &p["schema"]["enum"]),
            Some(&serde_json::json!(["fail", "stale"])),
            "{path}"
        );
    }
    Ok(())
}

/// Every object key of `value` is a property of `schema`, and every property a key.
fn described(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(document, schema);
    match value {
        Value::Object(fields) => {
            let properties = schema["properties"]
                .as_object()
                .ok_or_else(|| format!("{at} is not described as an object"))?;
            let keys: BTreeSet<&String> = fields.keys().collect();
            if keys != properties.keys().collect() {
                return Err(format!("{at}: fields {keys:?}, described {:?}", properties.keys()));
            }
            fields
                .iter()
                .try_for_each(|(key, field)| described(document, &properties[key], field, &format!("{at}.{key}")))
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| described(document, &schema["items"], item, at)),
        _ => Ok(()),
    }
}

#[test]
fn the_certificate_schema_describes_every_field_of_a_signed_certificate() -> TestResult {
    let actor = Actor {
        kind: ActorKind::Human,
        id: "dpo".into(),
    };
    let certificate = keel_erasure::SignedCertificate {
        certificate: keel_erasure::Certificate {
            format: keel_erasure::certificate::FORMAT.into(),
            tenant: "acme".into(),
            subject: "ada".into(),
            erased_at_micros: 1,
            requested_by: actor.clone(),
            on_behalf_of: vec![actor],
            authorization: Authorization {
                policy: "p".into(),
                rule: "r".into(),
                scope: None,
            },
            reason: "asked".into(),
            command_id: uuid::Uuid::nil(),
            destroyed_key_ids: vec!["k".into()],
            destroyed_key_count: 1,
            referencing_events: Some(2),
            event: keel_erasure::EventRef {
                event_id: uuid::Uuid::nil(),
                stream: "keel.erasure:ada".into(),
                topic: "keel.events".into(),
                partition: 0,
                offset: 3,
                hash: "00".into(),
            },
            final_by_micros: None,
        },
        signature: keel_erasure::certificate::SignatureBlock {
            algorithm: "Ed25519".into(),
            key_id: "k".into(),
            value: "c2ln".into(),
        },
    };
    let document = document::<Quiet>()?;
    let answered = &document["paths"]["/v1/tenants/{tenant}/erasures/{subject}"]["get"]["responses"]["200"];
    let schema = &answered["content"]["application/json"]["schema"];
    described(&document, schema, &serde_json::to_value(&certificate)?, "certificate")?;
    Ok(())
}
