//! Seal+open of a payload through the key ring, next to two baselines on the same data:
//! raw AES-256-GCM on the bytes, and the same record Avro-encoded, sealed with raw
//! AES-256-GCM, opened and decoded (what any encrypted Avro payload costs). The key ring's
//! own overhead is the difference to the second; the first adds the Avro codec.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use apache_avro::types::Value;
use apache_avro::{from_avro_datum, to_avro_datum};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, PayloadSchema, RotationPolicy, SealContext};

const SCHEMA: &str = r#"{"type":"record","name":"Blob","namespace":"dev.keel.bench",
  "fields":[{"name":"data","type":"bytes"}]}"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let ring = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    let schema = PayloadSchema::parse(SCHEMA).expect("schema");
    let ctx = SealContext {
        tenant: "acme",
        stream: "s-1",
        event_id: "e-1",
    };
    let cipher = Aes256Gcm::new(&Aes256Gcm::generate_key(OsRng));
    let mut group = c.benchmark_group("seal_open");
    for size in [200usize, 1024, 16 * 1024] {
        let data = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("keyring", size), &data, |b, data| {
            b.iter(|| {
                rt.block_on(async {
                    let value = Value::Record(vec![("data".into(), Value::Bytes(data.clone()))]);
                    let sealed = ring.seal(&schema, ctx, value).await.expect("seal");
                    ring.open(&schema, ctx, &sealed.payload).await.expect("open")
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("avro_aes_gcm", size), &data, |b, data| {
            b.iter(|| {
                let value = Value::Record(vec![("data".into(), Value::Bytes(data.clone()))]);
                let bytes = to_avro_datum(&schema.schema, value).expect("encode");
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let ct = cipher.encrypt(&nonce, bytes.as_slice()).expect("encrypt");
                let plain = cipher.decrypt(&nonce, ct.as_slice()).expect("decrypt");
                from_avro_datum(&schema.schema, &mut plain.as_slice(), None).expect("decode")
            })
        });
        group.bench_with_input(BenchmarkId::new("raw_aes_gcm", size), &data, |b, data| {
            b.iter(|| {
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let ct = cipher.encrypt(&nonce, data.as_slice()).expect("encrypt");
                cipher.decrypt(&nonce, ct.as_slice()).expect("decrypt")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
