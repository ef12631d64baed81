//! The comparison Lambda's measurement: one secret read through every configured stack
//! (a backend with or without cache layers), timed the way a function pays for it.
//!
//! * **Init** (once per execution environment): building each stack from its URL, clients and
//!   key lookups included.
//! * **First read** (once per execution environment): the first `get` through each stack.
//! * **Warm reads** (every invocation): `warm_reads` more `get`s, reported as p50 / p90 / max.
//!
//! One failing stack is reported as an error row; it never hides the others' numbers. The
//! handler is generic over [`SecretSource`], so it runs the same on real backends, on the
//! emulator and on in-memory sources in tests.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rustdoc::broken_intra_doc_links)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secret_loader::comparison::{
    Calls, Copied, CopyRequest, ErrorReport, MAX_WARM_READS, Request, Response, SECRET_ID_ENV,
    STACKS_ENV, StackReport, WarmStats, process_cpu_time,
};
use secret_loader::{Config, Error, SecretId, SecretSource, VersionSelector};

use secret_loader::calls::{CallCounter, difference};

/// Why an invocation failed as a whole (a stack failing is data, not this).
#[derive(Debug)]
pub enum HandlerError {
    /// The request asks for something out of bounds.
    InvalidRequest(String),
    /// A copy between stacks failed.
    CopyFailed(ErrorReport),
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidRequest(reason) => write!(f, "invalid request: {reason}"),
            Self::CopyFailed(error) => write!(f, "copy failed: {} ({})", error.message, error.kind),
        }
    }
}

impl std::error::Error for HandlerError {}

impl HandlerError {
    /// The stable Lambda `errorType` of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "SecretLoader.InvalidRequest",
            Self::CopyFailed(_) => "SecretLoader.CopyFailed",
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(err: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.error_type().into(),
            error_message: err.to_string(),
        }
    }
}

/// The function handler: measures, logs the numbers as EMF lines on stdout, answers them.
///
/// # Errors
/// As [`Bench::handle`].
pub async fn function_handler(
    bench: &Bench,
    event: lambda_runtime::LambdaEvent<Request>,
) -> Result<Response, HandlerError> {
    let response = bench.handle(&event.payload).await?;
    for line in emf_lines(&response) {
        println!("{line}");
    }
    Ok(response)
}

/// A stack's source, or why it could not be built.
pub type BuiltSource = Result<Arc<dyn SecretSource>, ErrorReport>;

/// A built (or failed) stack.
struct Stack {
    name: String,
    /// The URL it was built from (none for sources built elsewhere).
    url: Option<String>,
    source: BuiltSource,
    init: Duration,
    /// The process's CPU time spent building it (none for sources built elsewhere).
    init_cpu: Option<Duration>,
    /// The stack's counter, and what it counted while the stack was built: calls, new
    /// connections.
    calls: Option<(CallCounter, Calls, u64)>,
    first_read_done: AtomicBool,
}

/// The measurement state of one execution environment.
pub struct Bench {
    secret_id: SecretId,
    stacks: Vec<Stack>,
    envelope_warm_up: Option<Duration>,
    /// The process's CPU time when the bench was built: its INIT's, from the process's start.
    init_cpu: Option<Duration>,
    invocations: AtomicU64,
}

impl Bench {
    /// Builds each stack from its URL (`name → URL`), timing each build and counting its
    /// AWS calls (each stack has its own clients and its own counter). A stack that fails to
    /// build is kept as an error row.
    pub async fn build(secret_id: SecretId, stacks: &BTreeMap<String, String>) -> Self {
        let envelope_warm_up = warm_up_envelopes().await;
        let mut built = Vec::with_capacity(stacks.len());
        for (name, url) in stacks {
            let counter = CallCounter::new();
            let cpu = process_cpu_time();
            let started = Instant::now();
            let source = match Config::from_url(url) {
                Ok(config) => config.build_with_http_client(counter.http_client()).await,
                Err(err) => Err(err),
            };
            let init = started.elapsed();
            let init_cpu = process_cpu_time().saturating_sub(cpu);
            let init_calls = counter.snapshot();
            let init_connections = counter.connections();
            built.push(Stack {
                name: name.clone(),
                url: Some(url.clone()),
                source: source.map_err(|e| ErrorReport::from(&e)),
                init,
                init_cpu: Some(init_cpu),
                calls: Some((counter, init_calls, init_connections)),
                first_read_done: AtomicBool::new(false),
            });
        }
        let mut bench = Self::new(secret_id, built, envelope_warm_up);
        bench.init_cpu = Some(process_cpu_time());
        bench
    }

