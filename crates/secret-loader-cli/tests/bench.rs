//! `secret-loader bench`: the driver against the real `bootstrap` behind the Lambda API on
//! loopback (cold forcing, REPORT parsing, error rows), `bench local` end to end on the
//! emulator, and the report rendered from a recorded run (golden files).

use secret_loader::testing as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use secret_loader_harness::LocalLambda;

const FUNCTION: &str = "secret-loader-comparison";

/// The comparison function's binary, built next to `secret-loader` (it belongs to another
/// package, so `cargo test -p secret-loader-cli` alone would not build it).
/// The extension binary, built like `bootstrap` (the `python-extension` peer reads through it).
fn extension() -> PathBuf {
    let path =
        Path::new(env!("CARGO_BIN_EXE_secret-loader")).with_file_name("secret-loader-extension");
    let profile_release = path.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args([
        "build",
        "--quiet",
        "-p",
        "secret-loader-extension",
        "--bin",
        "secret-loader-extension",
    ]);
    if profile_release {
        build.arg("--release");
    }
    assert!(
        build.status().expect("run cargo build").success(),
        "cannot build the extension"
    );
    path
}

fn bootstrap() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_secret-loader")).with_file_name("bootstrap");
    let profile_release = path.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args([
        "build",
        "--quiet",
        "-p",
        "secret-loader-lambda",
        "--bin",
        "bootstrap",
    ]);
    if profile_release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cannot build bootstrap");
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

fn secret_loader(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secret-loader"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SECRET_LOADER_SOURCE")
        .env_remove("SECRET_LOADER_KMS_KEY")
        .output()
        .expect("run secret-loader")
}

