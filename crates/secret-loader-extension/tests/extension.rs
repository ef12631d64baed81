//! The extension's server in process: AWS's routes against the emulator, the checks that
//! refuse before any backend call, the status of each failure, and single-flight under load
//! (a fake Secrets Manager endpoint on loopback counts the calls).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, TOKEN, encode, get, get_secret_value_body, settings, stacks};
use secret_loader::testing::{self as library, FakeHttp, write_response};
use secret_loader::{SecretStore, SecretValue};
use secret_loader_extension::settings::{MAX_CLIENTS_ENV, SECRETS_MANAGER_TIMEOUT_ENV, STACKS_ENV};
use secret_loader_extension::{Running, TOKEN_HEADER};

const CREDS: &str = r#"{"access_key":"AKIAEXTENSION","secret_key":"extension/secret"}"#;

async fn start(vars: &[(&str, &str)]) -> Running {
    secret_loader_extension::start(&settings(vars), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// A fake Secrets Manager answering `GetSecretValue` with `status` after `delay`.
fn fake_secretsmanager(status: u16, delay: Duration) -> FakeHttp {
    FakeHttp::start(move |request, stream| {
        std::thread::sleep(delay);
        let name = serde_json::from_slice::<serde_json::Value>(&request.body)
            .ok()
            .and_then(|v| v["SecretId"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let body = if status == 200 {
            get_secret_value_body(&name, CREDS)
        } else {
            r#"{"__type":"InternalServiceError","Message":"down"}"#.to_owned()
        };
        write_response(
            stream,
            status,
            &[("Content-Type", "application/x-amz-json-1.1")],
            body.as_bytes(),
        );
    })
}

fn fake_stack(fake: &FakeHttp) -> String {
    stacks(&[(
        "secretsmanager",
        &format!(
            "secretsmanager://?region=us-east-1&endpoint_url={}&max_attempts=1",
            fake.endpoint()
        ),
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_routes_answer_in_the_services_shapes() {
    let id = library::unique_id("ext");
    let sm = library::secretsmanager().await;
    sm.put(&id, &SecretValue::text(CREDS)).await.unwrap();
    let ssm = library::ssm().await;
    ssm.put(&id, &SecretValue::text("parameter-value"))
        .await
        .unwrap();
    // Nothing configured: AWS's two stacks, with AWS's default caches.
    let running = start(&[]).await;
    let address = running.address();

    let answer = get(
        address,
        &format!("/secretsmanager/get?secretId={}", encode(id.as_str())),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["SecretString"], CREDS);
    assert_eq!(body["Name"], id.as_str());
    assert!(
        body["ARN"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:")
    );
    assert_eq!(body["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    // Outside Lambda the agent's shape: epoch seconds as a string.
    let created = body["CreatedDate"].as_str().expect("a string");
    assert!(created.parse::<f64>().is_ok_and(|s| s > 1.6e9), "{body}");
    // The agent's route, the id percent-encoded in the path.
    let v1 = get(address, &format!("/v1/{}", encode(id.as_str()))).await;
    assert_eq!(v1.json()["SecretString"], CREDS);

    // Cached for SECRETS_MANAGER_TTL: a new version is not seen until refreshNow.
    sm.put(&id, &SecretValue::text("second")).await.unwrap();
    let path = format!("/secretsmanager/get?secretId={}", encode(id.as_str()));
    assert_eq!(get(address, &path).await.json()["SecretString"], CREDS);
    let refreshed = get(address, &format!("{path}&refreshNow=true")).await;
    assert_eq!(refreshed.json()["SecretString"], "second");
    assert_eq!(get(address, &path).await.json()["SecretString"], "second");
    let previous = get(address, &format!("{path}&versionStage=AWSPREVIOUS")).await;
    assert_eq!(previous.json()["SecretString"], CREDS);

    // Parameter Store, by its name.
    let name = format!("/{id}");
    let parameter = get(
        address,
        &format!(
            "/systemsmanager/parameters/get?name={}&withDecryption=true",
            encode(&name)
        ),
    )
    .await;
    assert_eq!(parameter.status, 200, "{}", parameter.body);
    let body = parameter.json();
    assert_eq!(body["Parameter"]["Value"], "parameter-value");
    assert_eq!(body["Parameter"]["Name"], name);
    assert_eq!(body["Parameter"]["Type"], "SecureString");
    assert_eq!(body["Parameter"]["Version"], 1);
    assert_eq!(body["ResultMetadata"], serde_json::json!({}));
    let by_version = get(
        address,
        &format!(
            "/systemsmanager/parameters/get?name={}&version=1&withDecryption=true",
            encode(&name)
        ),
    )
    .await;
    assert_eq!(by_version.json()["Parameter"]["Selector"], ":1");
    // A SecureString without withDecryption: answered as AWS's extension answers it, with
    // what `GetParameter` gives without decryption (the ciphertext), never the plaintext.
    let plain = get(
        address,
        &format!("/systemsmanager/parameters/get?name={}", encode(&name)),
    )
    .await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    let undecrypted = library::raw_ssm()
        .await
        .get_parameter()
        .name(&name)
        .with_decryption(false)
        .send()
        .await
        .unwrap()
        .parameter
        .unwrap();
    let body = plain.json();
    assert_eq!(body["Parameter"]["Type"], "SecureString");
    assert_eq!(
        body["Parameter"]["Value"].as_str(),
        undecrypted.value(),
        "the service's own answer without decryption"
    );
    assert_ne!(body["Parameter"]["Value"], "parameter-value");

    // A plain String needs no decryption: served without withDecryption.
    let plain_name = format!("/{}", library::unique_id("ext-plain"));
    library::raw_ssm()
        .await
        .put_parameter()
        .name(&plain_name)
        .value("not-secret")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let string = get(
        address,
        &format!(
            "/systemsmanager/parameters/get?name={}",
            encode(&plain_name)
        ),
    )
    .await;
    assert_eq!(string.status, 200, "{}", string.body);
    assert_eq!(string.json()["Parameter"]["Type"], "String");

    // Not found, by route.
    let missing = get(address, "/secretsmanager/get?secretId=no/such/secret").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["__type"], "ResourceNotFoundException");
    let missing = get(
        address,
        "/systemsmanager/parameters/get?name=/no/such/parameter&withDecryption=true",
    )
    .await;
    assert_eq!(
        (missing.status, missing.json()["__type"].as_str()),
        (404, Some("ParameterNotFound"))
    );
    running.stop().await;
}

/// Other backends through the generic route, and through AWS's route under its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_backend_serves_the_generic_route_and_aws_s_route_by_name() {
    let key = library::kms_key().await;
    let root = tempfile::tempdir().unwrap();
    let id = library::unique_id("ext-file");
    library::file_kms(root.path(), &key)
        .await
        .put(&id, &SecretValue::binary(vec![0xff, 0x00, 0x01]))
        .await
        .unwrap();
    let url = format!(
        "file+kms://{}?kms_key_id={key}&memory_ttl=5m",
        root.path().display()
    );
    let running = start(&[(
        STACKS_ENV,
        &stacks(&[("efs", &url), ("secretsmanager", &url)]),
    )])
    .await;
    let address = running.address();
    let generic = get(
        address,
        &format!("/secret-loader/get?source=efs&id={}", encode(id.as_str())),
    )
    .await;
    assert_eq!(generic.status, 200, "{}", generic.body);
    assert_eq!(generic.json()["SecretBinary"], "/wAB");
    // Code written for AWS's extension reads EFS unchanged.
    let aws_route = get(
        address,
        &format!("/secretsmanager/get?secretId={}", encode(id.as_str())),
    )
    .await;
    assert_eq!(aws_route.json()["SecretBinary"], "/wAB");
    // Two stacks: the generic route needs `source`.
    let ambiguous = get(
        address,
        &format!("/secret-loader/get?id={}", encode(id.as_str())),
    )
    .await;
    assert_eq!(ambiguous.status, 400);
    assert!(ambiguous.body.contains("efs"), "{}", ambiguous.body);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_any_backend_call() {
    let fake = fake_secretsmanager(200, Duration::ZERO);
    let running = start(&[(STACKS_ENV, &fake_stack(&fake))]).await;
    let address = running.address();
    let path = "/secretsmanager/get?secretId=app/db";
    // (what, path, headers, status, __type)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no token", path, vec![], 403, "UnrecognizedClientException"),
        (
            "wrong token",
            path,
            vec![(TOKEN_HEADER, "nope")],
            403,
            "UnrecognizedClientException",
        ),
        (
            "token of another length",
            path,
            vec![(TOKEN_HEADER, "test-session-token-and-more")],
            403,
            "UnrecognizedClientException",
        ),
        (
            "through a proxy",
            path,
            vec![(TOKEN_HEADER, TOKEN), ("X-Forwarded-For", "10.0.0.1")],
            400,
            "InvalidRequestException",
        ),
        (
            "unknown route",
            "/secretsmanager/put",
            vec![(TOKEN_HEADER, TOKEN)],
            404,
            "UnknownOperationException",
        ),
        (
            "unknown parameter",
            "/secretsmanager/get?secretId=a&stage=x",
            vec![(TOKEN_HEADER, TOKEN)],
            400,
            "ValidationException",
        ),
        (
            "no id",
            "/secretsmanager/get",
            vec![(TOKEN_HEADER, TOKEN)],
            400,
            "ValidationException",
        ),
        (
            // (`../etc/passwd` is a name Secrets Manager takes: it reaches the backend; path
            // safety is the file backend's.)
            "an id no service takes",
            "/secretsmanager/get?secretId=a%20b",
            vec![(TOKEN_HEADER, TOKEN)],
            400,
            "ValidationException",
        ),
        (
            "bad refreshNow",
            "/secretsmanager/get?secretId=a&refreshNow=maybe",
            vec![(TOKEN_HEADER, TOKEN)],
            400,
            "ValidationException",
        ),
    ];
    for (what, path, headers, status, code) in cases {
        let answer = Client::connect(address)
            .await
            .request("GET", path, &headers)
            .await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert_eq!(answer.json()["__type"], code, "{what}");
        assert!(answer.json()["message"].is_string(), "{what}");
    }
    let post = Client::connect(address)
        .await
        .request("POST", path, &[(TOKEN_HEADER, TOKEN)])
        .await;
    assert_eq!(post.status, 405);
    let ping = Client::connect(address)
        .await
        .request("GET", "/ping", &[])
        .await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "healthy"));
    assert_eq!(fake.requests(), 0, "no request reached the backend");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_requests_on_a_cold_id_make_one_backend_call() {
    let fake = fake_secretsmanager(200, Duration::from_millis(300));
    let running = start(&[(STACKS_ENV, &fake_stack(&fake))]).await;
    let address = running.address();
    let reads = (0..64).map(|_| get(address, "/secretsmanager/get?secretId=app/cold"));
    for answer in futures_util::future::join_all(reads).await {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.json()["SecretString"], CREDS);
    }
    assert_eq!(fake.requests(), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_fails_everyone_in_one_call_and_the_next_request_tries_again() {
    let delay = Duration::from_millis(300);
    let fake = fake_secretsmanager(500, delay);
    let running = start(&[(STACKS_ENV, &fake_stack(&fake))]).await;
    let address = running.address();
    let started = Instant::now();
    let reads = (0..64).map(|_| get(address, "/secretsmanager/get?secretId=app/down"));
    for answer in futures_util::future::join_all(reads).await {
        assert_eq!(answer.status, 502, "{}", answer.body);
        assert_eq!(answer.json()["__type"], "ServiceUnavailableException");
    }
    let took = started.elapsed();
    assert_eq!(fake.requests(), 1, "one call for all 64");
    assert!(
        took < delay * 3,
        "all answered within about one call's time: {took:?}"
    );
    let again = get(address, "/secretsmanager/get?secretId=app/down").await;
    assert_eq!(again.status, 502);
    assert_eq!(fake.requests(), 2, "an error is not cached");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_past_the_deadline_is_a_504() {
    let fake = fake_secretsmanager(200, Duration::from_secs(3));
    let running = start(&[
        (STACKS_ENV, &fake_stack(&fake)),
        (SECRETS_MANAGER_TIMEOUT_ENV, "200"),
    ])
    .await;
    let started = Instant::now();
    let answer = get(running.address(), "/secretsmanager/get?secretId=app/slow").await;
    assert_eq!(answer.status, 504, "{}", answer.body);
    assert_eq!(answer.json()["__type"], "TimeoutError");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_are_answered_429() {
    let fake = fake_secretsmanager(200, Duration::ZERO);
    let running = start(&[(STACKS_ENV, &fake_stack(&fake)), (MAX_CLIENTS_ENV, "2")]).await;
    let address = running.address();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut client = Client::connect(address).await;
        assert_eq!(client.get("/ping").await.status, 200);
        open.push(client);
    }
    let third = get(address, "/secretsmanager/get?secretId=app/x").await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.json()["__type"], "ThrottlingException");
    drop(open);
    // Once they close, there is room again.
    let mut served = false;
    for _ in 0..50 {
        if get(address, "/ping").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served);
    assert_eq!(fake.requests(), 0);
    running.stop().await;
}

/// AWS's switches with their meanings: `MAX_CONNECTIONS` bounds the backend calls in flight,
/// `SECRETS_MANAGER_TTL=0` turns the cache off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_bounds_backend_calls_and_a_zero_ttl_caches_nothing() {
    use secret_loader_extension::settings::{MAX_CONNECTIONS_ENV, SECRETS_MANAGER_TTL_ENV};
    let fake = fake_secretsmanager(200, Duration::from_millis(200));
    let running = start(&[
        (STACKS_ENV, &fake_stack(&fake)),
        (MAX_CONNECTIONS_ENV, "2"),
        (SECRETS_MANAGER_TTL_ENV, "0"),
    ])
    .await;
    let address = running.address();
    let reads = (0..6).map(|i| {
        let path = format!("/secretsmanager/get?secretId=app/bounded-{i}");
        async move { get(address, &path).await }
    });
    for answer in futures_util::future::join_all(reads).await {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    assert_eq!(fake.requests(), 6);
    // At most 2 in flight, and 2 reached (6 would be, unbounded).
    assert_eq!(fake.most_in_flight(), 2);
    // No cache: the same id again is another call.
    get(address, "/secretsmanager/get?secretId=app/bounded-0").await;
    assert_eq!(fake.requests(), 7);
    running.stop().await;
}

/// Every name the services take is served: Parameter Store's single-level `/name` (the most
/// common form), hierarchies, names as ARNs, `name:N` and `name:label` in the name, AWS's public
/// `/aws/service/...` parameters and `/aws/reference/secretsmanager/ID` (answered from the
/// Secrets Manager stack in `GetParameter`'s shape); Secrets Manager names with a leading `/`,
/// `//` and a trailing `/`. Each of these was a 400 before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_name_the_services_take_is_served() {
    use aws_sdk_ssm::types::ParameterType;
    let ssm = library::raw_ssm().await;
    let single = format!("/{}", library::unique("single-level"));
    let nested = format!("/{}/app/key", library::unique("tree"));
    for (name, value) in [(&single, "one-level"), (&nested, "nested")] {
        ssm.put_parameter()
            .name(name.as_str())
            .value(value)
            .r#type(ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    ssm.put_parameter()
        .name(single.as_str())
        .value("one-level-v2")
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    ssm.label_parameter_version()
        .name(single.as_str())
        .parameter_version(1)
        .labels("first")
        .send()
        .await
        .unwrap();
    let secret_names = [
        format!("/{}", library::unique("leading")),
        format!("{}//double", library::unique("double")),
        format!("{}/trailing/", library::unique("trailing")),
    ];
    let sm = library::raw_secretsmanager().await;
    for name in &secret_names {
        sm.create_secret()
            .name(name.as_str())
            .secret_string(format!("value-of-{name}"))
            .send()
            .await
            .unwrap();
    }
    let running = start(&[]).await;
    let address = running.address();
    let parameter = |name: &str| {
        format!(
            "/systemsmanager/parameters/get?withDecryption=true&name={}",
            encode(name)
        )
    };
    // A parameter's ARN (the emulator's account and region), with a selector after the name.
    let arn = |name: &str| format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}");
    for (name, value, selector) in [
        (single.clone(), "one-level-v2", None),
        (nested.clone(), "nested", None),
        (format!("{single}:1"), "one-level", Some(":1")),
        (format!("{single}:first"), "one-level", Some(":first")),
        (arn(&nested), "nested", None),
        (
            format!("{}:first", arn(&single)),
            "one-level",
            Some(":first"),
        ),
    ] {
        let answer = get(address, &parameter(&name)).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["Parameter"]["Value"], value, "{name}");
        // The parameter's name, however it was asked for (as GetParameter answers).
        let want = if name.contains(nested.as_str()) {
            &nested
        } else {
            &single
        };
        assert_eq!(body["Parameter"]["Name"], want.as_str(), "{name}");
        if let Some(selector) = selector {
            assert_eq!(body["Parameter"]["Selector"], selector, "{name}");
        }
    }
    // A secret's ARN is not a parameter; a parameter's ARN is not a secret.
    let secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf";
    let refused = get(address, &parameter(secret_arn)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let refused = get(
        address,
        &format!("/secretsmanager/get?secretId={}", encode(&arn(&nested))),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("Parameter Store ARN"),
        "{}",
        refused.body
    );
    let public = get(
        address,
        &parameter("/aws/service/global-infrastructure/regions/us-east-1"),
    )
    .await;
    assert_eq!(public.status, 200, "{}", public.body);
    assert_eq!(public.json()["Parameter"]["Value"], "us-east-1");
    for name in &secret_names {
        let answer = get(
            address,
            &format!("/secretsmanager/get?secretId={}", encode(name)),
        )
        .await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        assert_eq!(answer.json()["SecretString"], format!("value-of-{name}"));
        let reference = get(
            address,
            &parameter(&format!("/aws/reference/secretsmanager/{name}")),
        )
        .await;
        assert_eq!(reference.status, 200, "{name}: {}", reference.body);
        let body = reference.json();
        assert_eq!(body["Parameter"]["Value"], format!("value-of-{name}"));
        assert_eq!(body["Parameter"]["Type"], "SecureString");
        assert_eq!(
            body["Parameter"]["Name"],
            format!("/aws/reference/secretsmanager/{name}")
        );
    }
    // One selector at a time.
    let both = get(address, &(parameter(&format!("{single}:1")) + "&version=1")).await;
    assert_eq!(both.status, 400, "{}", both.body);
    running.stop().await;
}

/// On `SHUTDOWN` the server stops accepting but answers the requests in flight before it
/// returns (within the budget), so the process doesn't exit under a caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_answers_the_requests_in_flight() {
    let fake = fake_secretsmanager(200, Duration::from_millis(400));
    let running = start(&[(STACKS_ENV, &fake_stack(&fake))]).await;
    let address = running.address();
    let in_flight =
        tokio::spawn(async move { get(address, "/secretsmanager/get?secretId=in-flight").await });
    // Stop once the backend has the request in hand (it answers 400 ms later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    assert!(running.stop_within(Duration::from_secs(3)).await, "drained");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "returned after {:?}, before the request was answered",
        started.elapsed()
    );
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// A fake Secrets Manager whose `GetSecretValue` fails (500) while `failing` is set, and that
/// answers `DescribeSecret` with version `v1` current; it counts each operation.
struct SwitchableSecretsManager {
    fake: FakeHttp,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    describes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SwitchableSecretsManager {
    fn start() -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let failing = Arc::new(AtomicBool::new(false));
        let (reads, describes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let fake = {
            let (failing, reads, describes) = (failing.clone(), reads.clone(), describes.clone());
            FakeHttp::start(move |request, stream| {
                let target = request.header("x-amz-target").unwrap_or_default();
                let (status, body) = if target.ends_with("DescribeSecret") {
                    describes.fetch_add(1, Ordering::SeqCst);
                    (
                        200,
                        r#"{"Name":"app/fresh","VersionIdsToStages":{"v1":["AWSCURRENT"]}}"#
                            .to_owned(),
                    )
                } else if failing.load(Ordering::SeqCst) {
                    reads.fetch_add(1, Ordering::SeqCst);
                    (
                        500,
                        r#"{"__type":"InternalServiceError","Message":"down"}"#.to_owned(),
                    )
                } else {
                    reads.fetch_add(1, Ordering::SeqCst);
                    (200, get_secret_value_body("app/fresh", CREDS))
                };
                write_response(
                    stream,
                    status,
                    &[("Content-Type", "application/x-amz-json-1.1")],
                    body.as_bytes(),
                );
            })
        };
        Self {
            fake,
            failing,
            reads,
            describes,
        }
    }
}

/// Freshness like the agent: as an agent, a refresh that fails transiently serves the value
/// it had (the agent's `ignore_transient_errors`, on by default); in Lambda, as AWS's
/// extension, the error is answered. With `memory_version_check=true` an expired entry is
/// kept after one `DescribeSecret` when the version is unchanged (the agent's rotation check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_stale_on_error_as_an_agent_and_the_rotation_check() {
    use secret_loader_extension::settings::SECRETS_MANAGER_TTL_ENV;
    use std::sync::atomic::Ordering;
    for (in_lambda, after_outage) in [(false, 200), (true, 502)] {
        let fake = SwitchableSecretsManager::start();
        let mut vars = vec![
            (STACKS_ENV, fake_stack(&fake.fake)),
            (SECRETS_MANAGER_TTL_ENV, "1".to_owned()),
        ];
        if in_lambda {
            vars.push(("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9".to_owned()));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let running = start(&vars).await;
        let path = "/secretsmanager/get?secretId=app/fresh";
        assert_eq!(get(running.address(), path).await.status, 200);
        fake.failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let answer = get(running.address(), path).await;
        assert_eq!(
            answer.status, after_outage,
            "in Lambda: {in_lambda}: {}",
            answer.body
        );
        running.stop().await;
    }

    let fake = SwitchableSecretsManager::start();
    let url = format!(
        "secretsmanager://?region=us-east-1&endpoint_url={}&max_attempts=1\
         &memory_ttl=1s&memory_version_check=true",
        fake.fake.endpoint()
    );
    let running = start(&[(STACKS_ENV, &stacks(&[("secretsmanager", &url)]))]).await;
    let path = "/secretsmanager/get?secretId=app/fresh";
    assert_eq!(get(running.address(), path).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = get(running.address(), path).await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert_eq!(fake.reads.load(Ordering::SeqCst), 1, "one GetSecretValue");
    assert_eq!(
        fake.describes.load(Ordering::SeqCst),
        1,
        "then one DescribeSecret"
    );
    running.stop().await;
}

/// SnapStart (`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`): before the snapshot nothing is
/// cached or prefetched, so no secret sits in the extension's memory when the snapshot is
/// taken; reads are still answered. From the first INVOKE (after restore) caching is on. A
/// `/tmp` layer, which would put secrets into the snapshot, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snap_start_caches_nothing_before_the_snapshot() {
    use secret_loader_extension::settings::{INITIALIZATION_TYPE_ENV, PREFETCH_ENV};
    let fake = SwitchableSecretsManager::start();
    let running = start(&[
        (STACKS_ENV, &fake_stack(&fake.fake)),
        (INITIALIZATION_TYPE_ENV, "snap-start"),
        (PREFETCH_ENV, "app/fresh"),
    ])
    .await;
    let reads = || fake.reads.load(std::sync::atomic::Ordering::SeqCst);
    let path = "/secretsmanager/get?secretId=app/fresh";
    let stacks = running.state().stacks();
    assert!(!stacks.caching());
    stacks.prefetch(&[(None, "app/fresh".to_owned())]).await;
    assert_eq!(reads(), 0, "no prefetch before the snapshot");
    for _ in 0..2 {
        assert_eq!(get(running.address(), path).await.status, 200);
    }
    assert_eq!(reads(), 2, "answered, not cached");
    assert!(stacks.start_caching(), "the first INVOKE turns caching on");
    for _ in 0..3 {
        assert_eq!(get(running.address(), path).await.status, 200);
    }
    assert_eq!(reads(), 3, "cached from the first read after the restore");
    running.stop().await;

    let with_tmp = format!(
        "secretsmanager://?region=us-east-1&endpoint_url={}&tmp_ttl=1h&tmp_plaintext=true",
        fake.fake.endpoint()
    );
    let err = secret_loader_extension::start(
        &settings(&[
            (STACKS_ENV, &stacks_json(&with_tmp)),
            (INITIALIZATION_TYPE_ENV, "snap-start"),
        ]),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap_err();
    assert!(err.contains("snapshot"), "{err}");
}

fn stacks_json(url: &str) -> String {
    stacks(&[("secretsmanager", url)])
}
