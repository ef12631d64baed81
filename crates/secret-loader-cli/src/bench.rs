//! `secret-loader bench`: the comparison driver.
//!
//! * `bench lambda --function NAME` drives a deployed comparison function: for each cold
//!   start it changes a nonce environment variable (keeping the others) so Lambda must start
//!   a new execution environment, waits for the update to finish, invokes with
//!   `LogType=Tail` and reads `Init Duration` from the `REPORT` line; then warm invocations.
//! * `bench local` seeds one secret into every backend, starts the real `bootstrap` behind the
//!   Lambda API on loopback ([`LocalLambda`]) and drives it exactly as `bench lambda` drives
//!   AWS.
//! * `bench report RAW` renders a recorded run again.
//!
//! Each writes `raw.json`, `report.md` and `report.svg` and prints the Markdown.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, LastUpdateStatus, LogType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use secret_loader::comparison::Response;
use secret_loader::{Config, Error, ErrorKind, SecretId, SecretValue};
use secret_loader_harness::{AwsNetwork, EndpointStats, LocalLambda};

use crate::fleet::FleetRate;
use crate::report::{
    Invocation, LimitedRun, NetworkRecord, Observation, PeerRun, ReportLine, RotationRecord, Run,
    Settings, Target, TargetKind,
};
use crate::tables::{Prices, Quotas};

/// The environment variable changed to force a cold start.
pub(crate) const NONCE_ENV: &str = "SECRET_LOADER_BENCH_NONCE";
/// The function name `bench local` serves.
const LOCAL_FUNCTION: &str = "secret-loader-comparison";

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Run the whole comparison on this machine: seed a secret into every backend (on the
    /// AWS emulator when AWS_ENDPOINT_URL points to loopback), run the real `bootstrap`
    /// under a local Lambda API, force cold starts, write the report.
    Local(Box<LocalArgs>),
    /// Run the comparison against a deployed function (see deploy/README.md).
    Lambda(LambdaArgs),
    /// Render the report of a recorded run (raw.json) again.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Cold starts to force (each a new execution environment).
    #[arg(long, default_value_t = 5, value_name = "K")]
    cold: u32,
    /// Warm invocations, spread over the cold starts' environments.
    #[arg(long, default_value_t = 20, value_name = "W")]
    warm: u32,
    /// Reads per stack in each invocation after the environment's first.
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(secret_loader::comparison::MAX_WARM_READS)))]
    reads: u32,
    /// Directory for raw.json, report.md and report.svg.
    #[arg(long, default_value = "bench-report", value_name = "DIR")]
    out: PathBuf,
    /// Prices for the cost columns (TOML, as the bundled prices.toml); default: bundled.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    #[command(flatten)]
    fleet: FleetArgs,
}

/// The fleet model's inputs.
#[derive(Debug, Args)]
struct FleetArgs {
    /// Request quotas for the fleet model (TOML, as the bundled quotas.toml); default: bundled,
    /// at the run's Region.
    #[arg(long, value_name = "FILE")]
    quotas: Option<PathBuf>,
    /// The fleet the model is worked for: `key=value,...`, any of cold_per_s (default 10),
    /// reads_per_s (1000), functions (1), concurrency (100 environments), secrets (1), ttl_s
    /// (300), version_check (false), key (customer-managed | aws-managed), bucket_key (false),
    /// envelope_sse_kms (false), azs (2).
    #[arg(long, value_name = "RATE", value_parser = parse_fleet_rate)]
    fleet: Option<FleetRate>,
}

fn parse_fleet_rate(text: &str) -> Result<FleetRate, String> {
    text.parse()
}

/// The quotas file's content, or the bundled one.
fn read_quotas(path: Option<&Path>) -> Result<Quotas, BenchError> {
    match path {
        None => Ok(Quotas::bundled()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| BenchError::config(format!("cannot read {}: {e}", path.display())))?;
            Quotas::from_toml(&text).map_err(BenchError::config)
        }
    }
}

#[derive(Debug, Args)]
struct LocalArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The comparison function's binary; default: `bootstrap` next to this program.
    #[arg(long, value_name = "FILE")]
    bootstrap: Option<PathBuf>,
    /// Bucket for the S3 backends; on the emulator a new one is made when not given.
    #[arg(long, value_name = "NAME")]
    bucket: Option<String>,
    /// Directory for the file+kms backend (standing in for EFS); default: a new temporary one.
    #[arg(long, value_name = "DIR")]
    file_root: Option<PathBuf>,
    /// The secret's name in every backend.
    #[arg(long, default_value = "secret-loader-bench/api-key", value_name = "ID")]
    secret_id: String,
    /// Also run the Python peers in this directory (`functions/python`: boto3, Powertools,
    /// the extension) under AWS's Python runtime client, beside the Rust function.
    #[arg(long, value_name = "DIR")]
    peers: Option<PathBuf>,
    /// The Python that runs the peers (with boto3, aws-lambda-powertools and awslambdaric).
    #[arg(
        long,
        value_name = "FILE",
        env = "SECRET_LOADER_PYTHON",
        default_value = "python3"
    )]
    python: PathBuf,
    /// The network between the functions and the emulator: `tls`, AWS's shape (each service
    /// behind its own HTTPS endpoint with a certificate authority made for the run,
    /// connections kept alive, `--rtt` per round trip), or `plain` (HTTP straight to the
    /// emulator, no added round trip). Only with the emulator: against AWS the network is
    /// AWS's.
    #[arg(long, value_enum, default_value = "tls")]
    network: NetworkKind,
    /// The round trip the `tls` network adds: 2 per new connection (TCP, TLS 1.3), 1 per
    /// request. Default 1 ms: the low end of the single-digit milliseconds AWS documents
    /// between the Availability Zones of a Region.
    #[arg(long, default_value = "1ms", value_name = "DURATION", value_parser = humantime::parse_duration)]
    rtt: Duration,
    /// The extension the `python-extension` peer reads through; default:
    /// `secret-loader-extension` next to this program.
    #[arg(long, value_name = "FILE")]
    extension: Option<PathBuf>,
    /// AWS's Secrets Manager Agent (`aws_secretsmanager_agent`), which the `python-agent` peer
    /// reads through; without it (and `--agent-extension`) that peer is left out.
    #[arg(long, value_name = "FILE", env = "SECRET_LOADER_AGENT")]
    agent: Option<PathBuf>,
    /// AWS's sample script that runs the agent as a Lambda extension
    /// (`examples/example-lambda-extension/secrets-manager-agent-extension.sh` of the agent's
    /// crate), run as it is but for the agent's path and port.
    #[arg(long, value_name = "FILE", env = "SECRET_LOADER_AGENT_EXTENSION")]
    agent_extension: Option<PathBuf>,
    /// Also run the Rust function's cold starts (as many as `--cold`) with its processes
    /// under the CPU share Lambda gives this memory size (MB; 1,769 MB is one vCPU), as a
    /// cgroup CPU quota, for the report to set beside its model. Needs a writable cgroup CPU
    /// controller (root).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u32).range(128..=10240))]
    cpu_limit: Option<u32>,
    /// The rotation drill's cache TTL. After the run, a new environment reads the secret
    /// through every backend bare and behind caches with this TTL, a new generation of the
    /// secret is written into every store, and the drill watches how long each stack keeps
    /// serving the old one. `0s` leaves the drill out.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    rotation_ttl: Duration,
}

