//! Sealing and erasure end to end through the real CQL store: an erased subject's fields
//! open as erased, the rest of the payload still opens.

use std::sync::Arc;

use apache_avro::types::Value;
use keel_crypto::{FieldState, InMemoryKms, KeyRing, PayloadSchema, RotationPolicy, SealContext};
use keel_testkit::{TestKeyspace, TestResult};
use keel_vault_cql::CqlKeyVault;

const SCHEMA: &str = r#"{"type": "record", "name": "Referred", "namespace": "dev.keel.test", "fields": [
  {"name": "referrer", "type": "string", "keel.foreign_subject": true},
  {"name": "referrer_name", "type": "string", "keel.subject": "referrer"},
  {"name": "friend", "type": "string", "keel.foreign_subject": true},
  {"name": "friend_email", "type": "string", "keel.subject": "friend"},
  {"name": "campaign", "type": "string"}
]}"#;

#[tokio::test]
async fn an_erased_subject_opens_as_erased_after_a_new_epoch_and_a_cold_cache() -> TestResult {
    let keyspace = TestKeyspace::create("vault_erasure").await?;
    let vault = CqlKeyVault::new(Arc::new(keyspace.into_session())).await?;
    let ring = KeyRing::new(InMemoryKms::new(), vault, RotationPolicy::default(), 0);
    let schema = PayloadSchema::parse(SCHEMA)?;
    let ctx = SealContext {
        tenant: "acme",
        stream: "customer-1",
        event_id: "0193a0c4-0000-7000-8000-000000000001",
    };
    let value = Value::Record(vec![
        ("referrer".into(), Value::String("alice".into())),
        ("referrer_name".into(), Value::String("Alice".into())),
        ("friend".into(), Value::String("bob".into())),
        ("friend_email".into(), Value::String("bob@example.com".into())),
        ("campaign".into(), Value::String("spring".into())),
    ]);
    let sealed = ring.seal(&schema, ctx, value).await?;
    let epoch = ring.rotate_epoch("acme").await?;
    ring.destroy_epoch("acme", epoch - 1).await?;
    ring.erase_subject("acme", "bob").await?;
    let opened = ring.open(&schema, ctx, &sealed.payload).await?;
    let states: Vec<_> = opened.fields.iter().map(|f| (f.path.as_str(), f.state)).collect();
    assert_eq!(
        states,
        [
            ("referrer_name", FieldState::Open),
            ("friend_email", FieldState::Erased)
        ]
    );
    let expected = Value::Record(vec![
        ("referrer".into(), Value::String("alice".into())),
        ("referrer_name".into(), Value::String("Alice".into())),
        ("friend".into(), Value::String("bob".into())),
        ("friend_email".into(), Value::String(String::new())),
        ("campaign".into(), Value::String("spring".into())),
    ]);
    assert_eq!(opened.value, expected);
    Ok(())
}
