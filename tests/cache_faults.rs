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
    let tasks: Vec<_> = (0..64).map(|_| spawn_get(cache, id)).collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    (results, started.elapsed())
}

const CALL: Duration = Duration::from_secs(5);

/// A memory cache with `ttl` over `backend`, shared with the tasks a test spawns.
fn memory_over(backend: &Arc<FlakySource>, ttl: Duration) -> Arc<MemoryCache> {
    Arc::new(MemoryCache::new(backend.clone(), MemoryOptions::new(ttl)))
}

/// A `get` of `id` through `cache` in a task of its own.
fn spawn_get(cache: &Arc<MemoryCache>, id: &SecretId) -> tokio::task::JoinHandle<Result<Secret>> {
    let (cache, id) = (cache.clone(), id.clone());
    tokio::spawn(async move { cache.get_current(&id).await })
}

/// A `refresh` of `id` through `cache` in a task of its own.
fn spawn_refresh(
    cache: &Arc<MemoryCache>,
    id: &SecretId,
) -> tokio::task::JoinHandle<Result<Secret>> {
    let (cache, id) = (cache.clone(), id.clone());
    tokio::spawn(async move { cache.refresh(&id, &VersionSelector::Current).await })
}

/// A `prefetch` of `id` through `cache` in a task of its own.
fn spawn_prefetch(
    cache: &Arc<MemoryCache>,
    id: &SecretId,
) -> tokio::task::JoinHandle<Vec<Result<()>>> {
    let (cache, id) = (cache.clone(), id.clone());
    tokio::spawn(async move { cache.prefetch(std::slice::from_ref(&id)).await })
}

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
async fn a_cancelled_caller_leaves_the_flight_to_those_waiting_and_to_the_cache() {
    let (backend, id) = seeded("after-cancel", CALL).await;
    let cache = memory_over(&backend, Duration::from_secs(60));
    let first = spawn_get(&cache, &id);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let second = spawn_get(&cache, &id);
    tokio::time::sleep(Duration::from_millis(1)).await;
    first.abort();
    let secret = second.await.unwrap().unwrap();
    assert_eq!(secret.value().expose_str(), Some("after-cancel"));
    assert_eq!(
        backend.calls(),
        1,
        "the flight went on without its first caller"
    );
}

/// A caller with a deadline shorter than the backend (the extension's per-request timeout)
/// gives up; the call goes on in its own task and its answer is cached for the next caller.
#[tokio::test(start_paused = true)]
async fn a_backend_slower_than_the_callers_deadline_is_still_cached() {
    let (backend, id) = seeded("slow", CALL).await;
    let cache = MemoryCache::new(backend.clone(), MemoryOptions::new(Duration::from_secs(60)));
    let gave_up = tokio::time::timeout(CALL / 2, cache.get_current(&id)).await;
    assert!(gave_up.is_err(), "the deadline passed first");
    tokio::time::sleep(CALL).await;
    let secret = cache.get_current(&id).await.unwrap();
    assert_eq!(secret.value().expose_str(), Some("slow"));
    assert_eq!(backend.calls(), 1, "the abandoned call's answer was kept");
    assert_eq!(cache.stats().hits, 1);
}

/// The start-up prefetch and a request that arrives while it is in flight: one backend call
/// (the race `tests/agent.rs` in the extension crate used to lose).
#[tokio::test(start_paused = true)]
async fn a_read_during_a_prefetch_waits_for_it() {
    let (backend, id) = seeded("prefetched", CALL).await;
    let cache = memory_over(&backend, Duration::from_secs(60));
    let prefetch = spawn_prefetch(&cache, &id);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let read = cache.get_current(&id).await.unwrap();
    assert_eq!(read.value().expose_str(), Some("prefetched"));
    assert!(prefetch.await.unwrap().iter().all(Result::is_ok));
    assert_eq!(backend.calls(), 1, "the read joined the prefetch");
}