#[derive(Debug, Args)]
struct LambdaArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The deployed comparison function (name or ARN).
    #[arg(long, value_name = "NAME")]
    function: String,
    /// A deployed Python peer to run beside it, the same way (repeat for each; see
    /// deploy/README.md).
    #[arg(long = "peer", value_name = "NAME")]
    peers: Vec<String>,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// A raw.json written by `bench local` or `bench lambda`.
    raw: PathBuf,
    /// Directory for report.md and report.svg.
    #[arg(long, default_value = "bench-report", value_name = "DIR")]
    out: PathBuf,
    /// Prices to use instead of the bundled ones (raw.json keeps those the run was reported
    /// with; the report uses this CLI's tables, the best it knows).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Quotas (instead of the bundled ones) and the fleet (instead of the one recorded).
    #[command(flatten)]
    fleet: FleetArgs,
}

pub(crate) async fn bench(args: BenchArgs, kms_key: Option<String>) -> Result<(), BenchError> {
    match args.command {
        BenchCommand::Local(args) => local(*args, kms_key).await,
        BenchCommand::Lambda(args) => lambda(args).await,
        BenchCommand::Report(args) => {
            let text = std::fs::read_to_string(&args.raw).map_err(|e| {
                BenchError::config(format!("cannot read {}: {e}", args.raw.display()))
            })?;
            let mut run: Run = serde_json::from_str(&text).map_err(|e| {
                BenchError::config(format!("{} is not a recorded run: {e}", args.raw.display()))
            })?;
            run.prices = read_prices(args.prices.as_deref())?;
            run.quotas = read_quotas(args.fleet.quotas.as_deref())?;
            if let Some(rate) = args.fleet.fleet {
                run.fleet = rate;
            }
            write_report(&run, &args.out, false)
        }
    }
}

fn read_prices(path: Option<&Path>) -> Result<Prices, BenchError> {
    match path {
        None => Ok(Prices::bundled()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| BenchError::config(format!("cannot read {}: {e}", path.display())))?;
            Prices::from_toml(&text).map_err(BenchError::config)
        }
    }
}

