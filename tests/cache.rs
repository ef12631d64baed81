//! The memory and /tmp cache layers: the behaviour suite over an in-memory backend and over
//! Secrets Manager, and each cache property with a backend that counts calls and fails on demand.

use secret_loader::testing as common;
use secret_loader::testing::behaviour;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use secret_loader::cache::{MemoryCache, MemoryOptions, TmpAtRest, TmpCache, TmpOptions};
use secret_loader::{
    Config, ErrorKind, InMemorySource, Result, SecretId, SecretSource, SecretSourceExt,
    SecretStore, SecretValue, VersionSelector,
};

use common::{FlakySource, unique_id};
use secret_loader::secrecy::ExposeSecret;

async fn seeded(value: &str) -> (Arc<FlakySource>, SecretId) {
    FlakySource::seeded(value).await
}

fn memory(inner: Arc<dyn SecretSource>, ttl: Duration) -> MemoryCache {
    MemoryCache::new(inner, MemoryOptions::new(ttl))
}

fn tmp_options(dir: &std::path::Path, ttl: Duration, plaintext: bool) -> TmpOptions {
    let mut options = TmpOptions::new(ttl);
    options.dir = dir.join("cache");
    options.plaintext = plaintext;
    options
}

const FLAGS: behaviour::Flags = behaviour::Flags {
    staging_labels: true,
    keeps_kind: true,
    text_only: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_suite_passes_on_every_layer_over_memory_and_secretsmanager() {
    let dir = tempfile::tempdir().unwrap();
    let key = common::kms_key().await;
    let envelope = common::envelope(&key).await;
    let minute = Duration::from_secs(60);
    let memory_store = Arc::new(InMemorySource::new());
    let sm = Arc::new(common::secretsmanager().await);
    let stores: [(Arc<dyn SecretStore>, Arc<dyn SecretSource>); 2] =
        [(memory_store.clone(), memory_store), (sm.clone(), sm)];
    for (i, (store, base)) in stores.into_iter().enumerate() {
        let plain = TmpCache::new(
            base.clone(),
            &tmp_options(&dir.path().join(format!("p{i}")), minute, true),
            TmpAtRest::Plaintext,
        )
        .unwrap();
        let sealed = TmpCache::new(
            base.clone(),
            &tmp_options(&dir.path().join(format!("e{i}")), minute, false),
            TmpAtRest::Encrypted(envelope.clone()),
        )
        .unwrap();
        let sealed = Arc::new(sealed);
        let stacked = memory(sealed.clone(), minute);
        let layers: Vec<Arc<dyn SecretSource>> = vec![
            Arc::new(memory(base.clone(), minute)),
            Arc::new(plain),
            sealed,
            Arc::new(stacked),
        ];
        for layer in layers {
            behaviour::run_all(store.as_ref(), layer.as_ref(), FLAGS).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_cold_gets_make_one_backend_call() {
    let (backend, id) = seeded("single-flight").await;
    backend.set_delay(Duration::from_millis(100));
    let cache = Arc::new(memory(backend.clone(), Duration::from_secs(60)));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (cache, id) = (cache.clone(), id.clone());
            tokio::spawn(async move { cache.get_current(&id).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().unwrap().value().expose_str(),
            Some("single-flight")
        );
    }
    assert_eq!(backend.calls(), 1);
    let stats = cache.stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits + stats.coalesced, 63, "{stats:?}");
}

#[tokio::test]
async fn ttl_expiry_and_forced_refresh() {
    let (backend, id) = seeded("v1").await;
    let cache = memory(backend.clone(), Duration::from_millis(150));
    cache.get_current(&id).await.unwrap();
    cache.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 1, "second read is a hit");
    tokio::time::sleep(Duration::from_millis(200)).await;
    cache.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 2, "expired entry refreshed");

    backend
        .store
        .put(&id, &SecretValue::text("v2"))
        .await
        .unwrap();
    assert_eq!(
        cache.get_current(&id).await.unwrap().value().expose_str(),
        Some("v1")
    );
    let fresh = cache.refresh(&id, &VersionSelector::Current).await.unwrap();
    assert_eq!(fresh.value().expose_str(), Some("v2"));
    assert_eq!(
        cache.get_current(&id).await.unwrap().value().expose_str(),
        Some("v2")
    );
    cache.invalidate(&id, &VersionSelector::Current);
    cache.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 4);
}