    /// A bench over sources built elsewhere (tests, embedders): `(name, source, init time)`.
    pub fn from_sources(secret_id: SecretId, stacks: Vec<(String, BuiltSource, Duration)>) -> Self {
        let stacks = stacks
            .into_iter()
            .map(|(name, source, init)| Stack {
                name,
                url: None,
                source,
                init,
                init_cpu: None,
                calls: None,
                first_read_done: AtomicBool::new(false),
            })
            .collect();
        Self::new(secret_id, stacks, None)
    }

    fn new(secret_id: SecretId, stacks: Vec<Stack>, envelope_warm_up: Option<Duration>) -> Self {
        Self {
            secret_id,
            stacks,
            envelope_warm_up,
            init_cpu: None,
            invocations: AtomicU64::new(0),
        }
    }

    /// Builds the bench from [`SECRET_ID_ENV`] and [`STACKS_ENV`].
    ///
    /// # Errors
    /// A message naming the variable that is missing or malformed.
    pub async fn from_env() -> Result<Self, String> {
        let id = std::env::var(SECRET_ID_ENV).map_err(|_| format!("{SECRET_ID_ENV} is not set"))?;
        let secret_id = SecretId::new(id).map_err(|e| format!("{SECRET_ID_ENV}: {e}"))?;
        let stacks = std::env::var(STACKS_ENV).map_err(|_| format!("{STACKS_ENV} is not set"))?;
        let stacks: BTreeMap<String, String> = serde_json::from_str(&stacks).map_err(|e| {
            format!("{STACKS_ENV} must be a JSON object of name to source URL: {e}")
        })?;
        if stacks.is_empty() {
            return Err(format!("{STACKS_ENV} names no stack"));
        }
        Ok(Self::build(secret_id, &stacks).await)
    }

    /// Handles one invocation.
    ///
    /// # Errors
    /// [`HandlerError::InvalidRequest`] when `warm_reads` is out of bounds or a copy names an
    /// unknown stack, [`HandlerError::CopyFailed`] when a copy fails; a stack failing to
    /// measure is reported in the response instead.
    pub async fn handle(&self, request: &Request) -> Result<Response, HandlerError> {
        if let Some(copy) = &request.copy {
            let copied = self.copy(copy).await?;
            let invocations = self.invocations.load(Ordering::Relaxed);
            return Ok(Response {
                cold: invocations == 0,
                invocation: invocations,
                secret_id: self.secret_id.to_string(),
                stacks: Vec::new(),
                copied: Some(copied),
                envelope_warm_up_ms: None,
                init_cpu_ms: None,
            });
        }
        if request.warm_reads > MAX_WARM_READS {
            return Err(HandlerError::InvalidRequest(format!(
                "warm_reads {} is more than {MAX_WARM_READS}",
                request.warm_reads
            )));
        }
        let invocation = self.invocations.fetch_add(1, Ordering::Relaxed) + 1;
        let cold = invocation == 1;
        let mut stacks = Vec::with_capacity(self.stacks.len());
        for stack in &self.stacks {
            stacks.push(
                self.measure(stack, cold, request.warm_reads, request.generation)
                    .await,
            );
        }
        Ok(Response {
            cold,
            invocation,
            secret_id: self.secret_id.to_string(),
            stacks,
            copied: None,
            envelope_warm_up_ms: self.envelope_warm_up.filter(|_| cold).map(millis),
            init_cpu_ms: self.init_cpu.filter(|_| cold).map(millis),
        })
    }

