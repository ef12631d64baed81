//! Cache hits, side by side in one run against the emulator: our memory cache over Secrets
//! Manager, `aws_secretsmanager_caching` over the same secret, and a bare `HashMap` + `Arc`
//! clone (the limit); /tmp hits, plaintext and KMS-encrypted; and 64 concurrent callers on a
//! cold key (single-flight). Run with `scripts/bench`.

use secret_loader::testing as common;

use std::collections::HashMap;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use aws_secretsmanager_caching::SecretsManagerCachingClient;
use criterion::{Criterion, criterion_group, criterion_main};
use secret_loader::cache::{MemoryCache, MemoryOptions, TmpAtRest, TmpCache, TmpOptions};
use secret_loader::{
    InMemorySource, Secret, SecretId, SecretSource, SecretStore, SecretValue, VersionSelector,
};

const VALUE: &str = r#"{"access_key":"AKIAIOSFODNN7EXAMPLE","secret_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#;
const HOUR: Duration = Duration::from_secs(3600);

fn memory_hits(c: &mut Criterion) {
    let runtime = common::runtime();
    let (ours, theirs, id) = runtime.block_on(async {
        let sm = common::secretsmanager().await;
        let id = common::unique_id("bench-cache");
        sm.put(&id, &SecretValue::text(VALUE)).await.unwrap();
        let ours = MemoryCache::new(Arc::new(sm), MemoryOptions::new(HOUR));
        ours.get(&id, &VersionSelector::Current).await.unwrap();
        let builder = aws_sdk_secretsmanager::config::Builder::from(&common::sdk_config().await);
        let theirs = SecretsManagerCachingClient::from_builder(
            builder,
            NonZeroUsize::new(1000).unwrap(),
            HOUR,
            false,
        )
        .await
        .unwrap();
        theirs
            .get_secret_value(id.as_str(), None, None, false)
            .await
            .unwrap();
        (ours, theirs, id)
    });
    let secret = runtime
        .block_on(ours.get(&id, &VersionSelector::Current))
        .unwrap();
    let mut limit: HashMap<String, Arc<Secret>> = HashMap::new();
    limit.insert(id.to_string(), Arc::new(secret));

    let mut group = c.benchmark_group("memory_cache_hit");
    group.bench_function("hashmap_arc_clone_limit", |b| {
        b.iter(|| black_box(limit.get(black_box(id.as_str())).cloned()))
    });
    group.bench_function("secret_loader_memory", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(ours.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.bench_function("secret_loader_memory_get_fresh", |b| {
        // The synchronous hit path (no boxed future): what `get` does before it would await.
        b.iter(|| black_box(ours.get_fresh(&id, &VersionSelector::Current).unwrap()))
    });
    group.bench_function("aws_secretsmanager_caching", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                theirs
                    .get_secret_value(id.as_str(), None, None, false)
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn tmp_hits(c: &mut Criterion) {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(InMemorySource::new());
    let id = SecretId::new("bench/tmp").unwrap();
    runtime
        .block_on(backend.put(&id, &SecretValue::text(VALUE)))
        .unwrap();
    let envelope = runtime.block_on(async { common::envelope(&common::kms_key().await).await });
    let options = |name: &str, plaintext: bool| {
        let mut options = TmpOptions::new(HOUR);
        options.dir = dir.path().join(name);
        options.plaintext = plaintext;
        options
    };
    let plain = TmpCache::new(
        backend.clone(),
        &options("plain", true),
        TmpAtRest::Plaintext,
    )
    .unwrap();
    let sealed = TmpCache::new(
        backend.clone(),
        &options("sealed", false),
        TmpAtRest::Encrypted(envelope),
    )
    .unwrap();
    for cache in [&plain, &sealed] {
        runtime
            .block_on(cache.get(&id, &VersionSelector::Current))
            .unwrap();
    }

    let mut group = c.benchmark_group("tmp_cache_hit");
    group.bench_function("plaintext", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(plain.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("kms_encrypted_emulator", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(sealed.get(&id, &VersionSelector::Current).await.unwrap()) })
    });
    group.finish();
    assert_eq!(plain.stats().rejected + sealed.stats().rejected, 0);
}

fn single_flight(c: &mut Criterion) {
    let runtime = common::runtime();
    let (sm, id) = runtime.block_on(async {
        let store = common::secretsmanager().await;
        let id = common::unique_id("flight");
        store.put(&id, &SecretValue::text(VALUE)).await.unwrap();
        (Arc::new(store) as Arc<dyn SecretSource>, id)
    });
    let mut group = c.benchmark_group("single_flight");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("64_callers_cold_key_secretsmanager", |b| {
        b.to_async(&runtime).iter_batched(
            // A fresh cache each time: the key is cold.
            || Arc::new(MemoryCache::new(sm.clone(), MemoryOptions::new(HOUR))),
            |cache| {
                let id = id.clone();
                async move {
                    let calls: Vec<_> = (0..64)
                        .map(|_| {
                            let (cache, id) = (cache.clone(), id.clone());
                            tokio::spawn(
                                async move { cache.get(&id, &VersionSelector::Current).await },
                            )
                        })
                        .collect();
                    for call in calls {
                        call.await.unwrap().unwrap();
                    }
                    assert_eq!(cache.stats().misses, 1);
                }
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, memory_hits, tmp_hits, single_flight);
criterion_main!(benches);