/// `secret-loader bench lambda --function FUNCTION ARGS --out OUT`, its Lambda API `service`.
fn bench_lambda(service: &LocalLambda, function: &str, args: &[&str], out: &Path) -> Output {
    let mut all = vec!["bench", "lambda", "--function", function];
    all.extend_from_slice(args);
    all.extend(["--out", out.to_str().unwrap()]);
    secret_loader(&all, &[("AWS_ENDPOINT_URL_LAMBDA", service.endpoint_url())])
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_lambda_forces_cold_starts_and_reads_report_lines() {
    let id = common::secretsmanager_secret("bench", r#"{"api_key":"BENCH-CANARY"}"#).await;
    let url = common::secretsmanager_url();
    let stacks = serde_json::json!({
        "secretsmanager": url,
        "secretsmanager+memory": format!("{url}&memory_ttl=5m"),
        // Builds, then fails every read: nothing listens there.
        "unreachable": format!(
            "secretsmanager://?region=us-east-1&max_attempts=1&endpoint_url=http://127.0.0.1:{}",
            closed_port()
        ),
        // Cannot even be built.
        "broken": "vault://nowhere",
    });
    let environment = BTreeMap::from([
        ("SECRET_LOADER_BENCH_SECRET_ID".to_owned(), id.to_string()),
        ("SECRET_LOADER_BENCH_STACKS".to_owned(), stacks.to_string()),
        ("KEEP_ME".to_owned(), "kept".to_owned()),
    ]);
    let service = LocalLambda::start(&bootstrap(), FUNCTION, environment.clone()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = bench_lambda(
        &service,
        FUNCTION,
        &["--cold", "2", "--warm", "3", "--reads", "2"],
        out.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let raw = read_json(&out.path().join("raw.json"));
    let invocations = raw["invocations"].as_array().unwrap();
    // 2 cold starts, the 3 warm invocations spread over them: cold, warm, warm, cold, warm.
    let forced: Vec<bool> = invocations
        .iter()
        .map(|i| i["forced_cold"].as_bool().unwrap())
        .collect();
    assert_eq!(forced, [true, false, false, true, false]);
    for (invocation, forced) in invocations.iter().zip(forced) {
        // The function itself says whether it was cold: forcing worked.
        assert_eq!(invocation["response"]["cold"], forced, "{invocation}");
        // Init Duration is on the REPORT line of cold starts only.
        assert_eq!(
            invocation["report"]["init_ms"].is_f64(),
            forced,
            "{invocation}"
        );
        assert!(invocation["report"]["duration_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(invocation["report"]["memory_mb"], 512);
    }
    // A Lambda API on loopback, the services on the emulator: labelled as such.
    assert_eq!(raw["target"]["kind"], "emulator-loopback");
    assert_eq!(raw["target"]["function"], FUNCTION);

    // The function's environment is as it was: the nonce is gone, the rest kept.
    let sdk = common::sdk_config().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .endpoint_url(service.endpoint_url())
            .build(),
    );
    let configuration = lambda
        .get_function_configuration()
        .function_name(FUNCTION)
        .send()
        .await
        .unwrap();
    let variables = configuration.environment().unwrap().variables().unwrap();
    assert_eq!(variables.len(), environment.len(), "{variables:?}");
    assert_eq!(variables["KEEP_ME"], "kept");

    // The failing stack is an error row with its kind; the others have numbers.
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let row = |name: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}: {report}"))
            .to_owned()
    };
    assert!(
        row("broken").contains("**error** | InvalidConfig"),
        "{report}"
    );
    assert!(
        row("unreachable").contains("**error** | Transient"),
        "{report}"
    );
    assert!(
        row("secretsmanager").contains("secretsmanager:GetSecretValue 1 |"),
        "{report}"
    );
    assert!(
        row("secretsmanager+memory").contains("| 0 |"),
        "calls per warm read behind the memory cache: {report}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("| broken |"));
    let svg = std::fs::read_to_string(out.path().join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("secretsmanager+memory"));
    for text in [&report, &svg, &raw.to_string(), &stderr.to_string()] {
        assert!(!text.contains("BENCH-CANARY"));
    }
    service.stop();
    // How tests/fixtures/bench/with-errors/raw.json was recorded.
    if let Some(dir) = std::env::var_os("SECRET_LOADER_RECORD_FIXTURE") {
        std::fs::copy(
            out.path().join("raw.json"),
            Path::new(&dir).join("raw.json"),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_lambda_names_a_missing_function() {
    let service = LocalLambda::start(&bootstrap(), FUNCTION, BTreeMap::new()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = bench_lambda(&service, "no-such-function", &[], out.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("lambda: no-such-function: "), "{stderr}");
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");
    assert!(!out.path().join("raw.json").exists());
}

/// An environment the caller can't read (`Environment.Error`) is never rewritten: forcing
/// cold starts would restore it from nothing and wipe it.
#[test]
fn bench_lambda_refuses_to_touch_an_environment_it_cannot_read() {
    let environment = BTreeMap::from([("KEEP_ME".to_owned(), "yes".to_owned())]);
    let service = LocalLambda::start(&bootstrap(), FUNCTION, environment.clone()).unwrap();
    service.hide_environment("KMSAccessDeniedException", "not allowed to decrypt");
    let out = tempfile::tempdir().unwrap();
    let output = bench_lambda(
        &service,
        FUNCTION,
        &["--cold", "1", "--warm", "0"],
        out.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "access denied: {stderr}");
    assert!(
        stderr.contains("cannot read the function's environment"),
        "{stderr}"
    );
    assert!(stderr.contains("KMSAccessDeniedException"), "{stderr}");
    assert_eq!(service.environment(), environment, "left exactly as it was");
}

/// A function that cannot start: every invocation is a recorded `Runtime.ExitError`, the
/// report still gets written, and the command fails.
#[test]
fn bench_lambda_reports_a_function_that_cannot_start() {
    // No SECRET_LOADER_BENCH_* variables: the function exits during init.
    let service = LocalLambda::start(&bootstrap(), FUNCTION, BTreeMap::new()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = bench_lambda(
        &service,
        FUNCTION,
        &["--cold", "1", "--warm", "1"],
        out.path(),
    );
    service.stop();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("every invocation failed (2)"), "{stderr}");
    assert!(stderr.contains("Runtime.ExitError"), "{stderr}");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(report.contains("## Failed invocations"), "{report}");
    assert!(report.contains("got 0 cold and 0 warm answers"), "{report}");
}

#[test]
fn bench_local_runs_every_backend_and_cache_end_to_end() {
    common::emulator_endpoint();
    let out = tempfile::tempdir().unwrap();
    // Where this machine lets a process set a CPU quota (root, a cgroup CPU controller), the
    // function's cold starts also run under 512 MB's share; elsewhere the run says why not.
    let quota = secret_loader_harness::CpuQuota::new(1.0);
    if let Err(why) = &quota {
        eprintln!("no run under a CPU quota here: {why}");
    }
    let limited = quota.is_ok();
    drop(quota);
    let limit: &[&str] = if limited {
        &["--cpu-limit", "512"]
    } else {
        &[]
    };
    let output = secret_loader(
        &[
            &[
                "bench",
                "local",
                "--cold",
                "1",
                "--warm",
                "1",
                "--reads",
                "2",
                "--bootstrap",
                bootstrap().to_str().unwrap(),
                "--secret-id",
                common::unique_id("bench-local").as_str(),
                "--out",
                out.path().to_str().unwrap(),
                "--peers",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../functions/python")
                    .to_str()
                    .unwrap(),
                "--python",
                &std::env::var("SECRET_LOADER_PYTHON")
                    .expect("SECRET_LOADER_PYTHON: run the tests with scripts/test"),
                "--extension",
                extension().to_str().unwrap(),
                "--agent",
                &std::env::var("SECRET_LOADER_AGENT")
                    .expect("SECRET_LOADER_AGENT: run the tests with scripts/test"),
                "--agent-extension",
                &std::env::var("SECRET_LOADER_AGENT_EXTENSION")
                    .expect("SECRET_LOADER_AGENT_EXTENSION: run the tests with scripts/test"),
            ],
            limit,
        ]
        .concat(),
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let raw = read_json(&out.path().join("raw.json"));
    assert_eq!(raw["target"]["kind"], "emulator-loopback");
    // AWS's shape of network by default: every function went over TLS to an endpoint per
    // service, trusting the run's authority (no failed handshake anywhere), the peers too.
    let network = &raw["network"];
    assert_eq!(network["kind"], "tls", "{network}");
    assert_eq!(network["rtt_ms"], 1.0, "{network}");
    let functions = network["functions"].as_object().unwrap();
    for (function, services) in functions {
        for (service, seen) in services.as_object().unwrap() {
            assert_eq!(seen["failed_handshakes"], 0, "{function} {service}: {seen}");
            assert!(
                seen["full_handshakes"].as_u64().unwrap()
                    + seen["resumed_handshakes"].as_u64().unwrap()
                    >= 1,
                "{function} {service}: {seen}"
            );
        }
    }
    let rust = &functions["secret-loader-comparison"];
    for service in ["secretsmanager", "ssm", "kms", "s3"] {
        assert!(
            rust[service]["requests"].as_u64().unwrap() >= 1,
            "{service}: {rust}"
        );
    }
    for peer in [
        "python-boto3-per-read",
        "python-powertools",
        "python-extension",
        "python-agent",
        "python-secret-loader",
    ] {
        assert!(
            functions[peer]["secretsmanager"]["requests"]
                .as_u64()
                .unwrap()
                >= 1,
            "{peer} did not reach Secrets Manager over TLS: {network}"
        );
    }
    // AWS's agent checks its credentials with STS when it starts.
    assert!(
        functions["python-agent"]["sts"]["requests"]
            .as_u64()
            .unwrap()
            >= 1,
        "{network}"
    );
    let invocations = raw["invocations"].as_array().unwrap();
    assert_eq!(invocations.len(), 2);
    let stacks = invocations[0]["response"]["stacks"].as_array().unwrap();
    let mut names: Vec<&str> = stacks.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut want = Vec::new();
    for backend in [
        "env",
        "env+kms",
        "file+kms",
        "s3+kms",
        "s3+sse-kms",
        "secretsmanager",
        "ssm",
    ] {
        for cache in ["", "+memory", "+tmp"] {
            // A variable is already in the process: no /tmp layer over it.
            if !(backend.starts_with("env") && cache == "+tmp") {
                want.push(format!("{backend}{cache}"));
            }
        }
    }
    names.sort_unstable();
    want.sort_unstable();
    assert_eq!(names, want);
    // New connections, counted by the function: a cold s3+kms opens two (S3, KMS), a cold
    // secretsmanager one, env none; warm reads reuse them.
    let cold_connections = |name: &str| {
        let stack = stacks.iter().find(|s| s["name"] == name).unwrap();
        stack["init_connections"].as_u64().unwrap()
            + stack["first_read_connections"].as_u64().unwrap()
    };
    assert_eq!(cold_connections("s3+kms"), 2);
    assert_eq!(cold_connections("secretsmanager"), 1);
    assert_eq!(cold_connections("env"), 0);
    let warm_stacks = invocations[1]["response"]["stacks"].as_array().unwrap();
    for stack in warm_stacks {
        assert_eq!(stack["warm_connections"], 0, "{stack}");
        // A memory hit makes no exchange at all.
        if stack["name"].as_str().unwrap().ends_with("+memory") {
            assert_eq!(stack["warm_calls"], serde_json::json!({}), "{stack}");
        }
    }
    for stack in stacks {
        assert!(stack["error"].is_null(), "{stack}");
        assert!(stack["first_read_ms"].is_f64(), "{stack}");
        assert_eq!(stack["warm"]["count"], 2, "{stack}");
        // CPU time beside wall time, for building, the first read and the warm reads.
        for cpu in ["init_cpu_ms", "first_read_cpu_ms", "warm_cpu_ms"] {
            assert!(
                stack[cpu].as_f64().is_some_and(|ms| ms >= 0.0),
                "{cpu}: {stack}"
            );
        }
    }
    // The process's CPU time to the end of its INIT: more than nothing, less than the time
    // INIT took on every core of this machine.
    let init_cpu = invocations[0]["response"]["init_cpu_ms"].as_f64().unwrap();
    let init_wall = invocations[0]["report"]["init_ms"].as_f64().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(
        init_cpu > 0.0 && init_cpu <= init_wall * cores,
        "{init_cpu} ms of CPU in {init_wall} ms"
    );
    assert!(invocations[1]["response"]["init_cpu_ms"].is_null());
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("**Emulator on loopback, not AWS.**"),
        "{report}"
    );
    assert!(!report.contains("**error**"), "{report}");
    assert!(report.contains("## The network model"), "{report}");
    assert!(report.contains("round trip of **1 ms**"), "{report}");
    assert!(report.contains("| s3+kms | 2 | 0.00 |"), "{report}");
    // The fleet section: Parameter Store's 40/s get quota comes first for bare ssm reads,
    // the plaintext baseline makes no call at all.
    assert!(
        report.contains("## What a fleet hits first, and what it costs (a model)"),
        "{report}"
    );
    let fleet_row = |name: &str| {
        let section = report.split("## What a fleet hits first").nth(1).unwrap();
        section
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no fleet row for {name}: {report}"))
            .to_owned()
    };
    assert!(
        fleet_row("ssm").contains("40 (Parameter Store get APIs (standard throughput))"),
        "{report}"
    );
    assert!(fleet_row("env").contains("| 0 | 0 |"), "{report}");
    assert!(fleet_row("env+kms").contains("kms:Decrypt 1"), "{report}");
    // The rotation drill: every stack read generation 1 before; after the new value was made
    // current, a bare read over a store sees it at once, a cache keeps the old one while its
    // entry is younger than the TTL and sees the new one after, and a variable never changes
    // in a running environment.
    let drill = &raw["rotation"];
    let ttl_ms = drill["ttl_ms"].as_f64().unwrap();
    let after = drill["after"].as_array().unwrap();
    assert!(!after.is_empty(), "{drill}");
    let generation = |o: &serde_json::Value, stack: &str| o["generations"][stack].as_u64();
    for (stack, _) in drill["stacks"].as_object().unwrap() {
        assert_eq!(drill["before"][stack].as_u64(), Some(1), "{stack}: {drill}");
    }
    for stack in ["secretsmanager", "ssm", "s3+kms", "s3+sse-kms", "file+kms"] {
        assert_eq!(generation(&after[0], stack), Some(2), "{stack}: {drill}");
    }
    for stack in ["env", "env+kms"] {
        assert!(
            after.iter().all(|o| generation(o, stack) == Some(1)),
            "{stack}: {drill}"
        );
    }
    let cached = [
        "secretsmanager+memory",
        "secretsmanager+memory+check",
        "secretsmanager+tmp",
        "ssm+memory",
        "s3+kms+memory",
        "file+kms+tmp",
    ];
    let young =
        drill["first_read_ms_before"].as_f64().unwrap() + after[0]["at_ms"].as_f64().unwrap();
    for stack in cached {
        if young < ttl_ms {
            assert_eq!(generation(&after[0], stack), Some(1), "{stack}: {drill}");
        }
        assert!(
            after.iter().any(|o| generation(o, stack) == Some(2)),
            "{stack} never read the new value: {drill}"
        );
        // Its entry was filled before the rotation: once the TTL has passed since, it must
        // have expired, and every later read is the new value.
        for o in after
            .iter()
            .filter(|o| o["at_ms"].as_f64().unwrap() > ttl_ms)
        {
            assert_eq!(generation(o, stack), Some(2), "{stack}: {drill}");
        }
    }
    assert!(report.contains("## Rotation drill"), "{report}");
    // The emulator's Region is in the bundled tables: nothing said of it.
    assert!(
        report.contains("request quotas of **us-east-1**"),
        "{report}"
    );
    assert!(!report.contains("does not know us-east-1"), "{report}");
    assert!(!report.contains("prices are not us-east-1's"), "{report}");

    // The Python peers ran the same way, each stack read without an error, beside its Rust
    // stack.
    let peers = raw["peers"].as_array().unwrap();
    let functions: Vec<&str> = peers
        .iter()
        .map(|p| p["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        functions,
        [
            "python-boto3-per-read",
            "python-boto3-module",
            "python-powertools",
            "python-extension",
            "python-agent",
            "python-secret-loader"
        ]
    );
    for peer in peers {
        let invocations = peer["invocations"].as_array().unwrap();
        assert_eq!(invocations.len(), 2, "{peer}");
        assert_eq!(invocations[0]["response"]["cold"], true, "{peer}");
        for stack in invocations[0]["response"]["stacks"].as_array().unwrap() {
            assert!(stack["error"].is_null(), "{stack}");
            assert!(stack["first_read_ms"].is_f64(), "{stack}");
            assert!(stack["compare_with"].is_string(), "{stack}");
        }
        assert!(invocations[0]["report"]["init_ms"].is_f64(), "{peer}");
        // The interpreter's CPU time to the end of its INIT, and each read's.
        assert!(
            invocations[0]["response"]["init_cpu_ms"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{peer}"
        );
        for stack in invocations[1]["response"]["stacks"].as_array().unwrap() {
            assert!(stack["warm_cpu_ms"].is_f64(), "{stack}");
        }
    }
    // The CPU section models every function's cold starts at Lambda's shares.
    let cpu = report
        .split("## CPU time, and Lambda's CPU share (model)")
        .nth(1)
        .unwrap_or_else(|| panic!("no CPU section: {report}"));
    for function in [
        "secret-loader-comparison",
        "python-boto3-module",
        "python-agent",
    ] {
        assert!(
            cpu.lines()
                .any(|l| l.starts_with(&format!("| {function} |"))),
            "no process init row for {function}: {cpu}"
        );
    }
    for stack in ["secretsmanager", "s3+kms", "python-boto3-module-client"] {
        let row = cpu
            .lines()
            .find(|l| l.starts_with(&format!("| {stack} |")))
            .unwrap_or_else(|| panic!("no modelled row for {stack}: {cpu}"));
        assert!(!row.contains('–'), "{row}");
    }
    if limited {
        let run = &raw["cpu_limited"];
        assert_eq!(run["memory_mb"], 512, "{run}");
        let cold = &run["invocations"][0]["response"];
        assert_eq!(cold["cold"], true, "{run}");
        for stack in cold["stacks"].as_array().unwrap() {
            assert!(stack["error"].is_null(), "{stack}");
        }
        let section = cpu
            .split("### The model against a real quota")
            .nth(1)
            .unwrap();
        assert!(
            section.lines().any(|l| l.starts_with("| secretsmanager |")),
            "{section}"
        );
    } else {
        assert!(raw["cpu_limited"].is_null());
    }
    let boto3 = &peers[0]["invocations"][1]["response"]["stacks"][0];
    assert_eq!(
        boto3["warm_calls"]["secretsmanager:GetSecretValue"], 2,
        "a client per read, one call per read: {boto3}"
    );
    // The package, in process: each backend bare and behind the memory cache, its calls
    // counted by the package; a bare read calls, a memory hit does not.
    let package = peers[5]["invocations"][1]["response"]["stacks"]
        .as_array()
        .unwrap();
    let by_name = |name: &str| {
        package
            .iter()
            .find(|s| s["name"] == format!("python-secret-loader-{name}"))
            .unwrap_or_else(|| panic!("no package stack {name}: {package:?}"))
    };
    for backend in [
        "secretsmanager",
        "ssm",
        "s3+kms",
        "s3+sse-kms",
        "file+kms",
        "env+kms",
        "env",
    ] {
        let memory = by_name(&format!("{backend}+memory"));
        assert_eq!(
            memory["compare_with"],
            format!("{backend}+memory"),
            "{memory}"
        );
        assert_eq!(memory["warm_calls"], serde_json::json!({}), "{memory}");
        assert!(by_name(backend)["warm"]["count"].as_u64().unwrap() >= 1);
    }
    assert_eq!(
        by_name("secretsmanager")["warm_calls"]["secretsmanager:GetSecretValue"],
        2,
        "a bare read is one call: {package:?}"
    );
    // Powertools' call with the import changed: its memory cache, no call when warm.
    let get_secret = by_name("get_secret");
    assert_eq!(get_secret["compare_with"], "secretsmanager+memory");
    assert_eq!(
        get_secret["warm_calls"],
        serde_json::json!({}),
        "{get_secret}"
    );
    assert!(
        get_secret["warm"]["count"].as_u64().unwrap() >= 1,
        "{get_secret}"
    );
    assert_eq!(
        by_name("env")["warm_calls"],
        serde_json::json!({}),
        "{package:?}"
    );
    let section = report
        .split("## Beside what Python functions use today")
        .nth(1)
        .unwrap();
    for stack in [
        "python-boto3-client-per-read",
        "python-boto3-module-client",
        "python-powertools-secret",
        "python-powertools-parameter",
        "python-extension-secretsmanager",
        "python-extension-ssm",
        "python-extension-s3+kms",
        "python-agent-secretsmanager",
        "python-secret-loader-secretsmanager",
        "python-secret-loader-secretsmanager+memory",
        "python-secret-loader-env+kms+memory",
    ] {
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| {stack} |")))
            .unwrap_or_else(|| panic!("no peer row for {stack}: {section}"));
        assert!(!row.contains("**error**"), "{row}");
    }
}

/// `secret-loader bench report RAW --out OUT`.
fn bench_report(raw: &str, out: &str) -> std::process::Output {
    secret_loader(&["bench", "report", raw, "--out", out], &[])
}

/// The report of recorded runs, byte for byte: `bench local` on the emulator (every backend
/// and cache) and `bench lambda` with failing stacks. After an intended change to the report,
/// regenerate with `SECRET_LOADER_UPDATE_GOLDEN=1` and review the diff.
#[test]
fn the_reports_of_recorded_runs_match_the_golden_files() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench");
    for run in ["local-emulator", "with-errors"] {
        let fixture = fixtures.join(run);
        let out = tempfile::tempdir().unwrap();
        let output = bench_report(
            fixture.join("raw.json").to_str().unwrap(),
            out.path().to_str().unwrap(),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for name in [
            "report.md",
            "report.svg",
            "monthly-cost.svg",
            "cold-starts.svg",
        ] {
            // cold-starts.svg only where the run has peers.
            let got = std::fs::read_to_string(out.path().join(name)).ok();
            let golden = fixture.join(name);
            if std::env::var_os("SECRET_LOADER_UPDATE_GOLDEN").is_some() {
                match &got {
                    Some(text) => std::fs::write(&golden, text).unwrap(),
                    None => drop(std::fs::remove_file(&golden)),
                }
            }
            let want = std::fs::read_to_string(&golden).ok();
            assert_eq!(got, want, "{name} differs from {}", golden.display());
        }
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            std::fs::read_to_string(fixture.join("report.md")).unwrap()
        );
    }
}

#[test]
fn bench_report_refuses_what_is_not_a_recorded_run() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.json");
    std::fs::write(&raw, r#"{"target": 1}"#).unwrap();
    let output = bench_report(raw.to_str().unwrap(), dir.path().to_str().unwrap());
    assert_eq!(output.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a recorded run"));
}

/// The charts of the recorded local run, read as SVG: the latency chart's legend sits under
/// the axis, not on the title; every Python peer is beside its Rust stack with the ratio of
/// their cold starts; every stack's month has its total.
#[test]
fn the_charts_parse_and_show_what_they_say() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench/local-emulator");
    let out = tempfile::tempdir().unwrap();
    let output = bench_report(
        fixture.join("raw.json").to_str().unwrap(),
        out.path().to_str().unwrap(),
    );
    assert!(output.status.success(), "{output:?}");
    let texts = |name: &str| -> Vec<(String, f64)> {
        let svg = std::fs::read_to_string(out.path().join(name)).unwrap();
        let document = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(document.root_element().tag_name().name(), "svg");
        document
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| {
                (
                    n.text().unwrap_or_default().trim().to_owned(),
                    n.attribute("y").and_then(|y| y.parse().ok()).unwrap_or(0.0),
                )
            })
            .collect()
    };
    let y_of = |texts: &[(String, f64)], text: &str| {
        texts
            .iter()
            .find(|(t, _)| t == text)
            .unwrap_or_else(|| panic!("no `{text}` in {texts:?}"))
            .1
    };
    let latency = texts("report.svg");
    let axis = y_of(&latency, "ms (log scale)");
    assert!(
        y_of(&latency, "cold: init + first read") > axis,
        "{latency:?}"
    );
    assert!(y_of(&latency, "warm read") > axis, "{latency:?}");
    assert!(latency.iter().any(|(t, _)| t == "secretsmanager+memory"));
    let raw = read_json(&fixture.join("raw.json"));
    let peers: Vec<String> = raw["peers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["invocations"][0]["response"]["stacks"]
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|s| {
            format!(
                "{} / {}",
                s["name"].as_str().unwrap().trim_start_matches("python-"),
                s["compare_with"].as_str().unwrap()
            )
        })
        .collect();
    assert!(peers.len() >= 9, "{peers:?}");
    let cold = texts("cold-starts.svg");
    for peer in &peers {
        assert!(cold.iter().any(|(t, _)| t == peer), "{peer}: {cold:?}");
    }
    assert_eq!(
        cold.iter().filter(|(t, _)| t.ends_with('×')).count(),
        peers.len(),
        "a ratio per peer: {cold:?}"
    );
    let month = texts("monthly-cost.svg");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for stack in ["secretsmanager", "ssm+memory", "s3+kms"] {
        assert!(month.iter().any(|(t, _)| t == stack), "{stack}: {month:?}");
        // The chart's total is the report's, to the cent.
        let row = report
            .split("### A month of it")
            .nth(1)
            .unwrap()
            .lines()
            .find(|l| l.starts_with(&format!("| {stack} |")))
            .unwrap();
        let total: f64 = row
            .split("**$")
            .nth(1)
            .unwrap()
            .split("**")
            .next()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap();
        let charted = month
            .iter()
            .filter_map(|(t, _)| t.strip_prefix('$')?.parse::<f64>().ok())
            .any(|usd| (usd - total).abs() <= 0.5 + total * 1e-3);
        assert!(charted, "{stack} ${total}: {month:?}");
    }
}

/// A recorded run in a Region the bundled tables don't hold for: the report says so where the
/// model starts, and names the Region whose figures it has, instead of passing them off as
/// the run's.
#[test]
fn a_run_in_a_region_the_tables_lack_says_so() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bench/local-emulator/raw.json");
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    for (region, quotas_known) in [("cn-north-1", false), ("eu-central-1", true)] {
        raw["target"]["region"] = serde_json::json!(region);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.json");
        std::fs::write(&path, raw.to_string()).unwrap();
        let output = bench_report(path.to_str().unwrap(), dir.path().to_str().unwrap());
        assert!(output.status.success(), "{output:?}");
        let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(
            report.contains(&format!("request quotas of **{region}**")),
            "{report}"
        );
        assert!(
            report.contains(&format!(
                "**The prices are not {region}'s** (they hold for us-east-1)"
            )),
            "{report}"
        );
        assert_eq!(
            report.contains(&format!("**The quota table does not know {region}**")),
            !quotas_known,
            "{report}"
        );
        if quotas_known {
            // eu-central-1's own KMS quota, not us-east-1's.
            assert!(
                report.contains("| KMS cryptographic operations (symmetric) | 20,000/s |"),
                "{report}"
            );
        }
    }
}