    /// Reads the secret through stack `from` and stores it in stack `to`'s backend.
    async fn copy(&self, copy: &CopyRequest) -> Result<Copied, HandlerError> {
        let stack = |name: &str| {
            self.stacks
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| HandlerError::InvalidRequest(format!("no stack `{name}`")))
        };
        let from = stack(&copy.from)?;
        let to = stack(&copy.to)?.url.as_deref().ok_or_else(|| {
            HandlerError::InvalidRequest(format!("stack `{}` has no URL to write to", copy.to))
        })?;
        let source = from
            .source
            .as_ref()
            .map_err(|e| HandlerError::CopyFailed(e.clone()))?;
        let failed = |e: Error| HandlerError::CopyFailed(ErrorReport::from(&e));
        let secret = source
            .get(&self.secret_id, &VersionSelector::Current)
            .await
            .map_err(failed)?;
        let store = Config::from_url(to)
            .map_err(failed)?
            .build_store()
            .await
            .map_err(failed)?;
        let outcome = store
            .put(&self.secret_id, secret.value())
            .await
            .map_err(failed)?;
        tracing::info!(from = %copy.from, to = %copy.to, id = %self.secret_id, "copied the secret");
        Ok(Copied {
            request: copy.clone(),
            created: outcome.created,
            version_id: outcome.version_id,
        })
    }

    async fn measure(
        &self,
        stack: &Stack,
        cold: bool,
        warm_reads: u32,
        generation: bool,
    ) -> StackReport {
        let mut report = StackReport {
            name: stack.name.clone(),
            source: None,
            init_ms: cold.then(|| millis(stack.init)),
            first_read_ms: None,
            warm: None,
            error: None,
            init_calls: cold
                .then(|| stack.calls.as_ref().map(|(_, init, _)| init.clone()))
                .flatten(),
            first_read_calls: None,
            warm_calls: Calls::new(),
            init_connections: cold
                .then(|| stack.calls.as_ref().map(|(_, _, connections)| *connections))
                .flatten(),
            first_read_connections: None,
            warm_connections: None,
            init_cpu_ms: stack.init_cpu.filter(|_| cold).map(millis),
            first_read_cpu_ms: None,
            warm_cpu_ms: None,
            compare_with: None,
            generation: None,
        };
        // The last value read, for `generation` only.
        let mut last = None;
        let calls = || {
            stack
                .calls
                .as_ref()
                .map(|(counter, _, _)| counter.snapshot())
        };
        let connections = || {
            stack
                .calls
                .as_ref()
                .map(|(counter, _, _)| counter.connections())
        };
        let source = match &stack.source {
            Ok(source) => source,
            Err(err) => {
                report.error = Some(err.clone());
                return report;
            }
        };
        report.source = Some(source.to_string());
        if !stack.first_read_done.swap(true, Ordering::Relaxed) {
            let before = calls();
            let opened = connections();
            let cpu = process_cpu_time();
            let started = Instant::now();
            match source.get(&self.secret_id, &VersionSelector::Current).await {
                Ok(secret) => {
                    report.first_read_ms = Some(millis(started.elapsed()));
                    report.first_read_cpu_ms = Some(millis(process_cpu_time().saturating_sub(cpu)));
                    last = Some(secret);
                }
                Err(err) => report.error = Some(ErrorReport::from(&err)),
            }
            report.first_read_calls = before.zip(calls()).map(|(b, a)| difference(&a, &b));
            report.first_read_connections = opened.zip(connections()).map(|(b, a)| a - b);
        }
        let before = calls();
        let opened = connections();
        let mut samples = Vec::with_capacity(warm_reads as usize);
        let cpu = process_cpu_time();
        for _ in 0..warm_reads {
            let started = Instant::now();
            match source.get(&self.secret_id, &VersionSelector::Current).await {
                Ok(secret) => {
                    samples.push(millis(started.elapsed()));
                    if generation {
                        last = Some(secret);
                    }
                }
                Err(err) => {
                    report.error.get_or_insert_with(|| ErrorReport::from(&err));
                }
            }
        }
        let warm_cpu = process_cpu_time().saturating_sub(cpu);
        report.warm = warm_stats(&mut samples);
        report.warm_cpu_ms = report.warm.as_ref().map(|_| millis(warm_cpu));
        if let (Some(before), Some(after)) = (before, calls()) {
            report.warm_calls = difference(&after, &before);
        }
        report.warm_connections = opened.zip(connections()).map(|(b, a)| a - b);
        if generation {
            report.generation = last
                .as_ref()
                .and_then(|secret| secret_loader::comparison::generation_of(secret.value()));
        }
        report
    }
}