#[tokio::test]
async fn stale_on_error_is_bounded_and_never_masks_permanent_errors() {
    let (backend, id) = seeded("stale-ok").await;
    let mut options = MemoryOptions::new(Duration::from_millis(100));
    options.stale_for = Duration::from_millis(400);
    let cache = MemoryCache::new(backend.clone(), options);
    cache.get_current(&id).await.unwrap();

    backend.fail(Some(ErrorKind::Transient));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stale = cache.get_current(&id).await.unwrap();
    assert_eq!(stale.value().expose_str(), Some("stale-ok"));
    assert_eq!(cache.stats().stale_served, 1);

    tokio::time::sleep(Duration::from_millis(450)).await;
    let err = cache.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "past the window: {err:?}");

    // Back to healthy, then a permanent error: not masked, and the entry is dropped.
    backend.fail(None);
    cache.refresh(&id, &VersionSelector::Current).await.unwrap();
    backend.fail(Some(ErrorKind::NotFound));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let err = cache.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    backend.fail(Some(ErrorKind::Transient));
    let err = cache.get_current(&id).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Transient,
        "nothing stale left to serve"
    );
}

#[tokio::test]
async fn size_is_bounded_and_prefetch_warms_the_cache() {
    let backend = Arc::new(FlakySource::default());
    let ids: Vec<SecretId> = (0..200)
        .map(|i| SecretId::new(format!("k/{i}")).unwrap())
        .collect();
    for id in &ids {
        backend
            .store
            .put(id, &SecretValue::text("x"))
            .await
            .unwrap();
    }
    let mut options = MemoryOptions::new(Duration::from_secs(60));
    options.max_entries = 20;
    let cache = MemoryCache::new(backend.clone(), options);
    for id in &ids {
        cache.get_current(id).await.unwrap();
    }
    assert!(cache.len() <= 20, "{} entries", cache.len());
    assert_eq!(backend.calls(), 200);

    let warm = memory(backend.clone(), Duration::from_secs(60));
    let results = warm.prefetch(&ids[..10]).await;
    assert!(results.iter().all(Result::is_ok));
    let before = backend.calls();
    for id in &ids[..10] {
        warm.get_current(id).await.unwrap();
    }
    assert_eq!(backend.calls(), before, "prefetched reads are hits");
    assert_eq!(warm.stats().hits, 10);
}

