//! The query API over real CQL checkpoints, serving the customer-support domain: credentials
//! per tenant, clear 4xx codes, freshness on every answer, read-your-writes with its two
//! timeouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use keel_auth::{ActorKind, Authenticator, Claims, TenantAuth, TenantKey, TokenIssuer};
use keel_checkpoints::{Checkpoint, Checkpoints, CqlCheckpoints};
use keel_query::{AppState, ReadModels, router};
use keel_support_query::SupportReads;
use keel_testkit::{TestKeyspace, TestResult};
use serde_json::{Value, json};

const PROJECTION: &str = "audit_trail.v1";

fn key(tenant: &str) -> SigningKey {
    SigningKey::from_bytes(&[if tenant == "acme" { 1 } else { 2 }; 32])
}

fn token(tenant: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        iss: format!("https://id.{tenant}.example"),
        sub: "dashboard".into(),
        tenant: tenant.into(),
        actor_kind: ActorKind::Service,
        on_behalf_of: vec![],
        scopes: vec!["support:read".into()],
        exp: now + 600,
        nbf: None,
        iat: None,
    };
    TokenIssuer::ed25519(format!("{tenant}-1"), &key(tenant))
        .and_then(|issuer| issuer.issue(&claims))
        .unwrap_or_default()
}

struct Api {
    _keys: tempfile::TempDir,
    base: String,
    checkpoints: Arc<CqlCheckpoints>,
    client: reqwest::Client,
}

async fn start() -> TestResult<Api> {
    let keyspace = TestKeyspace::create("query").await?;
    let session = Arc::new(keyspace.into_session());
    let keys = tempfile::tempdir()?;
    let key_args = keel_vault_cql::KeyArgs {
        kms_file: keys.path().join("kms.json"),
        key_cache: 100,
        key_cache_ttl_ms: 1_000,
        vault_keyspace: None,
    };
    let ring = keel_vault_cql::key_ring(&key_args, Arc::clone(&session)).await?;
    let models = ReadModels::<_, SupportReads>::connect("query", Arc::clone(&session), Arc::new(ring)).await?;
    let checkpoints = Arc::new(CqlCheckpoints::new(session).await?);
    let tenants: HashMap<String, TenantAuth> = ["acme", "globex"]
        .into_iter()
        .map(|tenant| {
            let auth = TenantAuth {
                issuer: format!("https://id.{tenant}.example"),
                keys: vec![TenantKey::ed25519(format!("{tenant}-1"), &key(tenant).verifying_key())],
            };
            (tenant.to_owned(), auth)
        })
        .collect();
    let state = Arc::new(AppState::new(
        Authenticator::new(&tenants).map_err(anyhow::Error::msg)?,
        models.with_checkpoints(Arc::clone(&checkpoints)),
        vec![PROJECTION.into()],
        Duration::from_secs(3),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Ok(Api {
        _keys: keys,
        base,
        checkpoints,
        client: reqwest::Client::new(),
    })
}

impl Api {
    async fn get(&self, path: &str, bearer: Option<&str>) -> TestResult<(u16, Value)> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await?;
        Ok((response.status().as_u16(), response.json().await?))
    }
}

fn freshness_path(tenant: &str, query: &str) -> String {
    format!("/v1/tenants/{tenant}/projections/{PROJECTION}/freshness{query}")
}

#[tokio::test]
async fn credentials_are_checked_per_tenant_with_clear_codes() -> TestResult {
    let api = start().await?;
    let (status, body) = api.get(&freshness_path("acme", ""), None).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));

    // A valid token of globex used on acme does not verify, and says nothing about acme.
    let (status, body) = api.get(&freshness_path("acme", ""), Some(&token("globex"))).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert!(
        !body.to_string().contains("acme"),
        "the refusal names nothing of the other tenant: {body}"
    );

    let (status, body) = api
        .get("/v1/tenants/acme/projections/nope.v1/freshness", Some(&token("acme")))
        .await?;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));

    let (status, body) = api
        .get(&freshness_path("acme", "?after=zero"), Some(&token("acme")))
        .await?;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_parameter")));
    let (status, _) = api
        .get(&freshness_path("acme", "?on_timeout=maybe"), Some(&token("acme")))
        .await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn every_answer_carries_its_freshness() -> TestResult {
    let api = start().await?;
    let checkpoint = Checkpoint {
        partition: 0,
        next_offset: 5,
        event_time_micros: 1_700_000_000_000_000,
    };
    api.checkpoints.save(PROJECTION, &[checkpoint]).await?;
    let (status, body) = api.get(&freshness_path("acme", ""), Some(&token("acme"))).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["freshness"]["partitions"]["0"]["applied_offset"], 5);
    assert_eq!(
        body["freshness"]["partitions"]["0"]["event_time_micros"],
        1_700_000_000_000_000_i64
    );
    assert_eq!(body["stale"], false);
    Ok(())
}

