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
    for bad in ["a b", "", "a\\b", "arn:aws:s3:::bucket/key"] {
        let err = assert_failed(&cli(&["get", bad, "--source", &url], b""), 7, "\u{0}");
        assert!(err.contains("invalid secret id"), "{bad:?}: {err}");
        let put = cli(&["put", bad, "--source", &url], b"value");
        assert_eq!(put.status.code(), Some(7), "{bad:?}: {}", stderr(&put));
    }
    // Names Secrets Manager takes but that are no safe path: refused where an id becomes a
    // file, before KMS is asked or the file system touched.
    let root = tempfile::tempdir().unwrap();
    let file = format!(
        "file+kms://{}?region=us-east-1&endpoint_url=http://{}&kms_key_id=\
         arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000001",
        root.path().display(),
        listener.local_addr().unwrap()
    );
    for bad in ["../x", "/etc/passwd", "a//b", "a/"] {
        let err = assert_failed(&cli(&["get", bad, "--source", &file], b""), 7, "\u{0}");
        assert!(err.contains("invalid secret id"), "{bad:?}: {err}");
        let put = cli(&["put", bad, "--source", &file], b"value");
        assert_eq!(put.status.code(), Some(7), "{bad:?}: {}", stderr(&put));
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
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

/// Two principals on one host, one shared `/tmp` cache directory: a process signed in to
/// account 111… and one with an assumed role's credentials in account 222… each hold a
/// secret of the same name. Each reads its own account's value, in plaintext and in
/// encrypted mode, before and after the other has written its entry: the cache identity
/// holds the credentials' principal, not only region, endpoint and profile name.
#[tokio::test]
async fn two_principals_never_read_each_others_tmp_entries() {
    let python = std::env::var("SECRET_LOADER_PYTHON").expect("run with scripts/test");
    let name = unique_id("principals");
    // The second principal: an assumed role in another account, with its own secret and key
    // alias; the first gets the same names under the default test credentials.
    let setup = format!(
        r#"
import boto3, json
def seed(session, value):
    session.client("secretsmanager").create_secret(Name="{name}", SecretString=value)
    kms = session.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/{alias}", TargetKeyId=key)
seed(boto3.Session(), "account-one-value")
role = boto3.client("sts").assume_role(
    RoleArn="arn:aws:iam::222222222222:role/second", RoleSessionName="second-principal"
)["Credentials"]
second = boto3.Session(
    aws_access_key_id=role["AccessKeyId"],
    aws_secret_access_key=role["SecretAccessKey"],
    aws_session_token=role["SessionToken"],
)
seed(second, "account-two-value")
print(json.dumps([role["AccessKeyId"], role["SecretAccessKey"], role["SessionToken"]]))
"#,
        alias = name.as_str().replace('/', "-"),
    );
    let out = Command::new(&python).args(["-c", &setup]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let role: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let second = [
        ("AWS_ACCESS_KEY_ID", role[0].as_str()),
        ("AWS_SECRET_ACCESS_KEY", role[1].as_str()),
        ("AWS_SESSION_TOKEN", role[2].as_str()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let alias = format!("alias/{}", name.as_str().replace('/', "-"));
    for layer in [
        "tmp_plaintext=true".to_owned(),
        format!("tmp_kms_key_id={alias}"),
    ] {
        let url = format!(
            "{}{}tmp_ttl=1h&tmp_dir={}/cache&{layer}",
            secretsmanager_url(),
            if secretsmanager_url().contains('?') {
                "&"
            } else {
                "?"
            },
            dir.path().display()
        );
        let read = |vars: &[(&str, &str)]| {
            let out = cli_with_env(&["get", name.as_str(), "--source", &url], b"", vars);
            assert!(out.status.success(), "{layer}: {}", stderr(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for _ in 0..2 {
            assert_eq!(read(&[]), "account-one-value", "{layer}");
            assert_eq!(read(&second), "account-two-value", "{layer}");
        }
    }
    let entries = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert_eq!(entries, 4, "one entry per principal and mode");
}

/// The endpoint in the cache identity is the one the client really uses: a process whose
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` sends Secrets Manager to another emulator (while
/// `AWS_ENDPOINT_URL` is the same for both) reads that emulator's value, not the entry the
/// first process left in the shared `/tmp` directory.
#[tokio::test]
async fn a_per_service_endpoint_is_part_of_the_cache_identity() {
    let second = common::SecondEmulator::start();
    let id = unique_id("service-endpoint");
    raw_secretsmanager()
        .await
        .create_secret()
        .name(id.as_str())
        .secret_string("first-emulator")
        .send()
        .await
        .unwrap();
    aws_sdk_secretsmanager::Client::new(&second.sdk_config().await)
        .create_secret()
        .name(id.as_str())
        .secret_string("second-emulator")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "secretsmanager://?region=us-east-1&tmp_ttl=1h&tmp_plaintext=true&tmp_dir={}",
        dir.path().display()
    );
    let read = |vars: &[(&str, &str)]| {
        let out = cli_with_env(&["get", id.as_str(), "--source", &url], b"", vars);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let elsewhere = [("AWS_ENDPOINT_URL_SECRETS_MANAGER", second.endpoint())];
    assert_eq!(read(&[]), "first-emulator");
    assert_eq!(read(&elsewhere), "second-emulator");
    assert_eq!(read(&[]), "first-emulator");
}

/// `env+kms://` under a `/tmp` layer: two processes (two functions' configurations) whose
/// variable of the same name holds different ciphertexts each read their own value through
/// one shared cache directory (the entry is named by the variable's content too); and a
/// `/tmp` layer over plaintext `env://` is refused, since it saves nothing and would copy the
/// value to disk.
#[tokio::test]
async fn env_kms_tmp_entries_follow_the_variables_content() {
    let endpoint = common::emulator_endpoint();
    let key = common::kms_key().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "env+kms://?region=us-east-1&endpoint_url={endpoint}&prefix=TMPENV_&tmp_ttl=1h\
         &tmp_plaintext=true&tmp_dir={}",
        dir.path().display()
    );
    let seal = |value: &str| {
        let out = cli(
            &["seal", "app/token", "--source", &url, "--kms-key", &key],
            value.as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (first, second) = (seal("first-function"), seal("second-function"));
    let read = |ciphertext: &str| {
        let out = cli_with_env(
            &["get", "app/token", "--source", &url],
            b"",
            &[("TMPENV_APP_TOKEN", ciphertext)],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    for _ in 0..2 {
        assert_eq!(read(&first), "first-function");
        assert_eq!(read(&second), "second-function");
    }

    let plain = format!(
        "env://?prefix=TMPENV_&tmp_ttl=1h&tmp_plaintext=true&tmp_dir={}",
        dir.path().display()
    );
    let refused = cli_with_env(
        &["get", "app/token", "--source", &plain],
        b"",
        &[("TMPENV_APP_TOKEN", "plain-canary")],
    );
    let err = assert_failed(&refused, 7, "plain-canary");
    assert!(err.contains("saves nothing"), "{err}");
}

/// Two users on one host (root and `nobody`, run through `setpriv`), one `TMPDIR`: whoever
/// comes first, the other's program still reads, because the default cache directory is per
/// user (`$TMPDIR/secret-loader-<uid>`). A `tmp_dir` that belongs to another user, or a
/// `TMPDIR` this user can't write to, turns the layer off with a warning; the read still
/// succeeds. Needs root (as CI runs); elsewhere it
/// says so and checks nothing.
#[tokio::test]
async fn two_users_on_one_host_both_read_whoever_creates_the_cache_first() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a second user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let id = unique_id("two-users");
    raw_secretsmanager()
        .await
        .create_secret()
        .name(id.as_str())
        .secret_string("shared-host-value")
        .send()
        .await
        .unwrap();
    // The binary where `nobody` may run it.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("secret-loader");
    std::fs::copy(env!("CARGO_BIN_EXE_secret-loader"), &bin).unwrap();
    for path in [bin_dir.path(), bin.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |as_nobody: bool, tmpdir: &std::path::Path, extra: &str| {
        let url = format!(
            "{}&tmp_ttl=1h&tmp_plaintext=true{extra}",
            secretsmanager_url()
        );
        let mut command = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = command
            .args(["get", id.as_str(), "--source", &url])
            .env("TMPDIR", tmpdir)
            .env("SECRET_LOADER_LOG", "warn")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("SECRET_LOADER_SOURCE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nobody={as_nobody}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"shared-host-value", "nobody={as_nobody}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for nobody_first in [true, false] {
        let tmpdir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmpdir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        run(nobody_first, tmpdir.path(), "");
        run(!nobody_first, tmpdir.path(), "");
        run(nobody_first, tmpdir.path(), "");
        for (uid, dir) in [(0, "secret-loader-0"), (65534, "secret-loader-65534")] {
            let meta = std::fs::metadata(tmpdir.path().join(dir)).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700), "{dir}");
        }
        // An explicit directory of root's: for nobody the layer is off, the read succeeds.
        let roots = tmpdir.path().join("roots");
        std::fs::create_dir(&roots).unwrap();
        std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o700)).unwrap();
        let warned = run(
            true,
            tmpdir.path(),
            &format!("&tmp_dir={}", roots.display()),
        );
        assert!(warned.contains("tmp cache layer is off"), "{warned}");
    }
    // A TMPDIR this user can't write to (root's, 0755: read-only for nobody): the layer is
    // off, the read succeeds.
    let read_only = tempfile::tempdir().unwrap();
    std::fs::set_permissions(read_only.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let warned = run(true, read_only.path(), "");
    assert!(warned.contains("tmp cache layer is off"), "{warned}");
    assert!(!read_only.path().join("secret-loader-65534").exists());
}
