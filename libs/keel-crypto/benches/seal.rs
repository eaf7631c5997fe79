//! Seal+open of a payload through the key ring, next to two baselines on the same data:
//! raw AES-256-GCM on the bytes, and the same record Avro-encoded, sealed with raw
//! AES-256-GCM, opened and decoded (what any encrypted Avro payload costs). The key ring's
//! own overhead is the difference to the second; the first adds the Avro codec.
//! Two parts of the difference are also timed alone: the Avro codec (`avro_only`) and the
//! key ring's key bookkeeping for one seal and one open (`key_lookups`: cached keys, no
//! cryptography).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_crypto::{
    InMemoryKeyVault, InMemoryKms, KeyId, KeyOwner, KeyRing, PayloadSchema, RotationPolicy, SealContext,
};

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
    // The baseline uses apache-avro as its docs advise for many values: writer and reader
    // built once.
    let writer = GenericDatumWriter::builder(schema.schema()).build().expect("writer");
    let reader = GenericDatumReader::builder(schema.schema()).build().expect("reader");
    let mut group = c.benchmark_group("seal_open");
    // What a seal and an open cost in key bookkeeping alone: the key to seal with, its id
    // written and parsed back, and the key to open with.
    group.bench_function("key_lookups", |b| {
        b.to_async(&rt).iter(|| async {
            let (id, _) = ring.seal_key("acme", &KeyOwner::Tenant).await.expect("seal key");
            let written = KeyId::parse("acme", None, &id.short()).expect("key id");
            ring.open_key(&written).await.expect("open key")
        })
    });
    for size in [200usize, 1024, 16 * 1024] {
        let data = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        // Each round seals a value built outside the timed part, as raw AES-GCM gets its bytes.
        let record = |data: &Vec<u8>| Value::Record(vec![("data".into(), Value::Bytes(data.clone()))]);
        // The key ring runs on the runtime as in a service: one `block_on` per sample, not
        // one per seal.
        group.bench_with_input(BenchmarkId::new("keyring", size), &data, |b, data| {
            b.to_async(&rt).iter_batched(
                || record(data),
                |value| async {
                    let sealed = ring.seal(&schema, ctx, value).await.expect("seal");
                    ring.open(&schema, ctx, &sealed.payload).await.expect("open")
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("avro_aes_gcm", size), &data, |b, data| {
            b.iter_batched(
                || record(data),
                |value| {
                    let bytes = writer.write_value_to_vec(value).expect("encode");
                    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                    let ct = cipher.encrypt(&nonce, bytes.as_slice()).expect("encrypt");
                    let plain = cipher.decrypt(&nonce, ct.as_slice()).expect("decrypt");
                    reader.read_value(&mut plain.as_slice()).expect("decode")
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("avro_only", size), &data, |b, data| {
            b.iter_batched(
                || record(data),
                |value| {
                    let bytes = writer.write_value_to_vec(value).expect("encode");
                    reader.read_value(&mut bytes.as_slice()).expect("decode")
                },
                BatchSize::SmallInput,
            )
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
