//! `file+kms` (EFS in Lambda, any directory here) with the emulator's KMS.

use secret_loader::testing as common;
use secret_loader::testing::behaviour;

use std::os::unix::fs::{PermissionsExt, symlink};

use secret_loader::{
    ErrorKind, SecretId, SecretSource, SecretSourceExt, SecretStore, SecretValue, VersionSelector,
};

use common::{file_kms, kms_key, unique_id};
use secret_loader::secrecy::ExposeSecret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_suite_passes_on_file_kms() {
    let root = tempfile::tempdir().unwrap();
    let source = file_kms(root.path(), &kms_key().await).await;
    let flags = behaviour::Flags {
        staging_labels: false,
        keeps_kind: true,
        text_only: false,
    };
    behaviour::run_all(&source, &source, flags).await;
}

/// Id `a/b/c` is the file `<root>/a/b/c`: 0600, in 0700 directories, an Encryption SDK
/// message, with no temporary files left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_and_permissions() {
    let root = tempfile::tempdir().unwrap();
    let source = file_kms(root.path(), &kms_key().await).await;
    let id = SecretId::new("team/app/db-password").unwrap();
    source
        .put(&id, &SecretValue::text("perm-canary"))
        .await
        .unwrap();
    source
        .put(&id, &SecretValue::text("perm-canary-2"))
        .await
        .unwrap();
    let file = root.path().join("team/app/db-password");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&root.path().join("team")), 0o700);
    assert_eq!(mode(&root.path().join("team/app")), 0o700);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes[0], 2);
    assert!(!bytes.windows(11).any(|w| w == b"perm-canary"));
    let names: Vec<_> = std::fs::read_dir(root.path().join("team/app"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["db-password"], "temporary files left: {names:?}");
    assert_eq!(
        source.get_string(&id).await.unwrap().expose_secret(),
        "perm-canary-2"
    );
    let err = source
        .get(&id, &VersionSelector::Stage("AWSPREVIOUS".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

/// A symlink inside the root that points outside it is refused for reads and writes, and
/// nothing is written outside the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_the_root_are_refused_and_nothing_is_written_outside() {
    let key = kms_key().await;
    let outside = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    // A perfectly good envelope outside the root, reachable only through the link.
    let elsewhere = file_kms(outside.path(), &key).await;
    elsewhere
        .put(&SecretId::new("x").unwrap(), &SecretValue::text("outside"))
        .await
        .unwrap();
    symlink(outside.path(), root.path().join("link")).unwrap();
    symlink("/etc/passwd", root.path().join("passwd")).unwrap();
    let source = file_kms(root.path(), &key).await;

    for id in ["link/x", "passwd"] {
        let err = source
            .get_current(&SecretId::new(id).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidId, "{id}: {err:?}");
        assert!(err.to_string().contains("outside"), "{err}");
    }
    let before: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for id in ["link/y", "link/new/z"] {
        let err = source
            .put(
                &SecretId::new(id).unwrap(),
                &SecretValue::text("must-not-land"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidId, "{id}: {err:?}");
    }
    let after: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "something was written outside the root");
    // A put to the id of a symlinked file replaces the link inside the root, and never
    // writes through it.
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    source
        .put(
            &SecretId::new("passwd").unwrap(),
            &SecretValue::text("must-not-land"),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
    assert!(!root.path().join("passwd").is_symlink());
    // Deleting through the link is refused too.
    let err = source
        .delete(&SecretId::new("link/x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidId);
    assert!(outside.path().join("x").exists());

    // `../x` and `/etc/passwd` are names Secrets Manager takes, but no path under the root:
    // refused for every operation, and nothing outside is read, written or removed.
    for bad in ["../x", "/etc/passwd", "a/../../x", "a//b", "a/"] {
        let id = SecretId::new(bad).unwrap();
        let read = source.get_current(&id).await.unwrap_err();
        let write = source
            .put(&id, &SecretValue::text("must-not-land"))
            .await
            .unwrap_err();
        let remove = source.delete(&id).await.unwrap_err();
        for err in [read, write, remove] {
            assert_eq!(err.kind(), ErrorKind::InvalidId, "{bad}: {err:?}");
        }
    }
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
}

/// Interop: a file the official `aws-encryption-cli` encrypted with the documented context is
/// read by our `get`, to the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_encrypted_by_aws_encryption_cli_are_readable() {
    let key = kms_key().await;
    let root = tempfile::tempdir().unwrap();
    let id = unique_id("from-cli");
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = plain_dir.path().join("plain");
    let value = b"{\"token\":\"written-by-aws-encryption-cli\"}";
    std::fs::write(&plain, value).unwrap();
    let target = root.path().join(id.as_str());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    common::run_encryption_cli("--encrypt", &plain, &target, &key, &id, "file+kms");
    let written = std::fs::read(&target).unwrap();
    assert_eq!(
        &written[..3],
        &[0x02, 0x05, 0x78],
        "the CLI's default: the signed suite"
    );
    let source = file_kms(root.path(), &key).await;
    let secret = source.get_current(&id).await.unwrap();
    assert_eq!(secret.value().expose_bytes(), value);
    assert_eq!(
        source
            .get_field(&id, "token")
            .await
            .unwrap()
            .expose_secret(),
        "written-by-aws-encryption-cli"
    );
    // The same file under another id is refused: the context names the id.
    let moved = unique_id("moved");
    std::fs::create_dir_all(root.path().join(moved.as_str()).parent().unwrap()).unwrap();
    std::fs::copy(&target, root.path().join(moved.as_str())).unwrap();
    let err = source.get_current(&moved).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_give_typed_errors() {
    let key = kms_key().await;
    let root = tempfile::tempdir().unwrap();
    let source = file_kms(root.path(), &key).await;
    let good = SecretId::new("good").unwrap();
    source
        .put(&good, &SecretValue::text("file-canary"))
        .await
        .unwrap();
    let sealed = std::fs::read(root.path().join("good")).unwrap();
    let mut flipped = sealed.clone();
    flipped[sealed.len() / 3] ^= 0x08;
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        ("flipped", flipped, ErrorKind::DecryptionFailed),
        (
            "truncated",
            sealed[..sealed.len() / 2].to_vec(),
            ErrorKind::DecryptionFailed,
        ),
        ("empty", Vec::new(), ErrorKind::InvalidFormat),
        ("plain", b"file-canary\n".to_vec(), ErrorKind::InvalidFormat),
        ("copied", sealed.clone(), ErrorKind::DecryptionFailed),
    ];
    for (name, bytes, kind) in cases {
        std::fs::write(root.path().join(name), bytes).unwrap();
        let err = source
            .get_current(&SecretId::new(name).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err:?}");
        assert!(!format!("{err:?} {}", err.display_chain()).contains("file-canary"));
    }
    // An envelope under another KMS key.
    let other = file_kms(root.path(), &kms_key().await).await;
    assert_eq!(
        other.get_current(&good).await.unwrap_err().kind(),
        ErrorKind::DecryptionFailed
    );
    // A directory where a file is expected, a file where a directory is expected.
    std::fs::create_dir(root.path().join("dir")).unwrap();
    for id in ["dir", "good/below"] {
        let err = source
            .get_current(&SecretId::new(id).unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{id}: {err:?}");
    }
    // A file too large to be a secret is refused unread.
    std::fs::write(root.path().join("huge"), vec![2u8; 2 * 1024 * 1024]).unwrap();
    let err = source
        .get_current(&SecretId::new("huge").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFormat, "{err:?}");
    // The good one is untouched.
    assert_eq!(
        source.get_string(&good).await.unwrap().expose_secret(),
        "file-canary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_root_is_a_config_error() {
    let gone = tempfile::tempdir().unwrap().path().join("not-there");
    let envelope = common::envelope(&kms_key().await).await;
    let err = secret_loader::FileKmsSource::new(&gone, envelope).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err:?}");
}

/// Many concurrent reads in one task (the shape of `get_many` and of a cache's prefetch).
/// The Encryption SDK blocks inside to call KMS; run on the caller's thread, that blocking
/// swallowed the wake-ups of the other reads, and the task stalled or hung (before the fix:
/// rounds of 16 reads took tens of seconds, or forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_in_one_task_complete() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let root = tempfile::tempdir().unwrap();
    let source = file_kms(root.path(), &kms_key().await).await;
    let id = unique_id("herd");
    source.put(&id, &SecretValue::text("herd")).await.unwrap();
    // A lost wake-up also silences tokio's own timers in this task: watch from a thread.
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!("20 rounds of 16 concurrent reads did not finish in 60 s: lost wake-up");
            std::process::exit(101);
        })
    };
    // Fewer than 30 futures: `join_all` then polls them all on each wake-up of the task.
    for _ in 0..20 {
        let reads = (0..16).map(|_| source.get_current(&id));
        let all = futures_util::future::join_all(reads).await;
        assert!(
            all.iter()
                .all(|r| r.as_ref().unwrap().value().expose_str() == Some("herd"))
        );
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
}

/// The forgery an attacker who may `kms:Decrypt` (every reader of the secret) would try on a
/// signed secret: take the genuine 0x0578 file, get its data key from KMS with the same
/// context, and write an unsigned 0x0478 message around another plaintext with the same
/// encrypted data key and context (the verification key included). Every tag of that message
/// checks; the specification forbids an unsigned suite whose context carries a verification
/// key, and both the reader configured for the signed suite and the default reader refuse it
/// before any KMS call. A reader configured for the signed suite also refuses an unsigned
/// message that carries no verification key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_who_can_decrypt_cannot_forge_a_signed_secret() {
    use secret_loader::testing::message;
    let root = tempfile::tempdir().unwrap();
    let key = kms_key().await;
    let url = |suite: &str| {
        format!(
            "file+kms://{}?kms_key_id={key}&suite={suite}",
            root.path().display()
        )
    };
    let signed = secret_loader::Config::from_url(&url("committing-signed"))
        .unwrap()
        .build_store()
        .await
        .unwrap();
    let id = SecretId::new("prod/signed").unwrap();
    signed
        .put(&id, &SecretValue::text("genuine-value"))
        .await
        .unwrap();
    let path = root.path().join("prod/signed");
    let genuine = std::fs::read(&path).unwrap();
    let header = message::parse_header(&genuine).unwrap();
    assert_eq!(header.suite, 0x0578);
    assert!(header.context.contains_key(message::PUBLIC_KEY_CONTEXT));

    // The attacker's part: KMS Decrypt of the data key, as any reader may.
    let kms = common::raw_kms().await;
    let data_key = data_key_of(&key, &header).await;
    let forged = message::write(
        0x0478,
        &header.context,
        &header.data_keys,
        &data_key,
        b"forged-value",
        4096,
    )
    .unwrap();
    std::fs::write(&path, &forged).unwrap();

    let default = secret_loader::Config::from_url(&url("committing"))
        .unwrap()
        .build()
        .await
        .unwrap();
    let signed_reader = secret_loader::Config::from_url(&url("committing-signed"))
        .unwrap()
        .build()
        .await
        .unwrap();
    for (name, reader) in [("default", &default), ("signed", &signed_reader)] {
        let err = reader.get_current(&id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{name}: {err:?}");
        let chain = err.display_chain().to_string();
        assert!(
            chain.contains("unsigned suite whose context carries a verification key"),
            "{name}: {chain}"
        );
        assert!(!chain.contains("forged-value") && !chain.contains("genuine-value"));
    }

    // Without the verification key the unsigned message is well-formed: the default reader
    // opens it (what `suite=committing` promises), a signed reader does not.
    let mut context = header.context.clone();
    context.remove(message::PUBLIC_KEY_CONTEXT);
    let data_key_for_new_context = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(32)
        .set_encryption_context(Some(context.clone().into_iter().collect()))
        .send()
        .await
        .unwrap();
    let edk = message::DataKeyEntry {
        provider_id: "aws-kms".into(),
        provider_info: key.clone().into_bytes(),
        ciphertext: data_key_for_new_context
            .ciphertext_blob
            .unwrap()
            .into_inner(),
    };
    let unsigned = message::write(
        0x0478,
        &context,
        &[edk],
        data_key_for_new_context.plaintext.unwrap().as_ref(),
        b"unsigned-value",
        4096,
    )
    .unwrap();
    std::fs::write(&path, &unsigned).unwrap();
    let opened = default.get_current(&id).await.unwrap();
    assert_eq!(opened.value().expose_str(), Some("unsigned-value"));
    let err = signed_reader.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
    assert!(
        err.display_chain()
            .to_string()
            .contains("this reader requires signed ones"),
        "{err}"
    );
}

/// Non-framed messages (content type 0x01), which the official CLI writes with
/// `--frame-length 0` (and older SDKs by default), open in both committing suites; a tampered
/// one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_framed_files_from_aws_encryption_cli_are_readable() {
    let key = kms_key().await;
    let root = tempfile::tempdir().unwrap();
    let source = file_kms(root.path(), &key).await;
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = plain_dir.path().join("plain");
    let value: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&plain, &value).unwrap();
    for (suite, algorithm) in [
        (0x78u8, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"),
        (0x78u8, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"),
    ] {
        let id = unique_id("non-framed");
        let target = root.path().join(id.as_str());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        common::run_encryption_cli_with(
            "--encrypt",
            &plain,
            &target,
            &key,
            &id,
            "file+kms",
            &["--frame-length", "0", "--algorithm", algorithm],
        );
        let written = std::fs::read(&target).unwrap();
        assert_eq!((written[0], written[2]), (0x02, suite), "{algorithm}");
        let secret = source.get_current(&id).await.unwrap();
        assert_eq!(secret.value().expose_bytes(), &value[..], "{algorithm}");

        let mut tampered = written.clone();
        let at = written.len() - 200;
        tampered[at] ^= 1;
        std::fs::write(&target, &tampered).unwrap();
        let err = source.get_current(&id).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::DecryptionFailed,
            "{algorithm}: {err:?}"
        );
    }
}

/// An `aws-kms` encrypted data key whose provider info is not a KMS key ARN (an alias ARN
/// here) fails the read, even beside a good data key for our key (`aws-kms-keyring.md`,
/// OnDecrypt: the provider info MUST be a valid AWS KMS key ARN or OnDecrypt MUST fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_kms_data_key_without_a_key_arn_fails_the_read() {
    use secret_loader::testing::message;
    let root = tempfile::tempdir().unwrap();
    let key = kms_key().await;
    let source = file_kms(root.path(), &key).await;
    let id = SecretId::new("app/arn").unwrap();
    source
        .put(&id, &SecretValue::text("arn-canary"))
        .await
        .unwrap();
    let path = root.path().join("app/arn");
    let genuine = std::fs::read(&path).unwrap();
    let header = message::parse_header(&genuine).unwrap();
    let data_key = data_key_of(&key, &header).await;
    let alias = message::DataKeyEntry {
        provider_id: "aws-kms".into(),
        provider_info: b"arn:aws:kms:us-east-1:123456789012:alias/app".to_vec(),
        ciphertext: vec![1, 2, 3],
    };
    let mut entries = vec![alias];
    entries.extend(header.data_keys.clone());
    let rewritten = message::write(
        0x0478,
        &header.context,
        &entries,
        &data_key,
        b"arn-canary",
        4096,
    )
    .unwrap();
    std::fs::write(&path, &rewritten).unwrap();
    let err = source.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
    assert!(
        err.display_chain()
            .to_string()
            .contains("provider info is not a KMS key ARN"),
        "{err}"
    );
    // The same message without that entry opens: the refusal is the rule's.
    let good = message::write(
        0x0478,
        &header.context,
        &header.data_keys,
        &data_key,
        b"arn-canary",
        4096,
    )
    .unwrap();
    std::fs::write(&path, &good).unwrap();
    let opened = source.get_current(&id).await.unwrap();
    assert_eq!(opened.value().expose_str(), Some("arn-canary"));
}

/// The plaintext data key of a message's first encrypted data key, from KMS `Decrypt` with
/// the message's own context: what any principal allowed to decrypt with `key` can get.
async fn data_key_of(key: &str, header: &secret_loader::testing::message::HeaderParts) -> Vec<u8> {
    common::raw_kms()
        .await
        .decrypt()
        .key_id(key)
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
            header.data_keys[0].ciphertext.clone(),
        ))
        .set_encryption_context(Some(header.context.clone().into_iter().collect()))
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap()
        .into_inner()
}
