//! The cache layers under faults, on a clock the tests move: failures shared by every caller
//! of a flight, exact TTL edges, durations that would overflow, a lowered TTL over old `/tmp`
//! entries, `/tmp` hits that carry the miss's metadata, entries bound to their id, and two
//! sources that print alike but are different (two emulators) never sharing entries.

use std::sync::Arc;
use std::time::Duration;

use secret_loader::cache::{Clock, MemoryCache, MemoryOptions, TmpAtRest, TmpCache, TmpOptions};
use secret_loader::testing as common;
use secret_loader::testing::FlakySource;
use secret_loader::{
    ErrorKind, Result, Secret, SecretId, SecretSource, SecretSourceExt, SecretStore, SecretValue,
    SecretsManagerSource, VersionSelector,
};

async fn seeded(value: &str, delay: Duration) -> (Arc<FlakySource>, SecretId) {
    let (backend, id) = FlakySource::seeded(value).await;
    backend.set_delay(delay);
    (backend, id)
}

/// 64 concurrent gets through `cache`; every result, and how long the slowest took on
/// tokio's (paused) clock.
async fn sixty_four(cache: &Arc<MemoryCache>, id: &SecretId) -> (Vec<Result<Secret>>, Duration) {
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (cache, id) = (cache.clone(), id.clone());
            tokio::spawn(async move { cache.get_current(&id).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    (results, started.elapsed())
}

const CALL: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn a_failed_flight_is_shared_by_all_its_callers_and_the_next_request_tries_again() {
    for kind in [
        ErrorKind::Throttled,
        ErrorKind::Transient,
        ErrorKind::NotFound,
    ] {
        let (backend, id) = seeded("unused", CALL).await;
        backend.fail(Some(kind));
        let cache = Arc::new(MemoryCache::new(
            backend.clone(),
            MemoryOptions::new(Duration::from_secs(60)),
        ));
        let (results, took) = sixty_four(&cache, &id).await;
        assert_eq!(
            backend.calls(),
            1,
            "{kind:?}: one backend call for 64 callers"
        );
        for result in &results {
            let err = result.as_ref().unwrap_err();
            assert_eq!(err.kind(), kind);
            assert!(err.to_string().contains(id.as_str()), "{err}");
        }
        assert_eq!(
            took, CALL,
            "{kind:?}: everyone answered within one call's time"
        );
        assert_eq!(cache.stats().errors, 1, "{kind:?}");
        assert_eq!(cache.stats().coalesced, 63, "{kind:?}");

        // The flight is over: the next request asks the backend again.
        backend.fail(None);
        let secret = cache.get_current(&id).await.unwrap();
        assert_eq!(secret.value().expose_str(), Some("unused"));
        assert_eq!(backend.calls(), 2, "{kind:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn stale_on_error_makes_one_call_per_flight() {
    let (backend, id) = seeded("stale-but-fine", CALL).await;
    let clock = Clock::manual();
    let mut options = MemoryOptions::new(Duration::from_secs(10));
    options.stale_for = Duration::from_secs(60);
    let cache = Arc::new(MemoryCache::new(backend.clone(), options).with_clock(clock.clone()));
    cache.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 1);

    clock.advance(Duration::from_secs(11));
    backend.fail(Some(ErrorKind::Transient));
    let (results, took) = sixty_four(&cache, &id).await;
    assert_eq!(backend.calls(), 2, "one refresh for 64 callers");
    assert_eq!(took, CALL);
    for result in results {
        assert_eq!(result.unwrap().value().expose_str(), Some("stale-but-fine"));
    }
    assert_eq!(
        cache.stats().stale_served,
        1,
        "served once, shared by the flight"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_the_flight_to_a_waiting_caller() {
    let (backend, id) = seeded("after-cancel", CALL).await;
    let cache = Arc::new(MemoryCache::new(
        backend.clone(),
        MemoryOptions::new(Duration::from_secs(60)),
    ));
    let leader = {
        let (cache, id) = (cache.clone(), id.clone());
        tokio::spawn(async move { cache.get_current(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    let follower = {
        let (cache, id) = (cache.clone(), id.clone());
        tokio::spawn(async move { cache.get_current(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    leader.abort();
    let secret = follower.await.unwrap().unwrap();
    assert_eq!(secret.value().expose_str(), Some("after-cancel"));
    assert_eq!(backend.calls(), 2, "the follower led a new flight");
}

#[tokio::test]
async fn memory_ttl_edges_are_exact_on_a_manual_clock() {
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let clock = Clock::manual();
    let ttl = Duration::from_secs(30);
    let cache =
        MemoryCache::new(backend.clone(), MemoryOptions::new(ttl)).with_clock(clock.clone());
    cache.get_current(&id).await.unwrap();
    clock.advance(ttl - Duration::from_millis(1));
    cache.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 1, "fresh at TTL - 1 ms");
    clock.advance(Duration::from_millis(2));
    cache.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 2, "expired at TTL + 1 ms");
}

#[tokio::test]
async fn stale_window_edges_are_exact_on_a_manual_clock() {
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let clock = Clock::manual();
    let mut options = MemoryOptions::new(Duration::from_secs(10));
    options.stale_for = Duration::from_secs(20);
    let cache = MemoryCache::new(backend.clone(), options).with_clock(clock.clone());
    cache.get_current(&id).await.unwrap();
    backend.fail(Some(ErrorKind::Throttled));
    clock.advance(Duration::from_millis(29_999));
    assert!(
        cache.get_current(&id).await.is_ok(),
        "stale at TTL + window - 1 ms"
    );
    clock.advance(Duration::from_millis(2));
    let err = cache.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "past the window at +1 ms");
}

#[tokio::test]
async fn huge_durations_saturate_instead_of_panicking() {
    let (backend, id) = seeded("forever", Duration::ZERO).await;
    let clock = Clock::manual();
    let mut options = MemoryOptions::new(Duration::MAX);
    options.stale_for = Duration::MAX;
    let cache = MemoryCache::new(backend.clone(), options).with_clock(clock.clone());
    cache.get_current(&id).await.unwrap();
    clock.advance(Duration::from_secs(1 << 40));
    backend.fail(Some(ErrorKind::Transient));
    assert!(cache.get_current(&id).await.is_ok());

    let dir = tempfile::tempdir().unwrap();
    let tmp = TmpCache::new(
        backend.clone(),
        &tmp_options(dir.path(), Duration::MAX),
        TmpAtRest::Plaintext,
    )
    .unwrap()
    .with_clock(clock.clone());
    backend.fail(None);
    tmp.get_current(&id).await.unwrap();
    let again = TmpCache::new(
        backend.clone(),
        &tmp_options(dir.path(), Duration::MAX),
        TmpAtRest::Plaintext,
    )
    .unwrap()
    .with_clock(clock);
    again.get_current(&id).await.unwrap();
    assert_eq!(
        again.stats().hits,
        1,
        "an entry with an unbounded TTL is still a hit"
    );
}

fn tmp_options(dir: &std::path::Path, ttl: Duration) -> TmpOptions {
    let mut options = TmpOptions::new(ttl);
    options.dir = dir.join("cache");
    options.plaintext = true;
    options
}

#[tokio::test]
async fn tmp_expiry_edges_and_a_lowered_ttl_on_a_manual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let clock = Clock::manual();
    let open = |ttl| {
        TmpCache::new(
            backend.clone(),
            &tmp_options(dir.path(), ttl),
            TmpAtRest::Plaintext,
        )
        .unwrap()
        .with_clock(clock.clone())
    };
    let hour = Duration::from_secs(3600);
    open(hour).get_current(&id).await.unwrap();
    clock.advance(hour - Duration::from_millis(1));
    let cache = open(hour);
    cache.get_current(&id).await.unwrap();
    assert_eq!(
        (backend.calls(), cache.stats().hits),
        (1, 1),
        "fresh at TTL - 1 ms"
    );
    clock.advance(Duration::from_millis(2));
    let cache = open(hour);
    cache.get_current(&id).await.unwrap();
    assert_eq!(
        (backend.calls(), cache.stats().expired),
        (2, 1),
        "expired at TTL + 1 ms"
    );

    // Written under one hour; read under one minute, two minutes later: the smaller wins.
    clock.advance(Duration::from_secs(120));
    let lowered = open(Duration::from_secs(60));
    lowered.get_current(&id).await.unwrap();
    assert_eq!(
        lowered.stats().expired,
        1,
        "served no longer than the TTL in force"
    );
    assert_eq!(backend.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tmp_hit_carries_the_misses_metadata_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, id) = seeded("first", Duration::ZERO).await;
    backend
        .store
        .put(&id, &SecretValue::text("second"))
        .await
        .unwrap();
    let key = common::kms_key().await;
    for plaintext in [true, false] {
        let mut options = tmp_options(dir.path(), Duration::from_secs(60));
        options.dir = dir.path().join(format!("plain-{plaintext}"));
        options.plaintext = plaintext;
        let at_rest = || {
            let envelope = common::envelope(&key);
            async move {
                if plaintext {
                    TmpAtRest::Plaintext
                } else {
                    TmpAtRest::Encrypted(envelope.await)
                }
            }
        };
        let miss = TmpCache::new(backend.clone(), &options, at_rest().await)
            .unwrap()
            .get_current(&id)
            .await
            .unwrap();
        let cache = TmpCache::new(backend.clone(), &options, at_rest().await).unwrap();
        let hit = cache.get_current(&id).await.unwrap();
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(hit.backend(), miss.backend(), "plaintext={plaintext}");
        assert_eq!(hit.backend(), "memory");
        assert_eq!(hit.version_id(), miss.version_id());
        assert!(hit.version_id().is_some());
        assert_eq!(hit.version_stages(), miss.version_stages());
        assert_eq!(hit.version_stages(), ["AWSCURRENT"]);
        assert_eq!(hit.value(), miss.value());
    }
}

#[tokio::test]
async fn a_plaintext_entry_moved_to_another_ids_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FlakySource::default());
    let (alice, bob) = (common::unique_id("alice"), common::unique_id("bob"));
    for (id, value) in [(&alice, "alice-value"), (&bob, "bob-value")] {
        backend
            .store
            .put(id, &SecretValue::text(value))
            .await
            .unwrap();
    }
    let options = tmp_options(dir.path(), Duration::from_secs(60));
    let cache = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    cache.get_current(&alice).await.unwrap();
    cache.get_current(&bob).await.unwrap();
    let current = VersionSelector::Current;
    std::fs::copy(
        cache.entry_path(&alice, &current),
        cache.entry_path(&bob, &current),
    )
    .unwrap();

    let reopened = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    let secret = reopened.get_current(&bob).await.unwrap();
    assert_eq!(secret.value().expose_str(), Some("bob-value"));
    assert_eq!(
        reopened.stats().rejected,
        1,
        "alice's entry under bob's name is refused"
    );
}

/// Two emulators on two ports hold the same id with different values. Both sources print
/// alike (`secretsmanager(us-east-1)`); through one `/tmp` directory each still reads its own,
/// in plaintext and encrypted mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_print_alike_never_share_tmp_entries() {
    let second = common::SecondEmulator::start();
    let id = common::unique_id("twin");
    let first_source = Arc::new(common::secretsmanager().await);
    let second_source = Arc::new(SecretsManagerSource::from_sdk_config(
        &second.sdk_config().await,
    ));
    assert_eq!(
        first_source.to_string(),
        second_source.to_string(),
        "they print alike"
    );
    assert_ne!(first_source.identity(), second_source.identity());
    first_source
        .put(&id, &SecretValue::text("first-emulator"))
        .await
        .unwrap();
    second_source
        .put(&id, &SecretValue::text("second-emulator"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key = common::kms_key().await;
    for plaintext in [true, false] {
        let mut options = tmp_options(dir.path(), Duration::from_secs(60));
        options.plaintext = plaintext;
        for round in 0..2u64 {
            for (source, expected) in [
                (
                    first_source.clone() as Arc<dyn SecretSource>,
                    "first-emulator",
                ),
                (
                    second_source.clone() as Arc<dyn SecretSource>,
                    "second-emulator",
                ),
            ] {
                let at_rest = if plaintext {
                    TmpAtRest::Plaintext
                } else {
                    TmpAtRest::Encrypted(common::envelope(&key).await)
                };
                let cache = TmpCache::new(source, &options, at_rest).unwrap();
                let secret = cache.get_current(&id).await.unwrap();
                assert_eq!(
                    secret.value().expose_str(),
                    Some(expected),
                    "plaintext={plaintext} round={round}"
                );
                assert_eq!(
                    cache.stats().hits,
                    round,
                    "the second round is a hit of its own"
                );
            }
        }
    }
}