/// The version check on expiry: one DescribeSecret renews an unchanged entry; a new version
/// is read in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secretsmanager_version_check_renews_unchanged_entries() {
    let id = unique_id("vcheck");
    let raw = common::raw_secretsmanager().await;
    raw.create_secret()
        .name(id.as_str())
        .secret_string("one")
        .send()
        .await
        .unwrap();
    let url = format!(
        "{}&memory_ttl=200ms&memory_version_check=true",
        common::secretsmanager_url()
    );
    let source = Config::from_url(&url).unwrap().build().await.unwrap();
    assert_eq!(source.to_string(), "memory(secretsmanager(us-east-1))");
    assert_eq!(source.get_string(&id).await.unwrap().expose_secret(), "one");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(source.get_string(&id).await.unwrap().expose_secret(), "one");
    let debug = format!("{source:?}");
    assert!(debug.contains("renewed: 1"), "{debug}");
    raw.put_secret_value()
        .secret_id(id.as_str())
        .secret_string("two")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(source.get_string(&id).await.unwrap().expose_secret(), "two");
    assert!(format!("{source:?}").contains("refreshes: 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_entries_survive_a_restart_and_bad_entries_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, id) = seeded("restart-canary").await;
    let key = common::kms_key().await;
    let envelope = common::envelope(&key).await;
    let options = tmp_options(dir.path(), Duration::from_secs(60), false);
    let open = || {
        TmpCache::new(
            backend.clone(),
            &options,
            TmpAtRest::Encrypted(envelope.clone()),
        )
        .unwrap()
    };

    let first = open();
    first.get_current(&id).await.unwrap();
    assert_eq!(backend.calls(), 1);
    let path = first.entry_path(&id, &VersionSelector::Current);
    let bytes = std::fs::read(&path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(!name.contains("cache") && !name.contains(id.as_str()));
    assert!(
        !bytes.windows(14).any(|w| w == b"restart-canary"),
        "encrypted at rest"
    );
    assert!(
        !bytes
            .windows(id.as_str().len())
            .any(|w| w == id.as_str().as_bytes()),
        "no id inside"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&options.dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // A new instance (a restarted process) hits the file: no backend call.
    let second = open();
    let secret = second.get_current(&id).await.unwrap();
    assert_eq!(secret.value().expose_str(), Some("restart-canary"));
    assert_eq!((backend.calls(), second.stats().hits), (1, 1));

    // Corrupt, truncated, a stretched expiry, a loose mode: each ignored, refetched, replaced.
    let mut stretched = bytes.clone();
    // The expiry field (after the magic, the mode and the write time).
    stretched[15..23].copy_from_slice(&u64::MAX.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("garbage", b"not an entry at all".to_vec(), 0o600),
        ("truncated", bytes[..bytes.len() / 2].to_vec(), 0o600),
        ("stretched expiry", stretched, 0o600),
        ("loose mode", bytes.clone(), 0o644),
    ];
    for (name, content, mode) in cases {
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let calls = backend.calls();
        let cache = open();
        let secret = cache.get_current(&id).await.unwrap();
        assert_eq!(
            secret.value().expose_str(),
            Some("restart-canary"),
            "{name}"
        );
        assert_eq!(backend.calls(), calls + 1, "{name}: refetched");
        assert_eq!(cache.stats().rejected, 1, "{name}");
        assert_eq!(
            open().get_current(&id).await.unwrap().value().expose_str(),
            Some("restart-canary")
        );
        assert_eq!(
            backend.calls(),
            calls + 1,
            "{name}: replaced by a good entry"
        );
    }
}

#[tokio::test]
async fn tmp_entries_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, id) = seeded("short").await;
    let options = tmp_options(dir.path(), Duration::from_millis(100), true);
    let cache = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    cache.get_current(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    again.get_current(&id).await.unwrap();
    // Expired when read, or already swept away by the new cache: either way, read again.
    let stats = again.stats();
    assert_eq!((backend.calls(), stats.expired + stats.misses), (2, 1));
}

#[tokio::test]
async fn unsafe_tmp_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn SecretSource> = Arc::new(InMemorySource::new());
    let options = tmp_options(dir.path(), Duration::from_secs(1), true);
    std::fs::create_dir(&options.dir).unwrap();

    // Our own directory with a loose mode is tightened to 0700.
    std::fs::set_permissions(&options.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap();
    let mode = std::fs::metadata(&options.dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // A parent others can write to, without the sticky bit: anyone could swap the directory.
    let open_parent = dir.path().join("open");
    std::fs::create_dir(&open_parent).unwrap();
    std::fs::set_permissions(&open_parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut under_open = options.clone();
    under_open.dir = open_parent.join("cache");
    let err = TmpCache::new(backend.clone(), &under_open, TmpAtRest::Plaintext).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("not sticky"), "{err}");
    std::fs::set_permissions(&open_parent, std::fs::Permissions::from_mode(0o1777)).unwrap();
    TmpCache::new(backend.clone(), &under_open, TmpAtRest::Plaintext).unwrap();

    if rustix::process::geteuid().is_root() {
        // As root (CI), hand the directory to `nobody` and expect a refusal.
        std::os::unix::fs::chown(&options.dir, Some(65534), Some(65534)).unwrap();
        let err = TmpCache::new(backend.clone(), &options, TmpAtRest::Plaintext).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let mut linked = options.clone();
    linked.dir = link;
    let err = TmpCache::new(backend, &linked, TmpAtRest::Plaintext).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

/// Two processes read and rewrite the same entries as fast as they can; neither ever reads a
/// torn entry (each would count as rejected).
#[test]
fn two_processes_hammering_one_directory_never_read_a_torn_entry() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "hammer_child", "--ignored", "--nocapture"])
                .env("HAMMER_DIR", dir.path())
                .env("HAMMER_NAME", name)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("hammer done: rejected=0"), "{text}");
    }
}

