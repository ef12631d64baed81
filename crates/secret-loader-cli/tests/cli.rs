//! The real `secret-loader` binary against the emulator on loopback.

use secret_loader::testing as common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::{raw_secretsmanager, secretsmanager_url, unique_id};

fn cli(args: &[&str], stdin: &[u8]) -> Output {
    cli_with_env(args, stdin, &[])
}

/// `cli` with extra environment variables (a function's configuration).
fn cli_with_env(args: &[&str], stdin: &[u8], vars: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secret-loader"))
        .args(args)
        .envs(vars.iter().copied())
        .env_remove("SECRET_LOADER_SOURCE")
        .env_remove("SECRET_LOADER_CONFIG")
        .env_remove("SECRET_LOADER_LOG")
        .env_remove("SECRET_LOADER_KMS_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run secret-loader");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One line on stderr, exit code `code`, nothing on stdout, and no trace of `value`.
fn assert_failed(output: &Output, code: i32, value: &str) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert!(output.stdout.is_empty(), "stdout: {:?}", output.stdout);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("secret-loader: "), "{err}");
    assert!(
        !value.is_empty() && !err.contains(value),
        "value leaked: {err}"
    );
    err
}

#[tokio::test]
async fn get_field_reads_the_seed_json_created_by_the_sdk() {
    let id = unique_id("cli-seed");
    raw_secretsmanager()
        .await
        .create_secret()
        .name(id.as_str())
        .secret_string(r#"{"access_key": "AKIACLIEXAMPLE", "secret_key": "cli/Secret+Key"}"#)
        .send()
        .await
        .unwrap();
    let url = secretsmanager_url();
    for (field, want) in [
        ("access_key", "AKIACLIEXAMPLE"),
        ("secret_key", "cli/Secret+Key"),
    ] {
        let out = cli(
            &["get", id.as_str(), "--field", field, "--source", &url],
            b"",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn put_from_stdin_then_get_returns_the_exact_bytes_and_versions() {
    let id = unique_id("cli-put");
    let url = secretsmanager_url();
    let put = cli(&["put", id.as_str(), "--source", &url], b"first value\n");
    assert!(put.status.success(), "{}", stderr(&put));
    let first_version = String::from_utf8_lossy(&put.stdout).trim().to_owned();
    assert!(!first_version.is_empty());
    assert!(stderr(&put).contains("created"), "{}", stderr(&put));

    let put = cli(&["put", id.as_str(), "--source", &url], b"second");
    assert!(put.status.success(), "{}", stderr(&put));

    let get = cli(&["get", id.as_str(), "--source", &url], b"");
    assert_eq!(get.stdout, b"second");
    let previous = cli(
        &[
            "get",
            id.as_str(),
            "--version-stage",
            "AWSPREVIOUS",
            "--source",
            &url,
        ],
        b"",
    );
    assert_eq!(previous.stdout, b"first value\n");
    let by_id = cli(
        &[
            "get",
            id.as_str(),
            "--version-id",
            &first_version,
            "--source",
            &url,
        ],
        b"",
    );
    assert_eq!(by_id.stdout, b"first value\n");
}

#[tokio::test]
async fn binary_values_round_trip_and_need_the_flag() {
    let id = unique_id("cli-bin");
    let url = secretsmanager_url();
    let bytes = [0xffu8, 0x00, 0xfe, b'x'];
    let refused = cli(&["put", id.as_str(), "--source", &url], &bytes);
    let err = assert_failed(&refused, 7, "\u{fffd}");
    assert!(err.contains("--binary"), "{err}");

    let put = cli(&["put", id.as_str(), "--binary", "--source", &url], &bytes);
    assert!(put.status.success(), "{}", stderr(&put));
    let get = cli(&["get", id.as_str(), "--source", &url], b"");
    assert_eq!(get.stdout, bytes);
}

#[tokio::test]
async fn source_from_the_environment_and_from_a_toml_file() {
    let id = unique_id("cli-env");
    let url = secretsmanager_url();
    assert!(
        cli(&["put", id.as_str(), "--source", &url], b"env-value")
            .status
            .success()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_secret-loader"))
        .args(["get", id.as_str()])
        .env("SECRET_LOADER_SOURCE", &url)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"env-value", "{}", stderr(&out));

    let dir = std::env::temp_dir().join(common::unique("cli-toml"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret-loader.toml");
    std::fs::write(&file, format!("source = \"{url}\"\n")).unwrap();
    let out = cli(
        &["get", id.as_str(), "--config", file.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.stdout, b"env-value", "{}", stderr(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn errors_have_their_exit_code_and_never_show_the_value() {
    let id = unique_id("cli-err");
    let url = secretsmanager_url();
    let value = r#"{"token":"CLI-CANARY-55aa"}"#;
    assert!(
        cli(&["put", id.as_str(), "--source", &url], value.as_bytes())
            .status
            .success()
    );

    let missing = unique_id("cli-missing");
    let err = assert_failed(
        &cli(&["get", missing.as_str(), "--source", &url], b""),
        3,
        "CLI-CANARY",
    );
    assert!(
        err.contains("not found") && err.contains(missing.as_str()),
        "{err}"
    );

    let err = assert_failed(
        &cli(
            &["get", id.as_str(), "--field", "password", "--source", &url],
            b"",
        ),
        8,
        "CLI-CANARY",
    );
    assert!(err.contains("no JSON field `password`"), "{err}");

    let err = assert_failed(
        &cli(&["get", "x", "--source", "s3://bucket"], b""),
        7,
        "CLI-CANARY",
    );
    assert!(err.contains("valid schemes: secretsmanager://"), "{err}");

    let err = assert_failed(&cli(&["get", "x"], b""), 7, "CLI-CANARY");
    assert!(err.contains("SECRET_LOADER_SOURCE"), "{err}");

    let empty = assert_failed(
        &cli(&["put", id.as_str(), "--source", &url], b""),
        7,
        "CLI-CANARY",
    );
    assert!(empty.contains("empty"), "{empty}");
}

/// Invalid ids are refused before any connection is made: the endpoint here is a listener
/// that counts connections, and it sees none.
#[test]
fn invalid_ids_are_rejected_before_any_network_call() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "secretsmanager://?region=us-east-1&endpoint_url=http://{}",
        listener.local_addr().unwrap()
    );
    for bad in [
        "../x",
        "/etc/passwd",
        "a//b",
        "a b",
        "",
        "arn:aws:s3:::bucket/key",
    ] {
        let err = assert_failed(&cli(&["get", bad, "--source", &url], b""), 7, "\u{0}");
        assert!(err.contains("invalid secret id"), "{bad:?}: {err}");
        let put = cli(&["put", bad, "--source", &url], b"value");
        assert_eq!(put.status.code(), Some(7), "{bad:?}: {}", stderr(&put));
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a connection was made: {other:?}"),
    }
}

/// Nothing listening: exit code 6 (retry later), within the deadline given in the URL.
#[test]
fn emulator_down_exits_with_the_transient_code() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "secretsmanager://?region=us-east-1&endpoint_url=http://127.0.0.1:{port}&timeout=3s"
    );
    let out = cli(&["get", "app/x", "--source", &url], b"");
    let err = assert_failed(&out, 6, "\u{0}");
    assert!(err.contains("transient"), "{err}");
}

/// `put` seals into S3 and into a directory with `--kms-key`; `get --field` reads them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_through_s3_kms_and_file_kms() {
    let endpoint = common::emulator_endpoint();
    let key = common::kms_key().await;
    let alias = common::kms_alias(&key).await;
    let bucket = common::bucket(false).await;
    let root = tempfile::tempdir().unwrap();
    let value = br#"{"access_key":"AKIAENVELOPE","secret_key":"envelope/secret"}"#;
    let sources = [
        format!("s3+kms://{bucket}/cli?region=us-east-1&endpoint_url={endpoint}"),
        format!("s3+sse-kms://{bucket}/sse?region=us-east-1&endpoint_url={endpoint}"),
        format!(
            "file+kms://{}?region=us-east-1&endpoint_url={endpoint}",
            root.path().display()
        ),
    ];
    for url in &sources {
        let id = unique_id("cli-envelope");
        let put = cli(
            &["put", id.as_str(), "--source", url, "--kms-key", &alias],
            value,
        );
        assert!(put.status.success(), "{url}: {}", stderr(&put));
        let get = cli(
            &[
                "get",
                id.as_str(),
                "--field",
                "secret_key",
                "--source",
                url,
                "--kms-key",
                &key,
            ],
            b"",
        );
        assert!(get.status.success(), "{url}: {}", stderr(&get));
        assert_eq!(get.stdout, b"envelope/secret", "{url}");
    }

    // Without a key, envelopes can't be read: a config error naming the fix.
    let id = unique_id("cli-nokey");
    let err = assert_failed(
        &cli(&["get", id.as_str(), "--source", &sources[0]], b""),
        7,
        "AKIAENVELOPE",
    );
    assert!(err.contains("needs a KMS key"), "{err}");

    // A tampered file: exit 5, and no value on stderr.
    let id = unique_id("cli-tamper");
    assert!(
        cli(
            &[
                "put",
                id.as_str(),
                "--source",
                &sources[2],
                "--kms-key",
                &key
            ],
            value
        )
        .status
        .success()
    );
    let path = root.path().join(id.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let err = assert_failed(
        &cli(
            &[
                "get",
                id.as_str(),
                "--source",
                &sources[2],
                "--kms-key",
                &key,
            ],
            b"",
        ),
        5,
        "AKIAENVELOPE",
    );
    assert!(err.contains("could not be decrypted"), "{err}");
}

#[tokio::test]
async fn ssm_put_and_get_with_versions_labels_and_the_advanced_tier_notice() {
    let endpoint = common::emulator_endpoint();
    let key = common::kms_key().await;
    let url = format!("ssm://?region=us-east-1&endpoint_url={endpoint}");
    let id = unique_id("cli-ssm");
    let put = cli(
        &["put", id.as_str(), "--source", &url, "--kms-key", &key],
        br#"{"access_key":"AKIASSM","secret_key":"ssm/secret"}"#,
    );
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(String::from_utf8_lossy(&put.stdout), "1\n");
    assert!(stderr(&put).contains("created"), "{}", stderr(&put));
    let put = cli(&["put", id.as_str(), "--source", &url], b"second");
    assert_eq!(String::from_utf8_lossy(&put.stdout), "2\n");

    let get = |extra: &[&str]| {
        let mut args = vec!["get", id.as_str(), "--source", url.as_str()];
        args.extend_from_slice(extra);
        cli(&args, b"")
    };
    assert_eq!(get(&[]).stdout, b"second");
    assert_eq!(
        get(&["--version-id", "1", "--field", "secret_key"]).stdout,
        b"ssm/secret"
    );
    assert_eq!(
        get(&["--version-stage", "AWSPREVIOUS", "--field", "access_key"]).stdout,
        b"AKIASSM"
    );
    assert_failed(&get(&["--version-id", "7"]), 3, "second");

    // Over 4 KB: stored in the advanced tier, and the operator is told.
    let large = "x".repeat(5000);
    let put = cli(&["put", id.as_str(), "--source", &url], large.as_bytes());
    assert!(put.status.success(), "{}", stderr(&put));
    assert!(stderr(&put).contains("advanced tier"), "{}", stderr(&put));
    assert!(!stderr(&put).contains(&large));
    // Over 8 KB: refused before any call, exit 8.
    let too_large = "y".repeat(8193);
    let refused = cli(
        &["put", id.as_str(), "--source", &url],
        too_large.as_bytes(),
    );
    assert_failed(&refused, 8, &too_large);
    // A name Parameter Store can't take: exit 7, no call.
    assert_failed(&cli(&["get", "a+b", "--source", &url], b""), 7, "a+b-value");
}

#[tokio::test]
async fn seal_then_the_function_reads_its_variable_through_env_kms() {
    let endpoint = common::emulator_endpoint();
    let key = common::kms_key().await;
    let url = format!("env+kms://?region=us-east-1&endpoint_url={endpoint}&prefix=APP_");
    let creds = r#"{"access_key":"AKIASEALED","secret_key":"sealed/secret"}"#;
    let sealed = cli(
        &[
            "seal",
            "prod/api",
            "--source",
            &url,
            "--kms-key",
            &key,
            "--function",
            "orders-fn",
        ],
        creds.as_bytes(),
    );
    assert!(sealed.status.success(), "{}", stderr(&sealed));
    let ciphertext = String::from_utf8(sealed.stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        stderr(&sealed).contains("set APP_PROD_API"),
        "{}",
        stderr(&sealed)
    );
    assert!(!ciphertext.contains("AKIASEALED"));

    // The function's configuration: the variable, and the name Lambda sets.
    let as_function = |function: &str, field: &str| {
        cli_with_env(
            &["get", "prod/api", "--field", field, "--source", &url],
            b"",
            &[
                ("APP_PROD_API", ciphertext.as_str()),
                ("AWS_LAMBDA_FUNCTION_NAME", function),
            ],
        )
    };
    let read = as_function("orders-fn", "secret_key");
    assert!(read.status.success(), "{}", stderr(&read));
    assert_eq!(read.stdout, b"sealed/secret");
    // Another function can't open it: exit 5, the value nowhere.
    assert_failed(&as_function("other-fn", "secret_key"), 5, "sealed/secret");

    // `put` can't set another process's variables: exit 9, saying what to do instead.
    let put = cli(&["put", "prod/api", "--source", &url], b"v");
    let err = assert_failed(&put, 9, "LEAK");
    assert!(err.contains("secret-loader seal"), "{err}");
    // `seal` only makes env+kms values.
    let wrong = cli(
        &["seal", "x", "--source", &common::secretsmanager_url()],
        b"v",
    );
    assert_failed(&wrong, 7, "LEAK");
    // Without a key there is nothing to seal with.
    assert_failed(&cli(&["seal", "x", "--source", &url], b"v"), 7, "LEAK");
}

#[test]
fn env_reads_a_plaintext_variable_without_any_aws_configuration() {
    let out = Command::new(env!("CARGO_BIN_EXE_secret-loader"))
        .args(["get", "api_key", "--source", "env://"])
        .env_clear()
        .env("API_KEY", "plain-baseline")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"plain-baseline");
    let missing = Command::new(env!("CARGO_BIN_EXE_secret-loader"))
        .args(["get", "other", "--source", "env://"])
        .env_clear()
        .output()
        .unwrap();
    let err = assert_failed(&missing, 3, "plain-baseline");
    assert!(err.contains("OTHER is not set"), "{err}");
}

/// `serve`: the extension's server outside Lambda, one stack from `--source`, answering AWS's
/// route; SIGTERM stops it cleanly.
#[tokio::test]
async fn serve_answers_the_secretsmanager_route_until_sigterm() {
    use std::io::{Read, Write};
    let id = common::secretsmanager_secret("cli-serve", r#"{"access_key":"AKIASERVE"}"#).await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_secret-loader"))
        .args(["serve", "--port", &port.to_string(), "--source"])
        .arg(format!("{}&memory_ttl=1m", secretsmanager_url()))
        .env("AWS_SESSION_TOKEN", "serve-token")
        .env_remove("SECRET_LOADER_EXTENSION_STACKS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let get = |token: &str| -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            stream,
            "GET /secretsmanager/get?secretId={} HTTP/1.1\r\nHost: localhost\r\n\
             X-Aws-Parameters-Secrets-Token: {token}\r\nConnection: close\r\n\r\n",
            id.as_str().replace('/', "%2F")
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    let mut answer = None;
    for _ in 0..200 {
        answer = get("serve-token");
        if answer.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let answer = answer.expect("serve did not listen");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(r#"\"access_key\":\"AKIASERVE\""#),
        "{answer}"
    );
    let refused = get("wrong").unwrap();
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.wait().unwrap();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains("serving on 127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("AKIASERVE"), "{stderr}");
}