/// Writes report.md, the charts (report.svg, monthly-cost.svg, and cold-starts.svg when the
/// run has peers) and raw.json when `raw` into `out`; prints the Markdown.
fn write_report(run: &Run, out: &Path, raw: bool) -> Result<(), BenchError> {
    let io = |what: &Path, e: std::io::Error| {
        BenchError::config(format!("cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let markdown = crate::report::markdown(run);
    let chart = |e: String| BenchError::config(format!("chart: {e}"));
    let mut files = vec![
        ("report.md", markdown.clone()),
        ("report.svg", crate::report::svg(run).map_err(chart)?),
        (
            "monthly-cost.svg",
            crate::charts::monthly_cost(run).map_err(chart)?,
        ),
    ];
    if let Some(svg) = crate::charts::cold_starts(run) {
        files.push(("cold-starts.svg", svg.map_err(chart)?));
    }
    if raw {
        let json = serde_json::to_string_pretty(run)
            .map_err(|e| BenchError::config(format!("cannot encode the run: {e}")))?;
        files.push(("raw.json", json + "\n"));
    }
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    for (name, text) in &files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    print!("{markdown}");
    eprintln!(
        "secret-loader: wrote {} in {}",
        names.join(", "),
        out.display()
    );
    Ok(())
}

/// Why a bench command failed: its kind (for the exit code) and one line.
#[derive(Debug)]
pub(crate) struct BenchError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl BenchError {
    fn config(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidConfig,
            message: message.into(),
        }
    }
}

impl From<Error> for BenchError {
    fn from(err: Error) -> Self {
        Self {
            kind: err.kind(),
            message: err.display_chain().to_string(),
        }
    }
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An SDK error as a bench failure, classified as every backend classifies them.
fn lambda_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> BenchError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = secret_loader::aws::sdk_error_kind(&err, |code| {
        (code == "ResourceNotFoundException").then_some(ErrorKind::NotFound)
    });
    BenchError {
        kind,
        message: format!("lambda: {what}: {}", DisplayErrorContext(&err)),
    }
}

async fn lambda(args: LambdaArgs) -> Result<(), BenchError> {
    let prices = read_prices(args.run.prices.as_deref())?;
    let sdk =
        secret_loader::aws::load_sdk_config(&secret_loader::aws::AwsOptions::default()).await?;
    let client = aws_sdk_lambda::Client::new(&sdk);
    // Label what was measured honestly: a Lambda API on loopback is the local runner.
    let endpoint = |name: &str| std::env::var(name).ok().filter(|url| !url.is_empty());
    let lambda_endpoint =
        endpoint("AWS_ENDPOINT_URL_LAMBDA").or_else(|| endpoint("AWS_ENDPOINT_URL"));
    let kind = match (lambda_endpoint.as_deref().is_some_and(loopback), emulator()) {
        (false, _) => TargetKind::AwsLambda,
        (true, true) => TargetKind::EmulatorLoopback,
        (true, false) => TargetKind::LocalRunnerAws,
    };
    let mut run = drive(&client, &args.function, &args.run, prices, kind).await?;
    for peer in &args.peers {
        eprintln!("secret-loader: peer {peer}");
        let peer_run = drive(&client, peer, &args.run, run.prices.clone(), kind).await?;
        run.peers.push(PeerRun {
            function: peer_run.target.function,
            invocations: peer_run.invocations,
        });
    }
    finish(&run, &args.run.out)
}

/// Writes the report; a run in which no invocation answered is still reported, and fails.
fn finish(run: &Run, out: &Path) -> Result<(), BenchError> {
    write_report(run, out, true)?;
    let failed = run
        .invocations
        .iter()
        .filter(|i| i.response.is_none())
        .count();
    if !run.invocations.is_empty() && failed == run.invocations.len() {
        return Err(BenchError {
            kind: ErrorKind::Other,
            message: format!(
                "every invocation failed ({failed}); the first: {}",
                run.invocations[0]
                    .error
                    .as_deref()
                    .unwrap_or("no error recorded")
            ),
        });
    }
    Ok(())
}

/// Settings → which invocations: per cold start, how many warm ones follow it.
fn warm_per_round(cold: u32, warm: u32) -> Vec<u32> {
    if cold == 0 {
        return vec![warm];
    }
    (0..cold)
        .map(|round| warm / cold + u32::from(round < warm % cold))
        .collect()
}

async fn drive(
    client: &aws_sdk_lambda::Client,
    function: &str,
    args: &RunArgs,
    prices: Prices,
    kind: TargetKind,
) -> Result<Run, BenchError> {
    let quotas = read_quotas(args.fleet.quotas.as_deref())?;
    let configuration = configuration(client, function).await?;
    // Forcing cold starts rewrites the environment and restores it after: never do that to
    // an environment this caller can't read (Lambda then answers `Environment.Error`, e.g.
    // variables under a KMS key it may not use), or the restore would wipe it.
    if args.cold > 0
        && let Some(error) = configuration.environment().and_then(|e| e.error())
    {
        return Err(BenchError {
            kind: ErrorKind::AccessDenied,
            message: format!(
                "lambda: {function}: cannot read the function's environment ({}: {}); forcing \
                 cold starts would replace it, so nothing was changed (--cold 0 measures warm \
                 invocations only)",
                error.error_code().unwrap_or("unknown"),
                error.message().unwrap_or("no message"),
            ),
        });
    }
    let original: HashMap<String, String> = configuration
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let target = Target {
        kind,
        function: configuration.function_name().unwrap_or(function).to_owned(),
        region: client
            .config()
            .region()
            .map_or_else(|| "unknown".into(), ToString::to_string),
        architecture: configuration
            .architectures()
            .first()
            .map_or("x86_64", |a| a.as_str())
            .to_owned(),
        memory_mb: configuration
            .memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0),
    };
    let settings = Settings {
        cold: args.cold,
        warm: args.warm,
        reads: args.reads,
    };
    let started_at = SystemTime::now();
    let rounds = warm_per_round(args.cold, args.warm);
    let progress = Progress::new(u64::from(args.cold + args.warm));
    let payload = serde_json::json!({ "warm_reads": args.reads }).to_string();
    let mut invocations = Vec::new();
    let mut outcome = Ok(());
    for (round, warm) in rounds.iter().enumerate() {
        let forced = args.cold > 0;
        if forced {
            progress.say(format!("cold start {}/{}", round + 1, args.cold));
            let mut variables = original.clone();
            let nonce = started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            variables.insert(NONCE_ENV.into(), format!("{nonce}-{round}"));
            if let Err(err) = update_environment(client, function, variables).await {
                outcome = Err(err);
                break;
            }
        }
        for i in 0..=*warm {
            if i == 0 && !forced {
                continue;
            }
            invocations.push(invoke(client, function, &payload, forced && i == 0).await);
            progress.inc();
        }
    }
    progress.finish();
    if args.cold > 0 {
        // Leave the function as it was (its next invocation is cold once more).
        let restored = update_environment(client, function, original).await;
        outcome = outcome.and(restored);
    }
    outcome?;
    Ok(Run {
        target,
        started: humantime::format_rfc3339_seconds(started_at).to_string(),
        settings,
        prices,
        invocations,
        quotas,
        fleet: args.fleet.fleet.unwrap_or_default(),
        peers: Vec::new(),
        network: None,
        cpu_limited: None,
        rotation: None,
    })
}

async fn configuration(
    client: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<GetFunctionConfigurationOutput, BenchError> {
    client
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| lambda_error(function, e))
}

/// Sets the function's environment and waits until Lambda has applied it.
async fn update_environment(
    client: &aws_sdk_lambda::Client,
    function: &str,
    variables: HashMap<String, String>,
) -> Result<(), BenchError> {
    wait_for_update(client, function).await?;
    client
        .update_function_configuration()
        .function_name(function)
        .environment(
            Environment::builder()
                .set_variables(Some(variables))
                .build(),
        )
        .send()
        .await
        .map_err(|e| lambda_error(function, e))?;
    wait_for_update(client, function).await
}

/// Polls until the function's last update is no longer in progress.
async fn wait_for_update(
    client: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut pause = Duration::from_millis(100);
    loop {
        let configuration = configuration(client, function).await?;
        match configuration.last_update_status() {
            Some(LastUpdateStatus::InProgress) => {}
            Some(LastUpdateStatus::Failed) => {
                return Err(BenchError::config(format!(
                    "{function}: the configuration update failed: {}",
                    configuration
                        .last_update_status_reason()
                        .unwrap_or("no reason given")
                )));
            }
            _ => return Ok(()),
        }
        if Instant::now() > deadline {
            return Err(BenchError {
                kind: ErrorKind::Transient,
                message: format!(
                    "lambda: {function}: the configuration update did not finish within 5 minutes"
                ),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// One invocation; a failure is recorded, never fatal to the run.
async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payload: &str,
    forced_cold: bool,
) -> Invocation {
    let started = Instant::now();
    let result = client
        .invoke()
        .function_name(function)
        .log_type(LogType::Tail)
        .payload(Blob::new(payload.as_bytes()))
        .send()
        .await;
    let round_trip_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut invocation = Invocation {
        forced_cold,
        response: None,
        error: None,
        report: None,
        round_trip_ms,
    };
    let output = match result {
        Ok(output) => output,
        Err(err) => {
            invocation.error = Some(format!("Invoke: {}", DisplayErrorContext(&err)));
            return invocation;
        }
    };
    invocation.report = output
        .log_result()
        .and_then(|log| aws_smithy_types::base64::decode(log).ok())
        .and_then(|log| ReportLine::parse(&String::from_utf8_lossy(&log)));
    let body = output.payload().map(Blob::as_ref).unwrap_or_default();
    if let Some(kind) = output.function_error() {
        invocation.error = Some(function_error(kind, body));
        return invocation;
    }
    match serde_json::from_slice::<Response>(body) {
        Ok(response) => invocation.response = Some(response),
        Err(err) => invocation.error = Some(format!("unreadable response: {err}")),
    }
    invocation
}

/// `Unhandled: SecretLoader.InvalidRequest: invalid request: ...` from a function error.
fn function_error(kind: &str, body: &[u8]) -> String {
    let document: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| document.get(name).and_then(|v| v.as_str()).unwrap_or("?");
    format!("{kind}: {}: {}", field("errorType"), field("errorMessage"))
}

/// A progress bar on a terminal; a line per cold start otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:18} [{bar:40}] {pos}/{len} invocations {elapsed}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self { bar }
    }

    fn say(&self, message: String) {
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => eprintln!("secret-loader: {message}"),
        }
    }

    fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn local(args: LocalArgs, kms_key: Option<String>) -> Result<(), BenchError> {
    let prices = read_prices(args.run.prices.as_deref())?;
    let bootstrap = match args.bootstrap {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| BenchError::config(format!("cannot find this program: {e}")))?
            .with_file_name("bootstrap"),
    };
    if !bootstrap.is_file() {
        return Err(BenchError::config(format!(
            "no comparison function at {}: build it (`cargo build --release -p \
             secret-loader-lambda`) or pass --bootstrap",
            bootstrap.display()
        )));
    }
    let id = SecretId::new(args.secret_id)?;
    let options = secret_loader::aws::AwsOptions::default();
    let sdk = secret_loader::aws::load_sdk_config(&options).await?;
    let emulator = emulator();
    let kms_key = match kms_key {
        Some(key) => key,
        None if emulator => {
            let key = aws_sdk_kms::Client::new(&sdk)
                .create_key()
                .description("secret-loader bench local")
                .send()
                .await
                .map_err(|e| lambda_error("kms:CreateKey", e))?;
            key.key_metadata()
                .map(|m| m.arn().unwrap_or(m.key_id()).to_owned())
                .ok_or_else(|| BenchError::config("CreateKey answered no key"))?
        }
        None => {
            return Err(BenchError::config(
                "bench local against AWS needs --kms-key (it creates keys on the emulator only)",
            ));
        }
    };
    let bucket = match args.bucket {
        Some(bucket) => bucket,
        None if emulator => {
            let bucket = format!("secret-loader-bench-{}", random_hex(6));
            aws_sdk_s3::Client::new(&sdk)
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|e| lambda_error("s3:CreateBucket", e))?;
            bucket
        }
        None => {
            return Err(BenchError::config(
                "bench local against AWS needs --bucket (it creates buckets on the emulator only)",
            ));
        }
    };
    let scratch;
    let file_root = match args.file_root {
        Some(root) => root,
        None => {
            scratch = tempfile::Builder::new()
                .prefix("secret-loader-bench-efs-")
                .tempdir()
                .map_err(|e| BenchError::config(format!("cannot make a directory: {e}")))?;
            scratch.path().to_owned()
        }
    };
    let backends = backends(&bucket, &kms_key, &file_root, &id, emulator);
    // The value: random, JSON like the API keys it stands for; it is never printed.
    // The seed's fields, which the Python peers read as the seed does.
    // `generation` tells the rotation drill's new value from the old without either leaving
    // the function.
    let value = bench_value(1);
    let stacks = stacks(&backends, &kms_key);
    let mut environment = BTreeMap::from([
        (
            secret_loader::comparison::SECRET_ID_ENV.to_owned(),
            id.to_string(),
        ),
        (
            secret_loader::comparison::STACKS_ENV.to_owned(),
            serde_json::to_string(&stacks).unwrap_or_default(),
        ),
    ]);
    seed(&backends, &id, &value, LOCAL_FUNCTION, &mut environment).await?;
    let network = match (args.network, emulator) {
        (NetworkKind::Tls, true) => {
            let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
            Some(AwsNetwork::start(&upstream, args.rtt).map_err(BenchError::config)?)
        }
        (NetworkKind::Tls, false) => {
            return Err(BenchError::config(
                "--network tls puts the emulator behind TLS endpoints; against AWS the network \
                 is AWS's own: give --network plain",
            ));
        }
        (NetworkKind::Plain, _) => None,
    };
    let network_environment = network
        .as_ref()
        .map(AwsNetwork::environment)
        .unwrap_or_default();
    environment.extend(network_environment.iter().cloned());
    let mut record = network.as_ref().map(|n| NetworkRecord {
        kind: "tls".into(),
        rtt_ms: n.rtt().as_secs_f64() * 1000.0,
        functions: BTreeMap::new(),
    });
    let before = network.as_ref().map(AwsNetwork::stats);
    let service = LocalLambda::start(&bootstrap, LOCAL_FUNCTION, environment.clone())
        .map_err(BenchError::config)?;
    let client = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .endpoint_url(service.endpoint_url())
            .build(),
    );
    let kind = if emulator {
        TargetKind::EmulatorLoopback
    } else {
        TargetKind::LocalRunnerAws
    };
    let run = drive(&client, LOCAL_FUNCTION, &args.run, prices, kind).await;
    service.stop();
    let mut run = run?;
    if let Some(memory_mb) = args.cpu_limit {
        eprintln!("secret-loader: {LOCAL_FUNCTION} under the CPU share of {memory_mb} MB");
        let share = secret_loader_harness::lambda_cpu_share(memory_mb);
        let limited = LocalLambda::start_runtime(
            secret_loader_harness::Environment::new(&bootstrap)
                .memory(memory_mb)
                .enforce_cpu_share(),
            LOCAL_FUNCTION,
            environment.clone(),
        )
        .map_err(BenchError::config)?;
        let client = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .endpoint_url(limited.endpoint_url())
                .build(),
        );
        // Cold starts are what the quota is for: no warm invocations.
        let cold_only = RunArgs {
            cold: args.run.cold,
            warm: 0,
            reads: args.run.reads,
            out: args.run.out.clone(),
            prices: None,
            fleet: FleetArgs {
                quotas: None,
                fleet: None,
            },
        };
        let limited_run = drive(
            &client,
            LOCAL_FUNCTION,
            &cold_only,
            run.prices.clone(),
            kind,
        )
        .await;
        limited.stop();
        let limited_run = limited_run?;
        if let Some(error) = limited_run
            .invocations
            .iter()
            .find_map(|i| i.error.as_deref())
        {
            return Err(BenchError::config(format!(
                "under the CPU quota the function failed: {error}"
            )));
        }
        run.cpu_limited = Some(LimitedRun {
            memory_mb,
            share,
            mechanism: "a cgroup CPU quota (CFS) over the function's processes".into(),
            invocations: limited_run.invocations,
        });
    }
    if let (Some(record), Some(network), Some(before)) = (&mut record, &network, &before) {
        record
            .functions
            .insert(LOCAL_FUNCTION.to_owned(), stats_since(network, before));
    }
    if let Some(dir) = &args.peers {
        // The runtime runs in the peers' directory: resolve relative paths here, not there.
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .map_err(|e| BenchError::config(format!("{}: {e}", path.display())))
        };
        let dir = &absolute(dir)?;
        let python = if args.python.components().count() > 1 {
            absolute(&args.python)?
        } else {
            args.python.clone()
        };
        let peers = PeerSetup {
            dir,
            python: &python,
            extension: match &args.extension {
                Some(path) => path.clone(),
                None => std::env::current_exe()
                    .map_err(|e| BenchError::config(format!("cannot find this program: {e}")))?
                    .with_file_name(secret_loader_extension::NAME),
            },
            agent: match (&args.agent, &args.agent_extension) {
                (Some(agent), Some(script)) => Some((absolute(agent)?, absolute(script)?)),
                _ => None,
            },
            id: &id,
            backends: &backends,
            network: &network_environment,
            value: &value,
            kms_key: &kms_key,
        };
        for peer in PEERS {
            if peer.beside == Beside::AwsAgent && peers.agent.is_none() {
                eprintln!(
                    "secret-loader: peer {} left out: give --agent and --agent-extension \
                     (scripts/bench and scripts/test install AWS's agent)",
                    peer.function
                );
                continue;
            }
            eprintln!("secret-loader: peer {}", peer.function);
            // The agent's layer, as AWS's sample builds it, while the peer runs.
            let layer = tempfile::tempdir()
                .map_err(|e| BenchError::config(format!("no temporary directory: {e}")))?;
            let environment = peers.environment(peer).await?;
            let before = network.as_ref().map(AwsNetwork::stats);
            let service = LocalLambda::start_runtime(
                peers.runtime(peer, layer.path(), &environment)?,
                peer.function,
                environment,
            )
            .map_err(BenchError::config)?;
            let client = aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&sdk)
                    .endpoint_url(service.endpoint_url())
                    .build(),
            );
            let peer_run = drive(&client, peer.function, &args.run, run.prices.clone(), kind).await;
            service.stop();
            if let (Some(record), Some(network), Some(before)) = (&mut record, &network, &before) {
                record
                    .functions
                    .insert(peer.function.to_owned(), stats_since(network, before));
            }
            run.peers.push(PeerRun {
                function: peer.function.to_owned(),
                invocations: peer_run?.invocations,
            });
        }
    }
    if !args.rotation_ttl.is_zero() {
        eprintln!(
            "secret-loader: rotation drill (cache TTL {})",
            humantime::format_duration(args.rotation_ttl)
        );
        let drill = RotationDrill {
            sdk: &sdk,
            bootstrap: &bootstrap,
            backends: &backends,
            id: &id,
            kms_key: &kms_key,
            environment: &environment,
            ttl: args.rotation_ttl,
        };
        run.rotation = Some(drill.run().await?);
    }
    run.network = record;
    finish(&run, &args.run.out)
}

