//! `s3+kms` and `s3+sse-kms` through the real SDK against the emulator's S3 and KMS.

use secret_loader::testing as common;
use secret_loader::testing::behaviour;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use secret_loader::secrecy::ExposeSecret;
use secret_loader::{
    AlgorithmSuite, Config, Envelope, ErrorKind, S3Source, SecretId, SecretSource, SecretSourceExt,
    SecretStore, SecretValue, VersionSelector,
};

use common::{bucket, kms_key, raw_s3, s3_kms, unique_id};

const FLAGS: behaviour::Flags = behaviour::Flags {
    staging_labels: false,
    keeps_kind: true,
    text_only: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_suite_passes_on_s3_kms_in_a_versioned_bucket() {
    let source = s3_kms(&bucket(true).await, "app/prod", &kms_key().await).await;
    behaviour::run_all(&source, &source, FLAGS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_suite_passes_on_s3_kms_without_prefix_or_versioning() {
    let source = s3_kms(&bucket(false).await, "", &kms_key().await).await;
    behaviour::run_all(&source, &source, FLAGS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_suite_passes_on_s3_sse_kms() {
    let key = kms_key().await;
    let source = S3Source::server_side(raw_s3().await, bucket(true).await, "sse", Some(key));
    behaviour::run_all(&source, &source, FLAGS).await;
}

/// The object layout a third party (or `aws s3 cp`) sees: an Encryption SDK message under
/// `<prefix>/<id>` with our content type and marker, and SSE-KMS objects with the SSE headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_envelopes_under_the_prefix() {
    let (bucket, key) = (bucket(false).await, kms_key().await);
    let source = s3_kms(&bucket, "team/app", &key).await;
    let id = unique_id("layout");
    source
        .put(&id, &SecretValue::text("layout-canary"))
        .await
        .unwrap();
    let object = raw_s3()
        .await
        .get_object()
        .bucket(&bucket)
        .key(format!("team/app/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object.content_type(),
        Some("application/vnd.aws-encryption-sdk-message")
    );
    assert_eq!(
        object
            .metadata()
            .unwrap()
            .get("secret-loader-format")
            .map(String::as_str),
        Some("aws-encryption-sdk")
    );
    let body = object.body.collect().await.unwrap().to_vec();
    assert_eq!(body[0], 2, "an AWS Encryption SDK v2 message");
    assert!(!body.windows(13).any(|w| w == b"layout-canary"));

    let sse = S3Source::server_side(raw_s3().await, bucket.clone(), "sse", Some(key));
    sse.put(&id, &SecretValue::text("sse-value")).await.unwrap();
    let head = raw_s3()
        .await
        .head_object()
        .bucket(&bucket)
        .key(format!("sse/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
}

/// Interop: the official `aws-encryption-cli` decrypts what we wrote, given the documented
/// encryption context, to the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_encryption_cli_decrypts_our_objects() {
    let (bucket, key) = (bucket(false).await, kms_key().await);
    let source = s3_kms(&bucket, "interop", &key).await;
    let id = unique_id("interop");
    let value = r#"{"access_key":"AKIAINTEROP","secret_key":"interop/secret"}"#;
    source.put(&id, &SecretValue::text(value)).await.unwrap();
    let body = get_raw(&bucket, &format!("interop/{id}")).await;

    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("object"), dir.path().join("plain"));
    std::fs::write(&input, body).unwrap();
    common::run_encryption_cli("--decrypt", &input, &output, &key, &id, "s3+kms");
    // A context mismatch exits 0 without output: the bytes are the check.
    assert_eq!(std::fs::read(&output).unwrap(), value.as_bytes());
}

/// An object the official `aws-encryption-cli` wrote with its default suite (the signed one,
/// 0x0578) opens through `s3+kms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_encrypted_by_aws_encryption_cli_with_its_default_suite_are_readable() {
    let (bucket, key) = (bucket(false).await, kms_key().await);
    let id = unique_id("from-cli");
    let dir = tempfile::tempdir().unwrap();
    let (plain, sealed) = (dir.path().join("plain"), dir.path().join("sealed"));
    let value = br#"{"token":"written-by-aws-encryption-cli"}"#;
    std::fs::write(&plain, value).unwrap();
    common::run_encryption_cli("--encrypt", &plain, &sealed, &key, &id, "s3+kms");
    let message = std::fs::read(&sealed).unwrap();
    assert_eq!(
        &message[..3],
        &[0x02, 0x05, 0x78],
        "format 2.0, the signed committing suite"
    );
    put_raw(&bucket, &format!("interop/{id}"), message).await;
    let source = s3_kms(&bucket, "interop", &key).await;
    let secret = source.get_current(&id).await.unwrap();
    assert_eq!(secret.value().expose_bytes(), value);
}

async fn put_raw(bucket: &str, key: &str, body: Vec<u8>) {
    raw_s3()
        .await
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

async fn get_raw(bucket: &str, key: &str) -> Vec<u8> {
    raw_s3()
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

/// Tampered, truncated, empty and plain objects; an envelope moved to another id; an envelope
/// under another KMS key: each its typed error, and the value never in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_give_typed_errors() {
    let (bucket, key) = (bucket(false).await, kms_key().await);
    let source = s3_kms(&bucket, "bad", &key).await;
    let good = unique_id("good");
    source
        .put(&good, &SecretValue::text("bad-input-canary"))
        .await
        .unwrap();
    let sealed = get_raw(&bucket, &format!("bad/{good}")).await;

    let mut flipped_body = sealed.clone();
    let middle = flipped_body.len() / 2;
    flipped_body[middle] ^= 0x40;
    let mut flipped_tag = sealed.clone();
    *flipped_tag.last_mut().unwrap() ^= 0x01;
    let cases: Vec<(&str, Vec<u8>, ErrorKind)> = vec![
        ("flipped-body", flipped_body, ErrorKind::DecryptionFailed),
        ("flipped-tag", flipped_tag, ErrorKind::DecryptionFailed),
        (
            "truncated",
            sealed[..sealed.len() - 20].to_vec(),
            ErrorKind::DecryptionFailed,
        ),
        ("empty", Vec::new(), ErrorKind::InvalidFormat),
        (
            "plain",
            b"password=bad-input-canary\n".to_vec(),
            ErrorKind::InvalidFormat,
        ),
        // The good envelope, copied under another id: the context no longer matches.
        ("copied", sealed.clone(), ErrorKind::DecryptionFailed),
    ];
    for (name, body, kind) in cases {
        let id = unique_id(name);
        put_raw(&bucket, &format!("bad/{id}"), body).await;
        let err = source.get_current(&id).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err:?}");
        let printed = format!("{err} {err:?} {}", err.display_chain());
        assert!(!printed.contains("bad-input-canary"), "{name}: {printed}");
    }

    // The same envelope read through a source holding another KMS key.
    let other = s3_kms(&bucket, "bad", &kms_key().await).await;
    let err = other.get_current(&good).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err:?}");
    // And the good one is still good.
    let ok = source.get_current(&good).await.unwrap();
    assert_eq!(ok.value().expose_str(), Some("bad-input-canary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_not_found_for_reads_and_writes() {
    let key = kms_key().await;
    let source = s3_kms(&common::unique("no-such-bucket").to_lowercase(), "p", &key).await;
    let id = unique_id("nobucket");
    let err = source.get_current(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    let err = source.put(&id, &SecretValue::text("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_versions_are_readable_and_stages_are_unsupported() {
    let source = s3_kms(&bucket(true).await, "v", &kms_key().await).await;
    let id = unique_id("versions");
    let first = source.put(&id, &SecretValue::text("one")).await.unwrap();
    source.put(&id, &SecretValue::text("two")).await.unwrap();
    let old = source
        .get(&id, &VersionSelector::Id(first.version_id.clone().unwrap()))
        .await
        .unwrap();
    assert_eq!(old.value().expose_str(), Some("one"));
    let err = source
        .get(&id, &VersionSelector::Stage("AWSPREVIOUS".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
    let arn = SecretId::new("arn:aws:secretsmanager:us-east-1:123456789012:secret:x").unwrap();
    assert_eq!(
        source.get_current(&arn).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

/// `s3+kms://` from a URL, with an alias resolved to the key ARN through DescribeKey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_url_with_a_key_alias_builds_a_working_source() {
    let (bucket, key) = (bucket(false).await, kms_key().await);
    let alias = common::kms_alias(&key).await;
    let endpoint = common::emulator_endpoint();
    let url = format!(
        "s3+kms://{bucket}/cfg?kms_key_id={alias}&region=us-east-1&endpoint_url={endpoint}"
    );
    let store = Config::from_url(&url).unwrap().build_store().await.unwrap();
    assert_eq!(store.to_string(), format!("s3+kms({bucket}/cfg)"));
    let id = unique_id("cfg");
    store.put(&id, &SecretValue::text("via-url")).await.unwrap();
    // Readable by a source built on the key ARN: the alias named the same key.
    let by_arn = s3_kms(&bucket, "cfg", &key).await;
    assert_eq!(
        by_arn.get_string(&id).await.unwrap().expose_secret(),
        "via-url"
    );

    let missing = format!(
        "s3+kms://{bucket}/cfg?kms_key_id=alias/no-such-key&region=us-east-1&endpoint_url={endpoint}"
    );
    let err = Config::from_url(&missing)
        .unwrap()
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err:?}");
    let no_key = format!("s3+kms://{bucket}/cfg?region=us-east-1&endpoint_url={endpoint}");
    let err = Config::from_url(&no_key)
        .unwrap()
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a KMS key"), "{err}");
}

/// Nothing listening for S3 or KMS: a retryable error in bounded time, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_down_is_transient_for_s3_and_for_kms() {
    let down = common::down_sdk_config().await;
    let key_arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000009";

    // S3 down.
    let envelope = Envelope::kms(
        aws_sdk_kms::Client::new(&down),
        key_arn,
        AlgorithmSuite::Committing,
    )
    .await
    .unwrap();
    let s3_down = S3Source::envelope(aws_sdk_s3::Client::new(&down), "b", "p", envelope.into());
    let missing = unique_id("down");
    let read = tokio::time::timeout(Duration::from_secs(30), s3_down.get_current(&missing));
    let err = read.await.expect("hung").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");

    // S3 up, KMS down: the object is there, the decrypt can't happen.
    let (bucket, key) = (bucket(false).await, kms_key().await);
    let writer = s3_kms(&bucket, "p", &key).await;
    let id = unique_id("kmsdown");
    writer.put(&id, &SecretValue::text("x")).await.unwrap();
    let envelope = Envelope::kms(
        aws_sdk_kms::Client::new(&down),
        &key,
        AlgorithmSuite::Committing,
    )
    .await
    .unwrap();
    let kms_down = S3Source::envelope(raw_s3().await, bucket, "p", envelope.into());
    let read = tokio::time::timeout(Duration::from_secs(30), kms_down.get_current(&id));
    let err = read.await.expect("hung").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert!(err.is_retryable());
}

/// An object whose size the answer does not give (chunked) and that is larger than the cap:
/// refused once the bytes read pass the cap, without waiting for the rest, which never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_without_a_length_is_cut_at_the_cap() {
    use std::io::Write;
    let fake = common::FakeHttp::start(|_, stream| {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..20 {
            let _ = write!(stream, "{:x}\r\n", chunk.len());
            let _ = stream.write_all(&chunk);
            let _ = stream.write_all(b"\r\n");
        }
        // 1.25 MiB sent; the rest never comes (and the last chunk never ends the body).
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let mut options = common::aws_options(fake.endpoint());
    options.max_attempts = 1;
    let sdk = secret_loader::aws::load_sdk_config(&options).await.unwrap();
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let source = secret_loader::S3Source::server_side(client, "bucket", "p", None);
    let err = source
        .get_current(&SecretId::new("big").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFormat, "{err:?}");
    // Without the cut it would wait for the rest until the attempt deadline: `Transient`.
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
}
