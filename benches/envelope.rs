//! Envelope seal/open with a local key (no KMS, no network), 1 KiB and 64 KiB, in both
//! algorithm suites, beside the limit: one HKDF-SHA512 derivation and one AES-256-GCM pass over
//! the same bytes with aws-lc-rs directly. Run with `scripts/bench`.

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA512, Salt};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secret_loader::secrecy::SecretSlice;
use secret_loader::{AlgorithmSuite, Envelope, SecretId, SecretValue};

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

fn message_key(data_key: &[u8; 32]) -> LessSafeKey {
    let prk = Salt::new(HKDF_SHA512, &[0u8; 32]).extract(data_key);
    let okm = prk.expand(&[b"secret-loader bench"], &AES_256_GCM).unwrap();
    LessSafeKey::new(UnboundKey::from(okm))
}

/// What any AES-256-GCM envelope must at least do per message: derive the message key from the
/// data key with HKDF, then run AES-GCM over the payload.
fn bare_open(data_key: &[u8; 32], sealed: &[u8]) -> Vec<u8> {
    let key = message_key(data_key);
    let mut buffer = sealed.to_vec();
    let nonce = Nonce::assume_unique_for_key([0u8; 12]);
    let plain = key
        .open_in_place(nonce, Aad::from(b"header"), &mut buffer)
        .unwrap();
    plain.len().to_le_bytes().to_vec()
}

fn bare_seal(data_key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let key = message_key(data_key);
    let mut buffer = plain.to_vec();
    let nonce = Nonce::assume_unique_for_key([0u8; 12]);
    key.seal_in_place_append_tag(nonce, Aad::from(b"header"), &mut buffer)
        .unwrap();
    buffer
}

fn envelope(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = SecretSlice::from(vec![9u8; 32]);
    let id = SecretId::new("bench/envelope").unwrap();
    let data_key = [7u8; 32];
    for (size, label) in SIZES {
        let value = SecretValue::binary(vec![0x5a; size]);
        let mut group = c.benchmark_group(format!("envelope_{label}"));
        group.throughput(Throughput::Bytes(size as u64));

        let bare_sealed = bare_seal(&data_key, value.expose_bytes());
        group.bench_function("bare_hkdf_aes_gcm_open", |b| {
            b.iter(|| bare_open(black_box(&data_key), black_box(&bare_sealed)))
        });
        group.bench_function("bare_hkdf_aes_gcm_seal", |b| {
            b.iter(|| bare_seal(black_box(&data_key), black_box(value.expose_bytes())))
        });
        for suite in [AlgorithmSuite::Committing, AlgorithmSuite::CommittingSigned] {
            let envelope = runtime
                .block_on(Envelope::raw_aes("bench", "local", &key, suite))
                .unwrap();
            let sealed = runtime
                .block_on(envelope.seal("file+kms", &id, &value))
                .unwrap();
            group.bench_function(BenchmarkId::new("esdk_open", suite.as_str()), |b| {
                b.to_async(&runtime).iter(|| async {
                    envelope
                        .open("file+kms", &id, sealed.clone())
                        .await
                        .unwrap()
                })
            });
            group.bench_function(BenchmarkId::new("esdk_seal", suite.as_str()), |b| {
                b.to_async(&runtime)
                    .iter(|| async { envelope.seal("file+kms", &id, &value).await.unwrap() })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, envelope);
criterion_main!(benches);