/// The benchmark's secret: random, JSON like the API keys it stands for (the seed's fields,
/// which the Python peers read as the seed does); it is never printed.
fn bench_value(generation: u64) -> SecretValue {
    SecretValue::text(format!(
        r#"{{"access_key":"AKIA{}","secret_key":"{}","issued_by":"secret-loader bench","generation":{generation}}}"#,
        random_hex(8).to_uppercase(),
        random_hex(20)
    ))
}

/// `bench local`'s rotation drill: how long each stack keeps serving a secret after a new
/// value is made current in its store.
struct RotationDrill<'a> {
    sdk: &'a aws_config::SdkConfig,
    bootstrap: &'a Path,
    backends: &'a [Backend],
    id: &'a SecretId,
    kms_key: &'a str,
    /// The run's function environment (variables, network), whose stacks the drill replaces.
    environment: &'a BTreeMap<String, String>,
    ttl: Duration,
}

impl RotationDrill<'_> {
    /// Every backend bare; the stores' behind a memory cache and an encrypted `/tmp` cache
    /// of the drill's TTL, and Secrets Manager's memory cache with its version check too.
    fn stacks(&self, tmp_dir: &Path) -> BTreeMap<String, String> {
        let ttl = format!("{}ms", self.ttl.as_millis());
        let mut stacks = BTreeMap::new();
        for backend in self.backends {
            let (name, url) = (backend.name, &backend.url);
            stacks.insert(name.to_owned(), url.clone());
            if !matches!(backend.seed, Seed::Put) {
                continue;
            }
            let join = if url.contains('?') { '&' } else { '?' };
            stacks.insert(
                format!("{name}+memory"),
                format!("{url}{join}memory_ttl={ttl}"),
            );
            if backend.tmp {
                stacks.insert(
                    format!("{name}+tmp"),
                    format!(
                        "{url}{join}tmp_ttl={ttl}&tmp_kms_key_id={}&tmp_dir={}",
                        self.kms_key,
                        tmp_dir.display()
                    ),
                );
            }
            if name == "secretsmanager" {
                stacks.insert(
                    format!("{name}+memory+check"),
                    format!("{url}{join}memory_ttl={ttl}&memory_version_check=true"),
                );
            }
        }
        stacks
    }

    async fn run(&self) -> Result<RotationRecord, BenchError> {
        // A `/tmp` cache of its own: the run's entries (1 h TTL) are not the drill's.
        let scratch = tempfile::Builder::new()
            .prefix("secret-loader-drill-")
            .tempdir()
            .map_err(|e| BenchError::config(format!("cannot make a directory: {e}")))?;
        let stacks = self.stacks(scratch.path());
        let mut environment = self.environment.clone();
        environment.insert(
            secret_loader::comparison::STACKS_ENV.to_owned(),
            serde_json::to_string(&stacks).unwrap_or_default(),
        );
        let service = LocalLambda::start(self.bootstrap, LOCAL_FUNCTION, environment)
            .map_err(BenchError::config)?;
        let outcome = self.watch(&service, &stacks).await;
        service.stop();
        outcome
    }

    async fn watch(
        &self,
        service: &LocalLambda,
        stacks: &BTreeMap<String, String>,
    ) -> Result<RotationRecord, BenchError> {
        let client = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(self.sdk)
                .endpoint_url(service.endpoint_url())
                .build(),
        );
        let payload = r#"{"warm_reads": 1, "generation": true}"#;
        let observe =
            |invocation: Invocation| -> Result<BTreeMap<String, Option<u64>>, BenchError> {
                let response = invocation.response.ok_or_else(|| {
                    BenchError::config(format!(
                        "rotation drill: the function failed: {}",
                        invocation.error.as_deref().unwrap_or("no answer")
                    ))
                })?;
                if let Some((name, error)) = response
                    .stacks
                    .iter()
                    .find_map(|s| s.error.as_ref().map(|e| (&s.name, e)))
                {
                    return Err(BenchError::config(format!(
                        "rotation drill: stack {name}: {}: {}",
                        error.kind, error.message
                    )));
                }
                Ok(response
                    .stacks
                    .into_iter()
                    .map(|s| (s.name, s.generation))
                    .collect())
            };
        let cold_started = Instant::now();
        let before = observe(invoke(&client, LOCAL_FUNCTION, payload, true).await)?;
        // The new generation, made current in every store (the variables change only with
        // the function's configuration).
        let value = bench_value(2);
        for backend in self.backends {
            if matches!(backend.seed, Seed::Put) {
                Config::from_url(&backend.url)?
                    .build_store()
                    .await?
                    .put(self.id, &value)
                    .await?;
            }
        }
        let rotated = Instant::now();
        let stored: Vec<String> = stacks
            .keys()
            .filter(|name| {
                self.backends.iter().any(|b| {
                    matches!(b.seed, Seed::Put)
                        && (name.as_str() == b.name || name.starts_with(&format!("{}+", b.name)))
                })
            })
            .cloned()
            .collect();
        let interval = (self.ttl / 8).max(Duration::from_millis(100));
        let deadline = self.ttl * 2 + Duration::from_secs(1);
        let mut after = Vec::new();
        loop {
            let at = rotated.elapsed();
            let generations = observe(invoke(&client, LOCAL_FUNCTION, payload, false).await)?;
            let done = stored
                .iter()
                .all(|name| generations.get(name) == Some(&Some(2)));
            after.push(Observation {
                at_ms: at.as_secs_f64() * 1000.0,
                generations,
            });
            if done || rotated.elapsed() >= deadline {
                break;
            }
            tokio::time::sleep(interval.saturating_sub(rotated.elapsed() - at)).await;
        }
        Ok(RotationRecord {
            ttl_ms: self.ttl.as_secs_f64() * 1000.0,
            interval_ms: interval.as_secs_f64() * 1000.0,
            first_read_ms_before: (rotated - cold_started).as_secs_f64() * 1000.0,
            stacks: stacks.clone(),
            stored,
            before,
            after,
        })
    }
}