#[tokio::test(start_paused = true)]
async fn concurrent_refreshes_share_one_backend_call() {
    let (backend, id) = seeded("v1", CALL).await;
    let cache = memory_over(&backend, Duration::from_secs(60));
    cache.get_current(&id).await.unwrap();
    backend
        .store
        .put(&id, &SecretValue::text("v2"))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let refreshes: Vec<_> = (0..16).map(|_| spawn_refresh(&cache, &id)).collect();
    for refresh in refreshes {
        let secret = refresh.await.unwrap().unwrap();
        assert_eq!(secret.value().expose_str(), Some("v2"));
    }
    assert_eq!(
        backend.calls(),
        2,
        "one read, then one refresh for 16 callers"
    );
    assert!(
        started.elapsed() < CALL * 2,
        "in one call's time, not one after another"
    );
}

/// `invalidate()` while a read is in flight: the callers already waiting get that read's
/// (old) answer, but it doesn't go into the cache; the next read asks again.
#[tokio::test(start_paused = true)]
async fn a_flight_started_before_invalidate_does_not_land_its_old_value() {
    let (backend, id) = seeded("old", CALL).await;
    let cache = memory_over(&backend, Duration::from_secs(60));
    let before = spawn_get(&cache, &id);
    tokio::time::sleep(Duration::from_millis(1)).await;
    backend
        .store
        .put(&id, &SecretValue::text("new"))
        .await
        .unwrap();
    cache.invalidate(&id, &VersionSelector::Current);
    let after = cache.get_current(&id).await.unwrap();
    assert_eq!(after.value().expose_str(), Some("new"));
    let before = before.await.unwrap().unwrap();
    assert_eq!(before.value().expose_str(), Some("old"), "asked before");
    let cached = cache.get_current(&id).await.unwrap();
    assert_eq!(cached.value().expose_str(), Some("new"));
    assert_eq!(backend.calls(), 2);

    // The same for invalidate_all.
    let before = spawn_refresh(&cache, &id);
    tokio::time::sleep(Duration::from_millis(1)).await;
    backend
        .store
        .put(&id, &SecretValue::text("newer"))
        .await
        .unwrap();
    cache.invalidate_all();
    before.await.unwrap().unwrap();
    let cached = cache.get_current(&id).await.unwrap();
    assert_eq!(cached.value().expose_str(), Some("newer"));
}

/// A slow prefetch can't put its answer over a refresh that finished while it was in flight.
#[tokio::test(start_paused = true)]
async fn a_slow_prefetch_does_not_overwrite_a_newer_refresh() {
    let (backend, id) = seeded("old", CALL).await;
    let cache = memory_over(&backend, Duration::from_secs(600));
    let prefetch = spawn_prefetch(&cache, &id);
    tokio::time::sleep(Duration::from_millis(1)).await;
    backend.set_delay(Duration::ZERO);
    backend
        .store
        .put(&id, &SecretValue::text("new"))
        .await
        .unwrap();
    let refreshed = cache.refresh(&id, &VersionSelector::Current).await.unwrap();
    assert_eq!(refreshed.value().expose_str(), Some("new"));
    assert!(prefetch.await.unwrap().iter().all(Result::is_ok));
    let cached = cache.get_current(&id).await.unwrap();
    assert_eq!(cached.value().expose_str(), Some("new"));
    assert_eq!(backend.calls(), 2);
}

/// `refresh` reads past every layer: a `/tmp` entry under the memory cache is not an answer
/// (`refreshNow=true` used to get the old value until `tmp_ttl` ended), and the refreshed value
/// replaces the entry on disk too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_goes_through_the_tmp_layer_too() {
    let (backend, id) = seeded("v1", Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let options = tmp_options(dir.path(), Duration::from_secs(3600));
    let stack = |backend: Arc<FlakySource>| {
        let tmp = TmpCache::new(backend, &options, TmpAtRest::Plaintext).unwrap();
        MemoryCache::new(Arc::new(tmp), MemoryOptions::new(Duration::from_secs(60)))
    };
    let cache = stack(backend.clone());
    cache.get_current(&id).await.unwrap();
    backend
        .store
        .put(&id, &SecretValue::text("v2"))
        .await
        .unwrap();
    let refreshed = cache.refresh(&id, &VersionSelector::Current).await.unwrap();
    assert_eq!(refreshed.value().expose_str(), Some("v2"));
    assert_eq!(backend.calls(), 2);
    // A new process on the same directory reads the refreshed entry, not the old one.
    let restarted = stack(backend.clone());
    let read = restarted.get_current(&id).await.unwrap();
    assert_eq!(read.value().expose_str(), Some("v2"));
    assert_eq!(backend.calls(), 2, "served from the replaced /tmp entry");
}

