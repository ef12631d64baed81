//! The comparison's wire types: what the comparison function (`bootstrap`) is asked and
//! answers, and what the drivers (`secret-loader bench`) read back. Both sides use this one
//! module, so the function and the report can't drift apart. (Feature `comparison`.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Requests sent, by AWS service (`kms`, `s3`, `secretsmanager`, ...).
pub type Calls = BTreeMap<String, u64>;

/// Environment variable naming the secret every stack reads.
pub const SECRET_ID_ENV: &str = "SECRET_LOADER_BENCH_SECRET_ID";
/// Environment variable holding the stacks: a JSON object of name → source URL (with cache
/// options), e.g. `{"secretsmanager": "secretsmanager://", "s3-kms+memory": "s3+kms://b/p?kms_key_id=k&memory_ttl=5m"}`.
pub const STACKS_ENV: &str = "SECRET_LOADER_BENCH_STACKS";
/// The most warm reads one invocation may ask for.
pub const MAX_WARM_READS: u32 = 1000;

/// An invocation's request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Reads per stack after the first one (default 10, at most [`MAX_WARM_READS`]).
    #[serde(default = "default_warm_reads")]
    pub warm_reads: u32,
    /// Report, per stack, the `generation` of the value this invocation last read (see
    /// [`StackReport::generation`]): `bench local`'s rotation drill.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generation: bool,
    /// Instead of measuring, copy the secret from one stack into another stack's backend:
    /// how a deployment seeds EFS, which only the function can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyRequest>,
}

/// Which stacks a copy goes between (by name).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The stack read from.
    pub from: String,
    /// The stack whose backend is written to.
    pub to: String,
}

/// What a copy did.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Copied {
    /// The stacks.
    pub request: CopyRequest,
    /// Whether the secret was new in the target backend.
    pub created: bool,
    /// The new version's id, where the backend has versions.
    pub version_id: Option<String>,
}

fn default_warm_reads() -> u32 {
    10
}

/// An error as data in the response: its kind and one line, never a secret value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorReport {
    /// The error kind (`NotFound`, `Transient`, ...).
    pub kind: String,
    /// The error and its causes, on one line.
    pub message: String,
}

impl From<&Error> for ErrorReport {
    fn from(err: &Error) -> Self {
        Self {
            kind: format!("{:?}", err.kind()),
            message: err.display_chain().to_string(),
        }
    }
}

/// Warm-read latencies of one stack in one invocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WarmStats {
    /// Reads made.
    pub count: u32,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// Slowest, milliseconds.
    pub max_ms: f64,
    /// Every read, milliseconds, sorted: for percentiles across invocations (p99).
    pub samples_ms: Vec<f64>,
}

/// One stack's numbers in one invocation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StackReport {
    /// The stack's name.
    pub name: String,
    /// What the stack is (`memory(s3+kms(bucket/prefix))`), when it could be built.
    pub source: Option<String>,
    /// Building the stack, milliseconds; in the environment's first invocation only.
    pub init_ms: Option<f64>,
    /// The environment's first read through the stack, milliseconds; once per environment.
    pub first_read_ms: Option<f64>,
    /// This invocation's warm reads, when any succeeded.
    pub warm: Option<WarmStats>,
    /// The first error this invocation met on this stack (building or reading).
    pub error: Option<ErrorReport>,
    /// AWS requests sent while building the stack, by service; with `init_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_calls: Option<Calls>,
    /// AWS requests sent by the first read, by service; with `first_read_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_read_calls: Option<Calls>,
    /// AWS requests sent by this invocation's warm reads, by service.
    #[serde(default)]
    pub warm_calls: Calls,
    /// New connections (each one TLS handshake to an HTTPS endpoint) opened while building
    /// the stack; with `init_ms`. Counted where the client resolves an endpoint's name, so
    /// not for literal-IP endpoints; absent where not counted (the Python peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_connections: Option<u64>,
    /// New connections opened by the first read; with `first_read_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_read_connections: Option<u64>,
    /// New connections opened by this invocation's warm reads (0 when kept alive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_connections: Option<u64>,
    /// CPU time (user + system, every thread of the process) spent building the stack, ms;
    /// with `init_ms`. Absent where not measured (older records, a Python peer's one stack,
    /// which the process's `init_cpu_ms` covers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cpu_ms: Option<f64>,
    /// CPU time of the first read, ms; with `first_read_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_read_cpu_ms: Option<f64>,
    /// CPU time of this invocation's warm reads together, ms; with `warm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_cpu_ms: Option<f64>,
    /// For a peer (a Python function doing what users do today): the Rust stack that does
    /// the same thing, which the report sets beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_with: Option<String>,
    /// When the request asked: the whole-number `generation` field of the JSON value the
    /// invocation's last read of this stack returned (absent when the value has none). The
    /// rotation drill writes a new generation into every store and watches each stack for
    /// it; the value itself never leaves the function, and no other field is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// The `generation` field of a JSON object value, when it is a whole number ([`StackReport::generation`]).
#[must_use]
pub fn generation_of(value: &crate::SecretValue) -> Option<u64> {
    #[derive(Deserialize)]
    struct Marker {
        generation: Option<u64>,
    }
    serde_json::from_slice::<Marker>(value.expose_bytes())
        .ok()?
        .generation
}

/// An invocation's response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// True for the first invocation of this execution environment.
    pub cold: bool,
    /// Invocations of this environment so far, this one included.
    pub invocation: u64,
    /// The secret read.
    pub secret_id: String,
    /// One entry per stack, in name order (none for a copy).
    pub stacks: Vec<StackReport>,
    /// What a copy request did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<Copied>,
    /// The Encryption SDK's first message in this process (a local-key seal and open before
    /// any stack is built), milliseconds; in the environment's first invocation only. Every
    /// envelope stack (`s3+kms`, `file+kms`, an encrypted `/tmp` layer) pays this once per
    /// process on top of its own numbers; measured apart so it doesn't land on whichever
    /// stack happens to run first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_warm_up_ms: Option<f64>,
    /// The process's CPU time (user + system, all its threads, as the kernel accounts it to
    /// the process) from its start to the end of its INIT, ms: what Lambda's CPU share
    /// throttles while INIT runs. In the environment's first invocation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_cpu_ms: Option<f64>,
}

/// The calling process's CPU time so far (user + system, every thread, those ended
/// included): `CLOCK_PROCESS_CPUTIME_ID`, nanosecond resolution.
#[must_use]
pub fn process_cpu_time() -> std::time::Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}