/// What each of `network`'s endpoints saw since `before`.
fn stats_since(
    network: &AwsNetwork,
    before: &BTreeMap<String, EndpointStats>,
) -> BTreeMap<String, EndpointStats> {
    network
        .stats()
        .into_iter()
        .map(|(service, now)| {
            let then = before.get(&service).copied().unwrap_or_default();
            (service, now.since(&then))
        })
        .filter(|(_, seen)| *seen != EndpointStats::default())
        .collect()
}

/// The network `bench local` puts between the functions and the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NetworkKind {
    /// AWS's shape: an HTTPS endpoint per service, kept-alive connections, a round trip.
    Tls,
    /// Plain HTTP to the emulator: a new connection per request, no added round trip.
    Plain,
}

/// A Python peer: its function name and its module in the peers' directory.
struct Peer {
    function: &'static str,
    module: &'static str,
    /// The extension in its environment, if any.
    beside: Beside,
}

/// An extension a peer reads through, as a layer adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beside {
    Nothing,
    /// This project's extension.
    OurExtension,
    /// AWS's Secrets Manager Agent, run by AWS's sample extension script.
    AwsAgent,
}

/// What AWS's sample extension script says, which the harness replaces: the agent's path in
/// the layer (`/opt/bin`, where the sample's instructions put it) and its port.
const SAMPLE_AGENT_START: &str = "/opt/bin/secrets-manager-agent &";
const SAMPLE_AGENT_PING: &str = "http://localhost:2773/ping";
/// The name AWS's instructions give the script in the layer's `extensions/` (its file name is
/// its extension name).
const SAMPLE_EXTENSION_NAME: &str = "secrets-manager-agent-extension.sh";

