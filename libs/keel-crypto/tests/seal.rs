//! Seal/open properties: round trip, tamper detection, moved ciphertexts, erased subjects.

use apache_avro::types::Value;
use keel_crypto::{
    CryptoError, FieldState, InMemoryKeyVault, InMemoryKms, KeyRing, PayloadSchema, RotationPolicy, SealContext, Sealed,
};
use proptest::prelude::*;

/// A transfer between two customers: personal fields of two subjects, one nested.
const TRANSFER: &str = r#"{
  "type": "record", "name": "MoneyTransferred", "namespace": "dev.keel.test",
  "fields": [
    {"name": "from_id", "type": "string", "keel.foreign_subject": true},
    {"name": "from_name", "type": "string", "keel.subject": "from_id"},
    {"name": "to", "type": {"type": "record", "name": "Party", "fields": [
      {"name": "id", "type": "string", "keel.foreign_subject": true},
      {"name": "name", "type": "string", "keel.subject": "id"},
      {"name": "email", "type": "string", "keel.subject": "id"},
      {"name": "iban", "type": ["null", "string"], "keel.subject": "id"}
    ]}},
    {"name": "cents", "type": "long"},
    {"name": "memo", "type": "string"}
  ]
}"#;

type Ring = KeyRing<InMemoryKms, InMemoryKeyVault>;

fn ring() -> Ring {
    KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        16,
    )
}

fn schema() -> PayloadSchema {
    PayloadSchema::parse(TRANSFER).unwrap_or_else(|e| panic!("test schema: {e}"))
}