#[tokio::test]
async fn the_memory_cache_is_bounded_in_bytes() {
    let backend = Arc::new(FlakySource::default());
    let big = "x".repeat(10_000);
    let ids: Vec<SecretId> = (0..50)
        .map(|i| SecretId::new(format!("big/{i}")).unwrap())
        .collect();
    for id in &ids {
        backend
            .store
            .put(id, &SecretValue::text(&*big))
            .await
            .unwrap();
    }
    let mut options = MemoryOptions::new(Duration::from_secs(60));
    options.max_bytes = 100_000;
    let cache = MemoryCache::new(backend.clone(), options);
    for id in &ids {
        cache.get_current(id).await.unwrap();
    }
    // 50 values of 10 kB against 100 kB: at most 10 fit (each entry weighs a bit more).
    assert!(
        (1..=10).contains(&cache.len()),
        "{} entries of 10 kB kept under a 100 kB bound",
        cache.len()
    );
    // A value larger than the whole bound is served, and not kept.
    let huge = SecretId::new("huge").unwrap();
    backend
        .store
        .put(&huge, &SecretValue::text("y".repeat(200_000)))
        .await
        .unwrap();
    let calls = backend.calls();
    cache.get_current(&huge).await.unwrap();
    cache.get_current(&huge).await.unwrap();
    assert_eq!(backend.calls(), calls + 2, "too large to keep");
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
    let second_source =
        Arc::new(SecretsManagerSource::from_sdk_config(&second.sdk_config().await).await);
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

/// TTL arithmetic at its limits: a short TTL under a stale window of `Duration::MAX` (their
/// sum overflows), and a `/tmp` TTL whose milliseconds don't fit in a u64.
#[tokio::test]
async fn ttl_sums_and_milliseconds_that_overflow_saturate() {
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let clock = Clock::manual();
    let mut options = MemoryOptions::new(Duration::from_secs(1));
    options.stale_for = Duration::MAX;
    let cache = MemoryCache::new(backend.clone(), options).with_clock(clock.clone());
    cache.get_current(&id).await.unwrap();
    clock.advance(Duration::from_secs(2));
    backend.fail(Some(ErrorKind::Transient));
    let stale = cache.get_current(&id).await.unwrap();
    assert_eq!(
        stale.value().expose_str(),
        Some("v"),
        "inside an endless window"
    );
    backend.fail(None);

    let dir = tempfile::tempdir().unwrap();
    // u64::MAX / 1000 + 1 seconds: its milliseconds overflow a u64.
    let ttl = Duration::from_secs(u64::MAX / 1000 + 1);
    let options = tmp_options(dir.path(), ttl);
    let tmp = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    tmp.get_current(&id).await.unwrap();
    let again = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    again.get_current(&id).await.unwrap();
    assert_eq!(again.stats().hits, 1);
}

/// A wall clock that went back (NTP, a restored snapshot) must not stretch an entry's life:
/// an entry written "in the future" has no known age and is read again.
#[tokio::test]
async fn a_wall_clock_that_went_back_never_stretches_a_tmp_entry() {
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let options = tmp_options(dir.path(), Duration::from_secs(60));
    let ahead = Clock::manual();
    ahead.advance(Duration::from_secs(86_400));
    let writer = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext)
        .unwrap()
        .with_clock(ahead);
    writer.get_current(&id).await.unwrap();
    // A day earlier: the entry's stored expiry is a day and a minute away.
    let reader = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext)
        .unwrap()
        .with_clock(Clock::manual());
    reader.get_current(&id).await.unwrap();
    assert_eq!(reader.stats().hits, 0, "{:?}", reader.stats());
    assert_eq!(backend.calls(), 2);
}