/// The peers, in the order the report lists them.
const PEERS: &[Peer] = &[
    Peer {
        function: "python-boto3-per-read",
        module: "boto3_per_read",
        beside: Beside::Nothing,
    },
    Peer {
        function: "python-boto3-module",
        module: "boto3_module",
        beside: Beside::Nothing,
    },
    Peer {
        function: "python-powertools",
        module: "powertools",
        beside: Beside::Nothing,
    },
    Peer {
        function: "python-extension",
        module: "extension",
        beside: Beside::OurExtension,
    },
    Peer {
        function: "python-agent",
        module: "agent",
        beside: Beside::AwsAgent,
    },
    Peer {
        function: PACKAGE_PEER,
        module: "package",
        beside: Beside::Nothing,
    },
];

/// The peer reading through this project's Python package (`crates/secret-loader-python`),
/// in process: every backend, bare and behind the memory cache, as the Rust function does.
const PACKAGE_PEER: &str = "python-secret-loader";

/// What every peer's environment is made of.
struct PeerSetup<'a> {
    dir: &'a Path,
    python: &'a Path,
    extension: PathBuf,
    /// AWS's agent and its sample extension script.
    agent: Option<(PathBuf, PathBuf)>,
    id: &'a SecretId,
    backends: &'a [Backend],
    /// The network's variables (endpoints, the CA), empty on the plain network.
    network: &'a [(String, String)],
    /// The secret's value and the run's key: the package's peer gets its own sealed
    /// variable (sealed for its function name, as for the Rust function) and stacks.
    value: &'a SecretValue,
    kms_key: &'a str,
}