fn transfer(from_name: &str, to_name: &str, iban: Option<&str>, cents: i64, memo: &str) -> Value {
    let iban = match iban {
        Some(i) => Value::Union(1, Box::new(Value::String(i.into()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Value::Record(vec![
        ("from_id".into(), Value::String("alice".into())),
        ("from_name".into(), Value::String(from_name.into())),
        (
            "to".into(),
            Value::Record(vec![
                ("id".into(), Value::String("bob".into())),
                ("name".into(), Value::String(to_name.into())),
                ("email".into(), Value::String(to_name.to_lowercase())),
                ("iban".into(), iban),
            ]),
        ),
        ("cents".into(), Value::Long(cents)),
        ("memo".into(), Value::String(memo.into())),
    ])
}

const CTX: SealContext<'static> = SealContext {
    tenant: "acme",
    stream: "account-1",
    event_id: "e-1",
};

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(f)
}

fn seal(ring: &Ring, value: Value) -> Result<Sealed, TestCaseError> {
    block_on(ring.seal(&schema(), CTX, value)).map_err(|e| TestCaseError::fail(e.to_string()))
}

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

#[test]
fn personal_fields_are_not_in_the_payload_ciphertext_and_are_sealed_per_subject() -> Result<(), CryptoError> {
    let ring = ring();
    let sealed = block_on(ring.seal(&schema(), CTX, transfer("Alice A", "Bob B", Some("DE00"), 5, "rent")))?;
    let paths: Vec<_> = sealed
        .payload
        .sealed_fields
        .iter()
        .map(|f| (f.path.as_str(), f.subject_id.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("from_name", "alice"),
            ("to.name", "bob"),
            ("to.email", "bob"),
            ("to.iban", "bob")
        ]
    );
    assert_eq!(sealed.data_subjects, ["alice", "bob"]);
    assert_eq!(
        sealed.key_refs.len(),
        3,
        "tenant key + one key per subject: {:?}",
        sealed.key_refs
    );
    Ok(())
}

/// A customer's own record: its subject is the stream's, no mark.
const PROFILE: &str = r#"{
  "type": "record", "name": "Registered", "namespace": "dev.keel.test",
  "fields": [
    {"name": "customer_id", "type": "string"},
    {"name": "name", "type": "string", "keel.subject": "customer_id"}
  ]
}"#;

fn profile(customer: &str) -> Value {
    Value::Record(vec![
        ("customer_id".into(), Value::String(customer.into())),
        ("name".into(), Value::String("Ada".into())),
    ])
}

#[test]
fn a_field_is_sealed_to_its_streams_own_subject_and_refused_for_another() -> Result<(), CryptoError> {
    let ring = ring();
    let schema = PayloadSchema::parse(PROFILE)?;
    let own = SealContext { stream: "c-1", ..CTX };
    let sealed = block_on(ring.seal(&schema, own, profile("c-1")))?;
    assert_eq!(sealed.payload.sealed_fields[0].subject_id, "c-1");

    // Another customer's id on this stream: its data would go under that customer's key.
    let other = block_on(ring.seal(&schema, own, profile("c-2")));
    assert!(
        matches!(&other, Err(CryptoError::SubjectNotBound(message)) if message.contains("c-2") && message.contains("c-1")),
        "{other:?}"
    );
    Ok(())
}

#[test]
fn a_subject_declared_foreign_may_be_another_than_the_stream() -> Result<(), CryptoError> {
    // TRANSFER marks from_id and to.id foreign: alice and bob on stream account-1.
    let sealed = block_on(ring().seal(&schema(), CTX, transfer("Alice A", "Bob B", None, 5, "rent")))?;
    assert_eq!(sealed.data_subjects, ["alice", "bob"]);
    Ok(())
}

#[test]
fn a_personal_field_naming_no_sibling_is_rejected() {
    let bad = TRANSFER.replace(r#""keel.subject": "from_id""#, r#""keel.subject": "nobody""#);
    assert!(matches!(PayloadSchema::parse(&bad), Err(CryptoError::Payload(_))));
}

#[test]
fn erasing_the_tenant_makes_the_payload_unreadable() -> Result<(), CryptoError> {
    let ring = ring();
    let sealed = block_on(ring.seal(&schema(), CTX, transfer("A", "B", None, 1, "m")))?;
    block_on(ring.erase_tenant("acme"))?;
    let opened = block_on(ring.open(&schema(), CTX, &sealed.payload));
    assert!(matches!(opened, Err(CryptoError::TenantDestroyed(_))), "{opened:?}");
    Ok(())
}

fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

#[test]
fn opening_the_payload_only_leaves_personal_fields_sealed_and_needs_no_subject_key() -> Result<(), CryptoError> {
    let ring = ring();
    let sealed = block_on(ring.seal(&schema(), CTX, transfer("Alice A", "Bob B", Some("DE00"), 5, "rent")))?;
    // Destroyed subject keys make no difference: none is looked up.
    block_on(ring.erase_subject("acme", "alice"))?;
    block_on(ring.erase_subject("acme", "bob"))?;
    let opened = block_on(ring.open_payload(&schema(), CTX, &sealed.payload))?;
    assert!(
        opened.fields.iter().all(|f| f.state == FieldState::Sealed),
        "{:?}",
        opened.fields
    );
    assert_eq!(field(&opened.value, "cents"), Some(&Value::Long(5)));
    assert_eq!(field(&opened.value, "memo"), Some(&Value::String("rent".into())));
    assert_ne!(
        field(&opened.value, "from_name"),
        Some(&Value::String("Alice A".into())),
        "the personal field is not in the tenant layer"
    );
    let full = block_on(ring.open(&schema(), CTX, &sealed.payload))?;
    assert!(full.fields.iter().all(|f| f.state == FieldState::Erased));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_then_open_round_trips(from in text(), to in text(), iban in proptest::option::of(text()), cents in any::<i64>(), memo in text()) {
        let ring = ring();
        let value = transfer(&from, &to, iban.as_deref(), cents, &memo);
        let sealed = seal(&ring, value.clone())?;
        let opened = block_on(ring.open(&schema(), CTX, &sealed.payload)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(opened.value, value);
        prop_assert!(opened.fields.iter().all(|f| f.state == FieldState::Open));
    }

    #[test]
    fn any_flipped_byte_fails_to_open(part in 0usize..6, index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let ring = ring();
        let sealed = seal(&ring, transfer("Alice", "Bob", Some("DE00"), 7, "memo"))?;
        let mut payload = sealed.payload.clone();
        let flip = |bytes: &mut Vec<u8>| { let i = index.index(bytes.len()); bytes[i] ^= 1 << bit; };
        match part {
            0 => flip(&mut payload.ciphertext),
            1 => flip(&mut payload.nonce),
            2 => flip(&mut payload.sealed_fields[1].ciphertext),
            3 => flip(&mut payload.sealed_fields[1].nonce),
            4 => { let mut k = payload.key_id.clone().into_bytes(); flip(&mut k); payload.key_id = String::from_utf8_lossy(&k).into_owned(); }
            _ => { let mut k = payload.sealed_fields[0].key_id.clone().into_bytes(); flip(&mut k); payload.sealed_fields[0].key_id = String::from_utf8_lossy(&k).into_owned(); }
        }
        prop_assert!(block_on(ring.open(&schema(), CTX, &payload)).is_err());
    }

    #[test]
    fn any_flipped_byte_of_associated_data_fails_to_open(part in 0usize..4, index in any::<prop::sample::Index>(), bit in 0u8..7) {
        let ring = ring();
        let sealed = seal(&ring, transfer("Alice", "Bob", None, 7, "memo"))?;
        let flip = |s: &str| { let mut b = s.as_bytes().to_vec(); let i = index.index(b.len()); b[i] ^= 1 << bit; String::from_utf8_lossy(&b).into_owned() };
        let (tenant, stream, event) = (flip(CTX.tenant), flip(CTX.stream), flip(CTX.event_id));
        let mut payload = sealed.payload.clone();
        let ctx = match part {
            0 => SealContext { tenant: &tenant, ..CTX },
            1 => SealContext { stream: &stream, ..CTX },
            2 => SealContext { event_id: &event, ..CTX },
            _ => { payload.sealed_fields[0].path = flip(&payload.sealed_fields[0].path); CTX }
        };
        prop_assert!(block_on(ring.open(&schema(), ctx, &payload)).is_err());
    }

    #[test]
    fn a_ciphertext_moved_elsewhere_fails_to_open(target in 0usize..6) {
        let ring = ring();
        let a = seal(&ring, transfer("Alice", "Bob", Some("X"), 1, "a"))?;
        // Same tenant and keys; another event, and an event of another stream.
        let other_event = SealContext { event_id: "e-2", ..CTX };
        let other_stream = SealContext { stream: "account-2", ..CTX };
        let b = block_on(ring.seal(&schema(), other_event, transfer("Al", "Bo", Some("Y"), 2, "b"))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let c = block_on(ring.seal(&schema(), other_stream, transfer("Al", "Bo", Some("Y"), 2, "b"))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // globex has keys of its own under the same short ids.
        let globex = SealContext { tenant: "globex", ..CTX };
        block_on(ring.seal(&schema(), globex, transfer("G", "H", None, 3, "g"))).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Each moved copy keeps everything else intact, so only the binding can make it fail.
        let (ctx, payload) = match target {
            0 => { let mut p = b.payload.clone(); p.ciphertext = a.payload.ciphertext.clone(); p.nonce = a.payload.nonce.clone(); (other_event, p) }
            1 => (other_stream, a.payload.clone()),
            2 => (globex, a.payload.clone()),
            3 => {
                // to.name's sealed value moved into to.email's slot: same subject, key and type.
                let mut p = a.payload.clone();
                let name = p.sealed_fields[1].clone();
                p.sealed_fields[2].nonce = name.nonce;
                p.sealed_fields[2].ciphertext = name.ciphertext;
                (CTX, p)
            }
            4 => { let mut p = a.payload.clone(); p.sealed_fields[1] = b.payload.sealed_fields[1].clone(); (CTX, p) }
            _ => { let mut p = a.payload.clone(); p.sealed_fields[1] = c.payload.sealed_fields[1].clone(); (CTX, p) }
        };
        let opened = block_on(ring.open(&schema(), ctx, &payload));
        prop_assert!(matches!(opened, Err(CryptoError::Open { .. })), "{:?}", opened);
    }

    #[test]
    fn an_erased_subject_reads_as_erased_while_the_rest_opens(from in text(), to in text(), memo in text(), cents in any::<i64>()) {
        let ring = ring();
        let sealed = seal(&ring, transfer(&from, &to, Some("DE00"), cents, &memo))?;
        block_on(ring.erase_subject("acme", "bob")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let opened = block_on(ring.open(&schema(), CTX, &sealed.payload)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(opened.is_erased("to.name") && opened.is_erased("to.email") && opened.is_erased("to.iban"));
        prop_assert!(!opened.is_erased("from_name"));
        let expected = transfer(&from, "", None, cents, &memo);
        prop_assert_eq!(opened.value, expected);
    }
}