/// Seals and opens one message with a local key, timed: the envelope engine's one-time cost
/// per process (with the Dafny-generated SDK, ~22 ms, most of it AWS-LC seeding its DRBG;
/// now the kernel's random bytes and no DRBG), paid here instead of by the first envelope
/// stack. `None` if it fails (the stacks then report their own errors).
async fn warm_up_envelopes() -> Option<Duration> {
    use secret_loader::secrecy::SecretSlice;
    use secret_loader::{AlgorithmSuite, Envelope, SecretValue};

    let started = Instant::now();
    let key = SecretSlice::from(vec![0x5a; 32]);
    let envelope = Envelope::raw_aes("secret-loader", "warm-up", &key, AlgorithmSuite::default())
        .await
        .ok()?;
    let id = SecretId::new("secret-loader/warm-up").ok()?;
    let sealed = envelope
        .seal("tmp-cache", &id, &SecretValue::text("warm-up"))
        .await
        .ok()?;
    envelope.open("tmp-cache", &id, sealed).await.ok()?;
    Some(started.elapsed())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// p50 / p90 / max of `samples` (nearest rank), or `None` for no samples.
///
/// ```
/// let mut samples = vec![4.0, 1.0, 3.0, 2.0];
/// let stats = secret_loader_lambda::warm_stats(&mut samples).unwrap();
/// assert_eq!((stats.p50_ms, stats.p90_ms, stats.max_ms), (2.0, 4.0, 4.0));
/// ```
pub fn warm_stats(samples: &mut [f64]) -> Option<WarmStats> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank =
        |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    Some(WarmStats {
        count: samples.len() as u32,
        p50_ms: rank(0.50),
        p90_ms: rank(0.90),
        max_ms: samples[samples.len() - 1],
        samples_ms: samples.to_vec(),
    })
}