impl PeerSetup<'_> {
    /// `python -m awslambdaric MODULE.handler` in the peers' directory, with the extension
    /// as a layer would add it (AWS's agent's layer is made in `layer`).
    fn runtime(
        &self,
        peer: &Peer,
        layer: &Path,
        environment: &BTreeMap<String, String>,
    ) -> Result<secret_loader_harness::Environment, BenchError> {
        let runtime = secret_loader_harness::Environment::new(self.python)
            .args(["-m", "awslambdaric", &format!("{}.handler", peer.module)])
            .dir(self.dir);
        Ok(match peer.beside {
            Beside::Nothing => runtime,
            Beside::OurExtension => runtime.extension(&self.extension),
            Beside::AwsAgent => {
                let (agent, script) = self.agent.as_ref().ok_or_else(|| {
                    BenchError::config("the python-agent peer needs --agent and --agent-extension")
                })?;
                let port = environment
                    .get(PORT_ENV)
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| BenchError::config("the agent's peer has no port"))?;
                runtime.extension(agent_layer(agent, script, port, layer)?)
            }
        })
    }

    /// The peer's configuration: the secret, the parameter's name, and for the extension its
    /// stacks (AWS's two, and the envelope backends behind the memory cache) and port.
    async fn environment(&self, peer: &Peer) -> Result<BTreeMap<String, String>, BenchError> {
        // Where `put` through `ssm://` (the `ssm` backend above) put it.
        let parameter = secret_loader::aws::ssm::parameter_name("", self.id)?;
        let mut environment = BTreeMap::from([
            (
                secret_loader::comparison::SECRET_ID_ENV.to_owned(),
                self.id.to_string(),
            ),
            ("SECRET_LOADER_BENCH_PARAMETER_NAME".to_owned(), parameter),
            // Lambda always sets it; the extension's header must equal it.
            ("AWS_SESSION_TOKEN".to_owned(), random_hex(16)),
        ]);
        environment.extend(self.network.iter().cloned());
        if peer.function == PACKAGE_PEER {
            let bare_and_memory: BTreeMap<String, String> = stacks(self.backends, self.kms_key)
                .into_iter()
                .filter(|(name, _)| !name.ends_with("+tmp"))
                .collect();
            environment.insert(
                "SECRET_LOADER_BENCH_PACKAGE_STACKS".to_owned(),
                serde_json::to_string(&bare_and_memory).unwrap_or_default(),
            );
            let variables = self
                .backends
                .iter()
                .filter(|b| !matches!(b.seed, Seed::Put));
            seed(
                variables,
                self.id,
                self.value,
                peer.function,
                &mut environment,
            )
            .await?;
        }
        if peer.beside == Beside::Nothing {
            return Ok(environment);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BenchError::config(format!("no free port: {e}")))?
            .port();
        // The peer's code finds either extension on this port (AWS's agent, configured by
        // the file its layer carries, ignores the variable).
        environment.insert(PORT_ENV.to_owned(), port.to_string());
        if peer.beside == Beside::OurExtension {
            let mut stacks = BTreeMap::from([
                ("secretsmanager".to_owned(), "secretsmanager://".to_owned()),
                ("ssm".to_owned(), "ssm://".to_owned()),
            ]);
            let mut generic = Vec::new();
            for backend in self.backends {
                if matches!(backend.name, "s3+kms" | "s3+sse-kms" | "file+kms") {
                    let join = if backend.url.contains('?') { '&' } else { '?' };
                    stacks.insert(
                        backend.name.to_owned(),
                        format!("{}{join}memory_ttl=5m", backend.url),
                    );
                    generic.push(backend.name);
                }
            }
            environment.extend([
                (
                    "SECRET_LOADER_EXTENSION_STACKS".to_owned(),
                    serde_json::to_string(&stacks).unwrap_or_default(),
                ),
                (
                    "SECRET_LOADER_BENCH_EXTENSION_SOURCES".to_owned(),
                    generic.join(","),
                ),
            ]);
        }
        Ok(environment)
    }
}

/// The variable that gives a peer its extension's port (AWS's extension reads it too).
const PORT_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";