#[tokio::test]
async fn read_your_writes_waits_then_fails_or_answers_stale_as_asked() -> TestResult {
    let api = start().await?;
    let at = |next_offset| Checkpoint {
        partition: 0,
        next_offset,
        event_time_micros: next_offset,
    };
    api.checkpoints.save(PROJECTION, &[at(5)]).await?;
    let acme = token("acme");

    let (status, body) = api
        .get(&freshness_path("acme", "?after=0:9&wait_ms=200"), Some(&acme))
        .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("not_fresh")),
        "{body}"
    );
    assert_eq!(
        body["freshness"]["partitions"]["0"]["applied_offset"], 5,
        "the 503 says how far it got"
    );

    let (status, body) = api
        .get(
            &freshness_path("acme", "?after=0:9&wait_ms=200&on_timeout=stale"),
            Some(&acme),
        )
        .await?;
    assert_eq!((status, &body["stale"]), (200, &Value::Bool(true)));

    // The projection reaches offset 9 while the request waits.
    let checkpoints = Arc::clone(&api.checkpoints);
    let catch_up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        checkpoints.save(PROJECTION, &[at(10)]).await
    });
    let (status, body) = api
        .get(&freshness_path("acme", "?after=0:9&wait_ms=3000"), Some(&acme))
        .await?;
    catch_up.await??;
    assert_eq!((status, &body["stale"]), (200, &Value::Bool(false)), "{body}");
    assert_eq!(body["freshness"]["partitions"]["0"]["applied_offset"], 10);
    Ok(())
}

/// Every route the router serves for the support domain, with its method.
const ROUTES: [(&str, &str); 17] = [
    ("get", "/v1/tenants/{tenant}/projections/{projection}/freshness"),
    ("get", "/v1/tenants/{tenant}/streams/{stream}/audit"),
    ("get", "/v1/tenants/{tenant}/actors/{kind}/{id}/activity"),
    ("get", "/v1/tenants/{tenant}/streams/{stream}/verify"),
    ("get", "/v1/tenants/{tenant}/streams/{stream}/state"),
    ("get", "/v1/tenants/{tenant}/erasures/{subject}"),
    ("get", "/v1/tenants/{tenant}/access/subjects/{subject}"),
    ("get", "/v1/tenants/{tenant}/access/actors/{kind}/{id}"),
    ("get", "/v1/tenants/{tenant}/customers/{customer}"),
    ("get", "/v1/tenants/{tenant}/customers/{customer}/subscriptions"),
    ("get", "/v1/tenants/{tenant}/customers/{customer}/refunds"),
    ("get", "/v1/tenants/{tenant}/customers/{customer}/emails"),
    ("get", "/v1/tenants/{tenant}/customers/{customer}/referrals"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// The schema `reference` names, in `document`.
fn named<'d>(document: &'d Value, reference: &Value) -> &'d Value {
    let name = reference
        .as_str()
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        .unwrap_or_default();
    &document["components"]["schemas"][name]
}

#[test]
fn the_openapi_document_describes_every_route() -> TestResult {
    let document = serde_json::to_value(keel_query::openapi::<SupportReads>())?;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    let paths: BTreeMap<String, Value> = serde_json::from_value(document["paths"].clone())?;
    let described: BTreeSet<(&str, &str)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().into_iter().flat_map(|item| item.keys());
            methods.map(move |method| (method.as_str(), path.as_str()))
        })
        .collect();
    assert_eq!(described, ROUTES.into_iter().collect(), "the routes described");

    // Each customer route answers its data, by name, in the freshness envelope.
    for (route, data) in [
        ("", "Profile"),
        ("/subscriptions", "Subscription"),
        ("/refunds", "Refunds"),
        ("/emails", "Email"),
        ("/referrals", "Referral"),
    ] {
        let operation = &paths[&format!("/v1/tenants/{{tenant}}/customers/{{customer}}{route}")]["get"];
        let answer = named(
            &document,
            &operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        );
        let reference = &answer["properties"]["data"];
        let reference = reference.get("items").unwrap_or(reference);
        assert_eq!(reference["$ref"], format!("#/components/schemas/{data}"), "{route}");
        assert!(answer["properties"]["freshness"].is_object(), "{route}");
        assert!(named(&document, &reference["$ref"]).is_object(), "{data} is described");
    }

    // Errors: one schema, every code, on every tenant route; the bearer scheme on each.
    let error = named(&document, &json!("#/components/schemas/Error"));
    let detail = named(&document, &error["properties"]["error"]["$ref"]);
    let codes = &named(&document, &detail["properties"]["code"]["$ref"])["enum"];
    for code in [
        "unauthorized",
        "not_found",
        "bad_parameter",
        "invalid_id",
        "not_fresh",
        "internal",
    ] {
        assert!(
            codes.as_array().is_some_and(|all| all.iter().any(|c| c == code)),
            "error code {code} is not described: {codes}"
        );
    }
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/v1/tenants/")) {
        assert_eq!(item["get"]["security"], json!([{ "bearer": [] }]), "{path}");
        for status in ["401", "404"] {
            let schema = &item["get"]["responses"][status]["content"]["application/json"]["schema"];
            assert_eq!(schema["$ref"], "#/components/schemas/Error", "{path} {status}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_router_serves_every_route_the_document_describes() -> TestResult {
    let api = start().await?;
    let document = serde_json::to_value(keel_query::openapi::<SupportReads>())?;
    let (status, served) = api.get("/openapi.json", None).await?;
    assert_eq!(
        (status, &served),
        (200, &document),
        "/openapi.json serves the generated document"
    );

    let paths = document["paths"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("no paths"))?;
    for path in paths.keys().filter(|path| path.starts_with("/v1/tenants/")) {
        let concrete = path
            .replace("{tenant}", "acme")
            .replace("{projection}", PROJECTION)
            .replace("{kind}", "human")
            .replace("{customer}", "c-1")
            .replace(['{', '}'], "");
        // Every tenant route checks the credential first: 401 with a code, not axum's bare 404.
        let (status, body) = api.get(&concrete, None).await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{path} as {concrete}"
        );
    }
    Ok(())
}