/// A secret the backend no longer has loses its `/tmp` entry; an entry the reader would
/// refuse for its size is never written.
#[tokio::test]
async fn tmp_entries_of_deleted_or_oversized_secrets_are_not_kept() {
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let options = tmp_options(dir.path(), Duration::from_secs(3600));
    let tmp = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    tmp.get_current(&id).await.unwrap();
    let path = tmp.entry_path(&id, &VersionSelector::Current);
    assert!(path.exists());
    backend.fail(Some(ErrorKind::NotFound));
    let err = tmp
        .refresh(&id, &VersionSelector::Current)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!path.exists(), "the deleted secret's entry was removed");
    backend.fail(None);

    let large = SecretId::new("large").unwrap();
    backend
        .store
        .put(&large, &SecretValue::binary(vec![7u8; 1024 * 1024 + 1]))
        .await
        .unwrap();
    let read = tmp.get_current(&large).await.unwrap();
    assert_eq!(read.value().len(), 1024 * 1024 + 1, "served");
    assert!(!tmp.entry_path(&large, &VersionSelector::Current).exists());
    assert_eq!(tmp.stats().write_errors, 1);
    assert_eq!(
        tmp.stats().rejected,
        0,
        "nothing written for a reader to refuse"
    );
}

/// Expired entries and writers' leftover temporary files are removed when a cache opens the
/// directory; fresh entries and other files stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_tmp_cache_sweeps_expired_entries_and_leftovers() {
    let (backend, id) = seeded("v", Duration::ZERO).await;
    let other = SecretId::new("other").unwrap();
    backend
        .store
        .put(&other, &SecretValue::text("w"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let short = tmp_options(dir.path(), Duration::from_secs(1));
    let long = tmp_options(dir.path(), Duration::from_secs(3600));
    let clock = Clock::manual();
    let expiring = TmpCache::new(backend.clone(), &short, TmpAtRest::Plaintext)
        .unwrap()
        .with_clock(clock.clone());
    expiring.get_current(&id).await.unwrap();
    let lasting = TmpCache::new(backend.clone(), &long, TmpAtRest::Plaintext).unwrap();
    lasting.get_current(&other).await.unwrap();
    let expired = expiring.entry_path(&id, &VersionSelector::Current);
    let fresh = lasting.entry_path(&other, &VersionSelector::Current);
    let leftover = short.dir.join(".0123abcd.0123456789abcdef.tmp");
    let recent = short.dir.join(".4567cdef.0123456789abcdef.tmp");
    for path in [&leftover, &recent] {
        let file = std::fs::File::create(path).unwrap();
        if path == &leftover {
            let old = std::time::SystemTime::now() - Duration::from_secs(600);
            file.set_modified(old).unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(1100)); // past the short entry's expiry
    let _sweeper = TmpCache::new(backend.clone(), &long, TmpAtRest::Plaintext).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (expired.exists() || leftover.exists()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!expired.exists(), "the expired entry was removed");
    assert!(!leftover.exists(), "the old temporary file was removed");
    assert!(fresh.exists(), "a fresh entry stays");
    assert!(recent.exists(), "a writer's file of a moment ago stays");
}

/// The default directory is per user, and a directory this user can't use turns the layer
/// off: the stack is built and reads from the backend.
#[tokio::test]
async fn the_default_tmp_directory_is_per_user() {
    let options = TmpOptions::new(Duration::from_secs(60));
    let uid = rustix::process::geteuid().as_raw();
    let name = options
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name == format!("secret-loader-{uid}")
            || (name == "secret-loader" && std::env::var_os("XDG_RUNTIME_DIR").is_some()),
        "{}",
        options.dir.display()
    );
}