/// CloudWatch Embedded Metric Format lines for `response`: one per stack and phase
/// (`init`, `first_read`, `warm_p50`, `warm_p90`), metric `Latency` in milliseconds,
/// dimensions `Stack` and `Phase`, namespace `SecretLoader`.
pub fn emf_lines(response: &Response) -> Vec<String> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut lines = Vec::new();
    for stack in &response.stacks {
        let phases = [
            ("init", stack.init_ms),
            ("first_read", stack.first_read_ms),
            ("warm_p50", stack.warm.as_ref().map(|w| w.p50_ms)),
            ("warm_p90", stack.warm.as_ref().map(|w| w.p90_ms)),
        ];
        for (phase, value) in phases {
            let Some(value) = value else { continue };
            let line = serde_json::json!({
                "_aws": {
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [{
                        "Namespace": "SecretLoader",
                        "Dimensions": [["Stack", "Phase"]],
                        "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}],
                    }],
                },
                "Stack": stack.name,
                "Phase": phase,
                "Cold": response.cold,
                "Latency": value,
            });
            lines.push(line.to_string());
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use lambda_runtime::{Context, Diagnostic, LambdaEvent};
    use secret_loader::{InMemorySource, SecretStore, SecretValue};

    use super::*;

    async fn bench() -> Bench {
        let id = SecretId::new("bench/api").unwrap();
        let holds = Arc::new(InMemorySource::new());
        holds
            .put(&id, &SecretValue::text("LAMBDA-CANARY"))
            .await
            .unwrap();
        let empty: BuiltSource = Ok(Arc::new(InMemorySource::new()));
        let broken: BuiltSource = Err(ErrorReport {
            kind: "InvalidConfig".into(),
            message: "invalid configuration: no AWS region".into(),
        });
        Bench::from_sources(
            id,
            vec![
                ("a-good".into(), Ok(holds), Duration::from_millis(3)),
                ("b-empty".into(), empty, Duration::from_millis(1)),
                ("c-broken".into(), broken, Duration::from_millis(2)),
            ],
        )
    }

    fn event(warm_reads: u32) -> LambdaEvent<Request> {
        LambdaEvent::new(
            Request {
                warm_reads,
                copy: None,
                generation: false,
            },
            Context::default(),
        )
    }

    #[tokio::test]
    async fn cold_then_warm_with_failing_stacks_as_error_rows() {
        let bench = bench().await;
        let cold = function_handler(&bench, event(5)).await.unwrap();
        assert!(cold.cold);
        assert_eq!(cold.invocation, 1);
        let [good, empty, broken] = &cold.stacks[..] else {
            panic!("{cold:?}")
        };
        assert_eq!(good.init_ms, Some(3.0));
        assert!(good.first_read_ms.is_some() && good.error.is_none());
        assert_eq!(good.warm.as_ref().unwrap().count, 5);
        assert_eq!(good.source.as_deref(), Some("memory"));
        assert_eq!(empty.error.as_ref().unwrap().kind, "NotFound");
        assert!(empty.warm.is_none() && empty.first_read_ms.is_none());
        assert_eq!(broken.error.as_ref().unwrap().kind, "InvalidConfig");
        assert!(broken.source.is_none() && broken.warm.is_none());

        let warm = function_handler(&bench, event(3)).await.unwrap();
        assert!(!warm.cold);
        assert_eq!(warm.invocation, 2);
        let good = &warm.stacks[0];
        assert_eq!((good.init_ms, good.first_read_ms), (None, None));
        assert_eq!(good.warm.as_ref().unwrap().count, 3);

        let json = serde_json::to_string(&warm).unwrap();
        assert!(!json.contains("LAMBDA-CANARY"));
        let back: Response = serde_json::from_str(&json).unwrap();
        assert_eq!(back, warm);
    }

    #[tokio::test]
    async fn out_of_bounds_requests_have_a_stable_error_type() {
        let bench = bench().await;
        let err = function_handler(&bench, event(MAX_WARM_READS + 1))
            .await
            .unwrap_err();
        let diagnostic = Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "SecretLoader.InvalidRequest");
        assert!(diagnostic.error_message.contains("warm_reads"));
        // The rejected request did not count as the environment's first invocation.
        assert!(function_handler(&bench, event(0)).await.unwrap().cold);
    }

    #[test]
    fn requests_default_and_refuse_unknown_fields() {
        let request: Request = serde_json::from_str("{}").unwrap();
        assert_eq!(request.warm_reads, 10);
        assert!(serde_json::from_str::<Request>(r#"{"warm":1}"#).is_err());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let stats = warm_stats(&mut samples).unwrap();
        assert_eq!(
            (stats.count, stats.p50_ms, stats.p90_ms, stats.max_ms),
            (10, 5.0, 9.0, 10.0)
        );
        assert!(warm_stats(&mut []).is_none());
    }

    #[tokio::test]
    async fn emf_lines_carry_one_metric_per_stack_and_phase() {
        let bench = bench().await;
        let response = bench
            .handle(&Request {
                warm_reads: 2,
                copy: None,
                generation: false,
            })
            .await
            .unwrap();
        let lines = emf_lines(&response);
        // a-good: init, first_read, warm_p50, warm_p90; b-empty: init; c-broken: init.
        assert_eq!(lines.len(), 6);
        for line in &lines {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                value["_aws"]["CloudWatchMetrics"][0]["Namespace"],
                "SecretLoader"
            );
            assert!(value["Latency"].is_number());
            assert!(value["Stack"].is_string() && value["Phase"].is_string());
        }
    }
}