/// The child of the test above (run only by it).
#[tokio::test]
#[ignore = "run by two_processes_hammering_one_directory_never_read_a_torn_entry"]
async fn hammer_child() {
    let Ok(dir) = std::env::var("HAMMER_DIR") else {
        return;
    };
    let name = std::env::var("HAMMER_NAME").unwrap();
    let backend = Arc::new(InMemorySource::new());
    let ids: Vec<SecretId> = (0..4)
        .map(|i| SecretId::new(format!("shared/{i}")).unwrap())
        .collect();
    // Each process writes its own (large) value under the same ids.
    let value = name.repeat(64 * 1024);
    for id in &ids {
        backend
            .put(id, &SecretValue::text(value.clone()))
            .await
            .unwrap();
    }
    let mut options = TmpOptions::new(Duration::from_millis(1));
    options.dir = std::path::PathBuf::from(dir).join("shared");
    options.plaintext = true;
    let cache = TmpCache::new(backend, &options, TmpAtRest::Plaintext).unwrap();
    for round in 0..300 {
        let id = &ids[round % ids.len()];
        let secret = cache.get_current(id).await.unwrap();
        let text = secret.value().expose_str().unwrap();
        // Its own value or the other process's, whole.
        let whole = text.len() == value.len()
            && (text.bytes().all(|b| b == b'a') || text.bytes().all(|b| b == b'b'));
        assert!(whole, "torn value");
    }
    println!(
        "hammer done: rejected={} hits={}",
        cache.stats().rejected,
        cache.stats().hits
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_stack_by_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (bucket, key) = (common::bucket(false).await, common::kms_key().await);
    let endpoint = common::emulator_endpoint();
    let url = format!(
        "s3+kms://{bucket}/app?kms_key_id={key}&region=us-east-1&endpoint_url={endpoint}\
         &memory_ttl=5m&tmp_ttl=1h&tmp_dir={}",
        dir.path().join("c").display()
    );
    let config = Config::from_url(&url).unwrap();
    let store = config.build_store().await.unwrap();
    let id = unique_id("stack");
    store.put(&id, &SecretValue::text("stacked")).await.unwrap();
    let source = config.build().await.unwrap();
    assert_eq!(
        source.to_string(),
        format!("memory(tmp[encrypted](s3+kms({bucket}/app)))")
    );
    assert_eq!(
        source.get_string(&id).await.unwrap().expose_secret(),
        "stacked"
    );

    // The same from TOML.
    let toml = format!(
        "source = \"s3+kms://{bucket}/app?kms_key_id={key}&region=us-east-1&endpoint_url={endpoint}\"\n\
         [memory]\nttl = \"5m\"\nmax_entries = 50\nstale_for = \"1m\"\n\
         [tmp]\nttl = \"1h\"\ndir = \"{}\"\nplaintext = true\n",
        dir.path().join("t").display()
    );
    let source = Config::from_toml_str(&toml).unwrap().build().await.unwrap();
    assert_eq!(
        source.to_string(),
        format!("memory(tmp[plaintext](s3+kms({bucket}/app)))")
    );
    assert_eq!(
        source.get_string(&id).await.unwrap().expose_secret(),
        "stacked"
    );

    // An encrypted tmp cache needs a key.
    let no_key = format!(
        "{}&tmp_ttl=1h&tmp_dir={}",
        common::secretsmanager_url(),
        dir.path().join("n").display()
    );
    let err = Config::from_url(&no_key)
        .unwrap()
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tmp_plaintext=true"), "{err}");
    // A version check needs versions.
    let bad =
        format!("{url}&memory_version_check=true").replace("&memory_ttl=5m", "&memory_ttl=1m");
    let err = Config::from_url(&bad).unwrap().build().await.unwrap_err();
    assert!(
        err.to_string().contains("needs a source with versions"),
        "{err}"
    );
}

/// A process that keeps entries in plaintext and one that seals them, on one directory and
/// one source: each keeps its own entry (the mode and the key name the file), so neither
/// replaces the other's on every read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_sealed_entries_of_one_source_live_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, id) = seeded("side-by-side").await;
    let key = common::kms_key().await;
    let envelope = common::envelope(&key).await;
    let plain = tmp_options(dir.path(), Duration::from_secs(60), true);
    let sealed = tmp_options(dir.path(), Duration::from_secs(60), false);
    for _ in 0..3 {
        TmpCache::new(backend.clone(), &plain, TmpAtRest::Plaintext)
            .unwrap()
            .get_current(&id)
            .await
            .unwrap();
        TmpCache::new(
            backend.clone(),
            &sealed,
            TmpAtRest::Encrypted(envelope.clone()),
        )
        .unwrap()
        .get_current(&id)
        .await
        .unwrap();
    }
    assert_eq!(backend.calls(), 2, "one miss per mode, hits after");
}