/// AWS's agent's layer in `layer`, as the agent's README builds it (`extensions/` holding the
/// sample script): the script as AWS wrote it, but for the agent's path (there is no `/opt`
/// here) and its port (a free one, from the configuration file the agent is started with,
/// not the shared 2773). Returns the script's path. Refuses a script that does not say what
/// this expects, rather than run something else.
fn agent_layer(
    agent: &Path,
    script: &Path,
    port: u16,
    layer: &Path,
) -> Result<PathBuf, BenchError> {
    let text = std::fs::read_to_string(script)
        .map_err(|e| BenchError::config(format!("cannot read {}: {e}", script.display())))?;
    for expected in [SAMPLE_AGENT_START, SAMPLE_AGENT_PING] {
        if text.matches(expected).count() != 1 {
            return Err(BenchError::config(format!(
                "{} is not the sample extension this harness knows: `{expected}` is not in it once",
                script.display()
            )));
        }
    }
    let config = layer.join("agent.toml");
    std::fs::write(&config, format!("http_port = {port}\n"))
        .map_err(|e| BenchError::config(format!("cannot write {}: {e}", config.display())))?;
    let quote = |path: &Path| {
        let text = path.display().to_string();
        if text.contains('\'') {
            Err(BenchError::config(format!("{text}: a quote in the path")))
        } else {
            Ok(format!("'{text}'"))
        }
    };
    let text = text
        .replace(
            SAMPLE_AGENT_START,
            &format!("{} --config {} &", quote(agent)?, quote(&config)?),
        )
        .replace(SAMPLE_AGENT_PING, &format!("http://localhost:{port}/ping"));
    let extensions = layer.join("extensions");
    let path = extensions.join(SAMPLE_EXTENSION_NAME);
    let written = std::fs::create_dir_all(&extensions)
        .and_then(|()| std::fs::write(&path, text))
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        });
    written.map_err(|e| BenchError::config(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Whether `url` is on this machine.
fn loopback(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| url.starts_with(prefix))
}

/// Whether the AWS calls go to an emulator on this machine (`AWS_ENDPOINT_URL`).
fn emulator() -> bool {
    std::env::var("AWS_ENDPOINT_URL").is_ok_and(|url| loopback(&url))
}

/// Each backend bare, behind the memory cache, and behind the encrypted /tmp cache.
fn stacks(backends: &[Backend], kms_key: &str) -> BTreeMap<String, String> {
    let mut stacks = BTreeMap::new();
    for backend in backends {
        let (name, url) = (backend.name, &backend.url);
        let join = if url.contains('?') { '&' } else { '?' };
        stacks.insert(name.to_owned(), url.clone());
        stacks.insert(
            format!("{name}+memory"),
            format!("{url}{join}memory_ttl=5m"),
        );
        if backend.tmp {
            stacks.insert(
                format!("{name}+tmp"),
                format!("{url}{join}tmp_ttl=1h&tmp_kms_key_id={kms_key}"),
            );
        }
    }
    stacks
}

/// A backend of the comparison and how it is measured.
struct Backend {
    name: &'static str,
    url: String,
    /// Measured behind the encrypted `/tmp` cache too (not for variables, which are
    /// already in the process: a `/tmp` hit could only be slower).
    tmp: bool,
    /// How the secret gets there.
    seed: Seed,
}

/// How `bench local` puts the secret into a backend.
enum Seed {
    /// `put` through the backend's store.
    Put,
    /// Sealed for the function (`secret-loader seal --function`) into this variable.
    SealedVariable(String),
    /// In plain text in this variable.
    PlainVariable(String),
}

/// The comparison's backends, each named as its stacks are.
fn backends(
    bucket: &str,
    kms_key: &str,
    file_root: &Path,
    id: &SecretId,
    emulator: bool,
) -> Vec<Backend> {
    let variable = |prefix: &str| secret_loader::env::variable_name(prefix, id);
    // The emulator's endpoints are `localhost` on the TLS network: no bucket subdomains.
    let path_style = if emulator {
        "&force_path_style=true"
    } else {
        ""
    };
    vec![
        Backend {
            name: "secretsmanager",
            url: "secretsmanager://".into(),
            tmp: true,
            seed: Seed::Put,
        },
        Backend {
            name: "ssm",
            url: format!("ssm://?kms_key_id={kms_key}"),
            tmp: true,
            seed: Seed::Put,
        },
        Backend {
            name: "s3+kms",
            url: format!("s3+kms://{bucket}/bench/envelope?kms_key_id={kms_key}{path_style}"),
            tmp: true,
            seed: Seed::Put,
        },
        Backend {
            name: "s3+sse-kms",
            url: format!("s3+sse-kms://{bucket}/bench/sse-kms?kms_key_id={kms_key}{path_style}"),
            tmp: true,
            seed: Seed::Put,
        },
        Backend {
            name: "file+kms",
            url: format!("file+kms://{}?kms_key_id={kms_key}", file_root.display()),
            tmp: true,
            seed: Seed::Put,
        },
        Backend {
            name: "env+kms",
            url: format!("env+kms://?prefix={SEALED_PREFIX}&kms_key_id={kms_key}"),
            tmp: false,
            seed: Seed::SealedVariable(variable(SEALED_PREFIX)),
        },
        Backend {
            name: "env",
            url: format!("env://?prefix={PLAIN_PREFIX}"),
            tmp: false,
            seed: Seed::PlainVariable(variable(PLAIN_PREFIX)),
        },
    ]
}

/// Variable prefix of the `env+kms` backend's secret.
const SEALED_PREFIX: &str = "SEALED_";
/// Variable prefix of the `env` baseline's secret.
const PLAIN_PREFIX: &str = "PLAIN_";

/// Puts `value` where each backend reads it: stores through `put`, variables into
/// `environment` (sealed for `function`, as `secret-loader seal --function` does).
async fn seed(
    backends: impl IntoIterator<Item = &Backend>,
    id: &SecretId,
    value: &SecretValue,
    function: &str,
    environment: &mut BTreeMap<String, String>,
) -> Result<(), BenchError> {
    for backend in backends {
        eprintln!("secret-loader: seeding `{id}` into {}", backend.name);
        let config = Config::from_url(&backend.url)?;
        match (&backend.seed, &config.source) {
            (Seed::Put, _) => {
                config.build_store().await?.put(id, value).await?;
            }
            (Seed::SealedVariable(variable), secret_loader::SourceConfig::EnvKms(env)) => {
                let sdk = secret_loader::aws::load_sdk_config(&env.aws).await?;
                let sealed = secret_loader::EnvKmsSource::from_config(&sdk, env)
                    .await
                    .seal(id, value, Some(function))
                    .await?;
                environment.insert(variable.clone(), sealed);
            }
            (Seed::PlainVariable(variable), _) => {
                let text = value.expose_str().ok_or_else(|| {
                    BenchError::config("the bench value is text; this can't happen")
                })?;
                environment.insert(variable.clone(), text.to_owned());
            }
            (Seed::SealedVariable(_), other) => {
                return Err(BenchError::config(format!(
                    "{}: a sealed variable needs an env+kms:// source, not {}://",
                    backend.name,
                    other.scheme()
                )));
            }
        }
    }
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // The system's generator does not fail on Linux; a zeroed name is still a valid name.
    let _ = aws_lc_rs::rand::fill(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_invocations_spread_over_the_cold_starts() {
        assert_eq!(warm_per_round(3, 7), [3, 2, 2]);
        assert_eq!(warm_per_round(2, 0), [0, 0]);
        assert_eq!(warm_per_round(0, 4), [4]);
    }

    #[test]
    fn every_backend_runs_bare_and_behind_each_cache_that_makes_sense() {
        let id = SecretId::new("bench/api-key").unwrap();
        let stacks = stacks(&backends("b", "k", Path::new("/mnt/efs"), &id, false), "k");
        // Seven backends bare and behind memory; all but the two variable ones behind /tmp.
        assert_eq!(stacks.len(), 7 * 2 + 5);
        assert!(!stacks.contains_key("env+tmp") && !stacks.contains_key("env+kms+tmp"));
        assert_eq!(stacks["env+kms"], "env+kms://?prefix=SEALED_&kms_key_id=k");
        assert_eq!(
            stacks["ssm+tmp"],
            "ssm://?kms_key_id=k&tmp_ttl=1h&tmp_kms_key_id=k"
        );
        assert_eq!(
            stacks["secretsmanager+memory"],
            "secretsmanager://?memory_ttl=5m"
        );
        assert_eq!(
            stacks["s3+kms+tmp"],
            "s3+kms://b/bench/envelope?kms_key_id=k&tmp_ttl=1h&tmp_kms_key_id=k"
        );
        for url in stacks.values() {
            Config::from_url(url).unwrap();
        }
    }

    #[test]
    fn function_errors_name_type_and_message() {
        let body =
            br#"{"errorType":"SecretLoader.InvalidRequest","errorMessage":"invalid request: x"}"#;
        assert_eq!(
            function_error("Unhandled", body),
            "Unhandled: SecretLoader.InvalidRequest: invalid request: x"
        );
        assert_eq!(function_error("Unhandled", b"not json"), "Unhandled: ?: ?");
    }
}
