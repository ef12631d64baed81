//! The comparison report: the raw record of a run ([`Run`], written as `raw.json`), and what
//! is made from it: a Markdown table per stack (`report.md`) and a chart (`report.svg`).
//!
//! Everything here is a pure function of the `Run` and the prices, so a recorded run
//! renders the same report every time (the golden test holds it to that).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use secret_loader::comparison::Calls;
use secret_loader::comparison::Response;
use serde::{Deserialize, Serialize};

use secret_loader_harness::EndpointStats;

use crate::fleet::{Compute, FleetRate, StackCalls};
use crate::tables::{Prices, Quotas, by_service, with_on_behalf};

/// Where a run ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TargetKind {
    /// `bench local`: the AWS emulator on loopback, the function under the local runner.
    EmulatorLoopback,
    /// `bench lambda`: a deployed function on AWS.
    AwsLambda,
    /// `bench local` against AWS services: the function under the local runner, the calls
    /// to AWS.
    LocalRunnerAws,
}

/// The function a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Target {
    /// Emulator or AWS.
    pub(crate) kind: TargetKind,
    /// The function's name.
    pub(crate) function: String,
    /// The function's region.
    pub(crate) region: String,
    /// `x86_64` or `arm64`.
    pub(crate) architecture: String,
    /// The function's memory size.
    pub(crate) memory_mb: u32,
}

/// What the run was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// Cold starts forced.
    pub(crate) cold: u32,
    /// Warm invocations.
    pub(crate) warm: u32,
    /// Reads per stack per invocation after the environment's first.
    pub(crate) reads: u32,
}

/// Lambda's `REPORT` line for one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReportLine {
    /// `Duration`, ms.
    pub(crate) duration_ms: f64,
    /// `Billed Duration`, ms.
    pub(crate) billed_ms: f64,
    /// `Memory Size`, MB.
    pub(crate) memory_mb: u32,
    /// `Max Memory Used`, MB.
    pub(crate) max_memory_mb: u32,
    /// `Init Duration`, ms: on a cold start only.
    pub(crate) init_ms: Option<f64>,
}

impl ReportLine {
    /// Finds and parses the `REPORT` line in a log tail.
    pub(crate) fn parse(log: &str) -> Option<Self> {
        let line = log.lines().rev().find(|l| l.starts_with("REPORT "))?;
        let mut fields = BTreeMap::new();
        for part in line.split('\t') {
            if let Some((key, value)) = part.split_once(": ") {
                let number = value.split_whitespace().next().unwrap_or_default();
                fields.insert(key.trim().trim_start_matches("REPORT ").to_owned(), number);
            }
        }
        let number = |key: &str| fields.get(key).and_then(|v| v.parse::<f64>().ok());
        Some(Self {
            duration_ms: number("Duration")?,
            billed_ms: number("Billed Duration")?,
            memory_mb: number("Memory Size")? as u32,
            max_memory_mb: number("Max Memory Used")? as u32,
            init_ms: number("Init Duration"),
        })
    }
}

/// One invocation as the driver saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Invocation {
    /// The driver forced a new execution environment before this one.
    pub(crate) forced_cold: bool,
    /// The function's answer, when it answered.
    pub(crate) response: Option<Response>,
    /// The function error (`errorType: errorMessage`) or the call's error, when it failed.
    pub(crate) error: Option<String>,
    /// The `REPORT` line from the log tail.
    pub(crate) report: Option<ReportLine>,
    /// Invoke round trip seen by the driver, ms.
    pub(crate) round_trip_ms: f64,
}

/// The raw record of one run: `raw.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Run {
    /// The function measured.
    pub(crate) target: Target,
    /// When the run started (RFC 3339).
    pub(crate) started: String,
    /// What was asked.
    pub(crate) settings: Settings,
    /// The prices the report used.
    pub(crate) prices: Prices,
    /// Every invocation, in order.
    pub(crate) invocations: Vec<Invocation>,
    /// The quotas the fleet model used (runs recorded before it: the bundled ones).
    #[serde(default)]
    pub(crate) quotas: Quotas,
    /// The rate the fleet model's costs are for.
    #[serde(default)]
    pub(crate) fleet: FleetRate,
    /// The peers (Python functions doing what users do today), run the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) peers: Vec<PeerRun>,
    /// The network `bench local` put in front of the emulator (none: plain HTTP, or AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<NetworkRecord>,
    /// The function's cold starts again under a real CPU quota (`bench local --cpu-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_limited: Option<LimitedRun>,
    /// The rotation drill (`bench local --rotation-ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rotation: Option<RotationRecord>,
}

/// The rotation drill: a new environment read the secret (generation 1) through `stacks`,
/// then generation 2 was made current in every store and the function invoked until every
/// store's stack read it, or twice the TTL and a second had passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RotationRecord {
    /// The caches' TTL, ms.
    pub(crate) ttl_ms: f64,
    /// The time between invocations, ms.
    pub(crate) interval_ms: f64,
    /// From the start of the environment's first invocation (its first reads) to the moment
    /// the last store had the new value, ms.
    pub(crate) first_read_ms_before: f64,
    /// Name → source URL.
    pub(crate) stacks: BTreeMap<String, String>,
    /// The stacks over a store the drill wrote to (the others are variables).
    pub(crate) stored: Vec<String>,
    /// What each stack read in the first invocation.
    pub(crate) before: BTreeMap<String, Option<u64>>,
    /// Each later invocation.
    pub(crate) after: Vec<Observation>,
}

/// One invocation of the drill after the rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Observation {
    /// When it started, ms after the last store had the new value.
    pub(crate) at_ms: f64,
    /// The generation each stack read.
    pub(crate) generations: BTreeMap<String, Option<u64>>,
}

/// Per stack: the last observation that read the old generation and the first that read the
/// new one, ms after the rotation (`None`: not within the drill).
pub(crate) fn staleness(drill: &RotationRecord) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
    drill
        .stacks
        .keys()
        .map(|name| {
            let generation = |o: &Observation| o.generations.get(name).copied().flatten();
            let first_new = drill.after.iter().find(|o| generation(o) == Some(2));
            let last_old = drill
                .after
                .iter()
                .take_while(|o| generation(o) != Some(2))
                .filter(|o| generation(o) == Some(1))
                .last();
            (
                name.clone(),
                (last_old.map(|o| o.at_ms), first_new.map(|o| o.at_ms)),
            )
        })
        .collect()
}

fn rotation_section(drill: &RotationRecord) -> String {
    let mut out = String::new();
    let seconds = |ms: f64| format!("{:.2} s", ms / 1000.0);
    let _ = writeln!(out, "\n## Rotation drill\n");
    let _ = writeln!(
        out,
        "After the run, a new environment read the secret through every backend, bare and \
         behind caches with a TTL of {}; a new value was then made current in every store (a \
         new version in Secrets Manager and Parameter Store, a new object, a new file), and \
         the function was invoked every {}, each stack reading once. Times are from the moment \
         the last store had the new value ({} after the environment's first reads). The \
         variables (`env`, `env+kms`) change only with a configuration update, which starts \
         new environments: the drill leaves them as they are.\n",
        seconds(drill.ttl_ms),
        seconds(drill.interval_ms),
        seconds(drill.first_read_ms_before),
    );
    let _ = writeln!(
        out,
        "| Stack | Cache TTL | Old value last read at | New value first read at |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let end = drill.after.last().map_or(0.0, |o| o.at_ms);
    for (name, (last_old, first_new)) in staleness(drill) {
        let url = drill.stacks.get(&name).map_or("", String::as_str);
        let ttl = if url.contains("memory_version_check=true") {
            format!("{} (memory, version check)", seconds(drill.ttl_ms))
        } else if url.contains("memory_ttl=") {
            format!("{} (memory)", seconds(drill.ttl_ms))
        } else if url.contains("tmp_ttl=") {
            format!("{} (/tmp)", seconds(drill.ttl_ms))
        } else {
            "none".to_owned()
        };
        let old = last_old.map_or_else(|| "–".to_owned(), seconds);
        let new = match first_new {
            Some(at) => seconds(at),
            None if drill.stored.contains(&name) => {
                format!("not within the drill (old through {})", seconds(end))
            }
            None => "never in this environment (a variable)".to_owned(),
        };
        let _ = writeln!(out, "| {name} | {ttl} | {old} | {new} |");
    }
    out
}

/// The function run with its processes under a CPU quota: Lambda's share for a memory size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LimitedRun {
    /// The memory size whose share the quota gave.
    pub(crate) memory_mb: u32,
    /// The share of one CPU.
    pub(crate) share: f64,
    /// How the quota was set (`cgroup CPU quota`).
    pub(crate) mechanism: String,
    /// Every invocation, in order.
    pub(crate) invocations: Vec<Invocation>,
}

/// The network model of a `bench local` run, and what its endpoints saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    /// `tls`: each service behind its own HTTPS endpoint, connections kept alive.
    pub(crate) kind: String,
    /// The round trip added per exchange, ms.
    pub(crate) rtt_ms: f64,
    /// By function (the Rust function, each peer), by service: what the endpoints saw while
    /// it ran (its own calls, and its extension's or agent's).
    pub(crate) functions: BTreeMap<String, BTreeMap<String, EndpointStats>>,
}

/// One peer function's invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PeerRun {
    /// The function's name.
    pub(crate) function: String,
    /// Every invocation, in order.
    pub(crate) invocations: Vec<Invocation>,
}

/// Nearest-rank percentile of sorted `samples`.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

/// One stack's numbers across the run.
#[derive(Debug, Default)]
struct StackSummary {
    source: Option<String>,
    init: Vec<f64>,
    first_read: Vec<f64>,
    cold_total: Vec<f64>,
    warm: Vec<f64>,
    init_calls: Calls,
    inits_counted: u64,
    first_read_calls: Calls,
    first_reads_counted: u64,
    warm_calls: Calls,
    warm_reads_counted: u64,
    errors: BTreeMap<String, u32>,
    /// For a peer's stack: the Rust stack it is set beside.
    compare_with: Option<String>,
}

fn summarize(run: &Run) -> BTreeMap<String, StackSummary> {
    summarize_invocations(&run.invocations)
}

fn summarize_invocations(invocations: &[Invocation]) -> BTreeMap<String, StackSummary> {
    let mut stacks: BTreeMap<String, StackSummary> = BTreeMap::new();
    for response in invocations.iter().filter_map(|i| i.response.as_ref()) {
        for stack in &response.stacks {
            let summary = stacks.entry(stack.name.clone()).or_default();
            if summary.source.is_none() {
                summary.source.clone_from(&stack.source);
            }
            if summary.compare_with.is_none() {
                summary.compare_with.clone_from(&stack.compare_with);
            }
            if let Some(init) = stack.init_ms {
                summary.init.push(init);
                if let Some(calls) = &stack.init_calls {
                    add(&mut summary.init_calls, calls);
                    summary.inits_counted += 1;
                }
            }
            if let Some(first) = stack.first_read_ms {
                summary.first_read.push(first);
                summary
                    .cold_total
                    .push(first + stack.init_ms.unwrap_or(0.0));
                if let Some(calls) = &stack.first_read_calls {
                    add(&mut summary.first_read_calls, calls);
                    summary.first_reads_counted += 1;
                }
            }
            if let Some(warm) = &stack.warm {
                summary.warm.extend(&warm.samples_ms);
                add(&mut summary.warm_calls, &stack.warm_calls);
                summary.warm_reads_counted += u64::from(warm.count);
            }
            if let Some(error) = &stack.error {
                *summary
                    .errors
                    .entry(format!("{}: {}", error.kind, error.message))
                    .or_default() += 1;
            }
        }
    }
    for summary in stacks.values_mut() {
        for samples in [
            &mut summary.init,
            &mut summary.first_read,
            &mut summary.cold_total,
            &mut summary.warm,
        ] {
            samples.sort_by(f64::total_cmp);
        }
    }
    stacks
}

fn add(total: &mut Calls, calls: &Calls) {
    for (service, n) in calls {
        *total.entry(service.clone()).or_default() += n;
    }
}

/// `1.23`, `12.3`, `123`; `0.0123` below 0.1.
pub(crate) fn ms(value: f64) -> String {
    if value < 0.1 {
        format!("{value:.4}")
    } else if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn triple(sorted: &[f64]) -> String {
    match (
        percentile(sorted, 0.5),
        percentile(sorted, 0.9),
        percentile(sorted, 0.99),
    ) {
        (Some(p50), Some(p90), Some(p99)) => {
            format!(
                "{} / {} / {} (n={})",
                ms(p50),
                ms(p90),
                ms(p99),
                sorted.len()
            )
        }
        _ => "–".into(),
    }
}

fn per_read(calls: &Calls, reads: u64) -> BTreeMap<String, f64> {
    calls
        .iter()
        .map(|(service, n)| (service.clone(), *n as f64 / reads.max(1) as f64))
        .collect()
}

fn calls_text(per_read: &BTreeMap<String, f64>, counted: u64) -> String {
    if counted == 0 {
        return "–".into();
    }
    if per_read.is_empty() {
        return "0".into();
    }
    per_read
        .iter()
        .map(|(service, n)| {
            if n.fract() == 0.0 {
                format!("{service} {n}")
            } else {
                format!("{service} {n:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The backend scheme inside a stack description: `memory(s3+kms(b/p))` → `s3+kms`.
fn backend_of(source: &str) -> &str {
    let head = source.rsplit_once('(').map_or(source, |(head, _)| head);
    head.rsplit('(').next().unwrap_or(head)
}

/// Requests per warm read, by service: the calls the function made and those services made
/// on its behalf (billed all the same).
fn billed_requests(summary: &StackSummary, run: &Run) -> BTreeMap<String, f64> {
    let backend = summary.source.as_deref().map_or("", backend_of);
    by_service(&with_on_behalf(
        &per_read(&summary.warm_calls, summary.warm_reads_counted),
        backend,
        &run.quotas.on_behalf,
        run.fleet.on_behalf(),
    ))
}

/// USD for `requests` (by service) at the per-request prices; services without a price are
/// added to `unpriced` and left out.
fn request_cost(
    requests: &BTreeMap<String, f64>,
    prices: &Prices,
    unpriced: &mut Vec<String>,
) -> f64 {
    let mut cost = 0.0;
    for (service, n) in requests {
        match prices.per_request.get(service) {
            Some(price) => cost += n * price,
            None => unpriced.push(service.clone()),
        }
    }
    cost
}

fn dollars(value: f64) -> String {
    if value == 0.0 {
        "$0".into()
    } else if value < 0.0001 {
        format!("${value:.2e}")
    } else {
        format!("${value:.4}")
    }
}

/// The `Init Duration`s of these invocations' `REPORT` lines (cold starts only), sorted.
fn process_inits(invocations: &[Invocation]) -> Vec<f64> {
    sorted(
        invocations
            .iter()
            .filter_map(|i| i.report.as_ref()?.init_ms)
            .collect(),
    )
}

/// p50 of [`process_inits`].
fn process_init_p50(invocations: &[Invocation]) -> Option<f64> {
    percentile(&process_inits(invocations), 0.5)
}

fn p50_p99(sorted: &[f64]) -> String {
    match (percentile(sorted, 0.5), percentile(sorted, 0.99)) {
        (Some(p50), Some(p99)) => format!("{} / {}", ms(p50), ms(p99)),
        _ => "–".into(),
    }
}

fn p50_text(sorted: &[f64]) -> String {
    percentile(sorted, 0.5).map_or_else(|| "–".into(), ms)
}

/// Where AWS documents the latency between the Availability Zones of a Region, which the
/// default round trip stands for.
const AZ_LATENCY_SOURCE: &str = "https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/availability-zones.html";

/// The network model and what its endpoints saw, per function.
fn network_section(network: &NetworkRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## The network model\n\nEach AWS service behind its own HTTPS endpoint on loopback \
         (TLS 1.3 from rustls on AWS-LC, a certificate authority made for the run that the \
         functions trust through `SSL_CERT_FILE` and `AWS_CA_BUNDLE`, verification on), \
         HTTP/1.1 kept alive as AWS keeps it, and a round trip of **{rtt} ms** added to every \
         exchange: 2 per new connection (TCP, then TLS 1.3), 1 per request. {rtt} ms stands \
         for an endpoint in the function's own or a neighbouring Availability Zone: AWS \
         documents single-digit-millisecond latency between the zones of a Region \
         ([{AZ_LATENCY_SOURCE}]({AZ_LATENCY_SOURCE}), every Region); `--rtt` sets it. Not \
         modelled: bandwidth, loss, the services' own time on AWS.\n\n\
         What each endpoint saw while each function ran, its extension's or agent's calls \
         included (TLS handshakes: full / resumed):\n",
        rtt = network.rtt_ms,
    );
    let _ = writeln!(
        out,
        "| Function | Service | Connections | TLS handshakes | Failed handshakes | Requests |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (function, services) in &network.functions {
        for (service, seen) in services {
            let _ = writeln!(
                out,
                "| {function} | {service} | {} | {} / {} | {} | {} |",
                seen.connections,
                seen.full_handshakes,
                seen.resumed_handshakes,
                seen.failed_handshakes,
                seen.requests
            );
        }
    }
    out
}

/// New connections per stack, as the Rust function counted them: each is one TLS handshake.
fn connections_section(run: &Run) -> String {
    // Per stack: each cold start's count (building it and its first read), and the warm
    // reads' connections and reads.
    let mut by_stack: BTreeMap<&str, (Vec<f64>, u64, u64)> = BTreeMap::new();
    for invocation in &run.invocations {
        let Some(response) = &invocation.response else {
            continue;
        };
        for stack in &response.stacks {
            let entry = by_stack.entry(stack.name.as_str()).or_default();
            if let (true, Some(init), Some(first)) = (
                response.cold,
                stack.init_connections,
                stack.first_read_connections,
            ) {
                entry.0.push((init + first) as f64);
            }
            if let (Some(opened), Some(warm)) = (stack.warm_connections, &stack.warm) {
                entry.1 += opened;
                entry.2 += u64::from(warm.count);
            }
        }
    }
    if by_stack
        .values()
        .all(|(cold, _, reads)| cold.is_empty() && *reads == 0)
    {
        return String::new();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nNew connections per stack, counted by the Rust function where its client opens one \
         (each is a TCP connection and a TLS handshake; a kept-alive connection is reused \
         without one):\n"
    );
    let _ = writeln!(
        out,
        "| Stack | New connections per cold start (median) | New connections per warm read |"
    );
    let _ = writeln!(out, "|---|---|---|");
    for (name, (mut cold, opened, reads)) in by_stack {
        cold.sort_by(f64::total_cmp);
        let cold = percentile(&cold, 0.5).map_or_else(|| "–".to_owned(), |n| n.to_string());
        let warm = if reads == 0 {
            "–".to_owned()
        } else {
            format!("{:.2}", opened as f64 / reads as f64)
        };
        let _ = writeln!(out, "| {name} | {cold} | {warm} |");
    }
    out
}

/// The peers' table: each Python stack beside the Rust stack that does the same thing.
fn peers_section(run: &Run, rust: &BTreeMap<String, StackSummary>) -> String {
    let prices = &run.prices;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Beside what Python functions use today\n\nThe same secret read by Python functions \
         under AWS's runtime interface client (`awslambdaric`), measured the same way and driven \
         the same way as the Rust function, each row beside the Rust stack that does the same \
         thing. **Process init** is the `Init Duration` of the `REPORT` line: the interpreter, \
         its imports and module-level code, or the Rust \
         process with all its stacks. Latencies in ms, p50 (p50 / p99 for warm reads). **Calls** \
         are the function's own (the `python-extension` and `python-agent` rows' calls are made \
         by the extension or AWS's agent, one per id per TTL, not by the function).\n"
    );
    let _ = writeln!(
        out,
        "| Peer stack | Process init | First read | Warm read | Calls / warm read | Requests $ / 10k warm reads | Rust stack | Rust process init | Rust first read | Rust warm read |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let rust_init = process_init_p50(&run.invocations).map_or_else(|| "–".into(), ms);
    for peer in &run.peers {
        let init = process_init_p50(&peer.invocations).map_or_else(|| "–".into(), ms);
        let answered = peer.invocations.iter().any(|i| i.response.is_some());
        if !answered {
            let error = peer
                .invocations
                .iter()
                .find_map(|i| i.error.as_deref())
                .unwrap_or("no answer");
            let _ = writeln!(
                out,
                "| {} | **error** | {} | | | | | | | |",
                peer.function,
                escape(error)
            );
            continue;
        }
        for (name, summary) in summarize_invocations(&peer.invocations) {
            let warm_per_read = per_read(&summary.warm_calls, summary.warm_reads_counted);
            let cost =
                request_cost(&billed_requests(&summary, run), prices, &mut Vec::new()) * 10_000.0;
            let (rust_name, rust_first, rust_warm) = match summary
                .compare_with
                .as_deref()
                .and_then(|name| rust.get(name).map(|s| (name, s)))
            {
                Some((name, s)) => (name, p50_text(&s.first_read), p50_p99(&s.warm)),
                None => ("–", "–".into(), "–".into()),
            };
            let error = summary
                .errors
                .keys()
                .next()
                .map(|e| format!(" (**error**: {})", escape(e)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {name}{error} | {init} | {} | {} | {} | {} | {rust_name} | {rust_init} | {rust_first} | {rust_warm} |",
                p50_text(&summary.first_read),
                p50_p99(&summary.warm),
                calls_text(&warm_per_read, summary.warm_reads_counted),
                dollars(cost),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nProcess init is per function: a Python function pays its own, the Rust row's is the \
         one process that built all the stacks above. Costs: the function's warm-read calls at \
         the same prices (Lambda compute is not in this table)."
    );
    out
}

/// Renders the Markdown report.
pub(crate) fn markdown(run: &Run) -> String {
    let stacks = summarize(run);
    let prices = &run.prices;
    let target = &run.target;
    let mut out = String::new();
    let _ = writeln!(out, "# secret-loader comparison\n");
    let where_ = match target.kind {
        TargetKind::EmulatorLoopback if run.network.is_some() => {
            "**Emulator on loopback, not AWS.** Every AWS call went to moto on 127.0.0.1 through \
             the network model below, and the function ran under the local Runtime API runner: \
             the numbers compare the code paths over TLS and round trips shaped like AWS's, not \
             AWS's own network, KMS or storage."
        }
        TargetKind::EmulatorLoopback => {
            "**Emulator on loopback, not AWS.** Every AWS call went to moto on 127.0.0.1 (a new \
             TCP connection per request) and the function ran under the local Runtime API \
             runner: the numbers compare the code paths, not AWS's network, KMS or storage."
        }
        TargetKind::AwsLambda => "**AWS Lambda**, calling the AWS services for real.",
        TargetKind::LocalRunnerAws => {
            "**Local runner, real AWS services.** The function ran on this machine under the \
             local Runtime API runner and called AWS over the internet: not Lambda's network."
        }
    };
    let _ = writeln!(out, "{where_}\n");
    let _ = writeln!(
        out,
        "- Function: `{}` in {}, {}, {} MB; run started {}.",
        target.function, target.region, target.architecture, target.memory_mb, run.started
    );
    let cold_starts = run
        .invocations
        .iter()
        .filter(|i| i.response.as_ref().is_some_and(|r| r.cold))
        .count();
    let warm = run
        .invocations
        .iter()
        .filter(|i| i.response.as_ref().is_some_and(|r| !r.cold))
        .count();
    let _ = writeln!(
        out,
        "- Asked for {} cold starts and {} warm invocations, {} reads per stack per invocation after \
         the first; got {cold_starts} cold and {warm} warm answers.",
        run.settings.cold, run.settings.warm, run.settings.reads
    );
    let init = process_inits(&run.invocations);
    if !init.is_empty() {
        let _ = writeln!(
            out,
            "- Process init (`Init Duration` of the REPORT line: start-up and every stack below \
             built), p50 / p90 / p99: {} ms.",
            triple(&init)
        );
    }
    let warm_up = sorted(
        run.invocations
            .iter()
            .filter_map(|i| i.response.as_ref()?.envelope_warm_up_ms)
            .collect(),
    );
    if !warm_up.is_empty() {
        let _ = writeln!(
            out,
            "- The Encryption SDK's first message in a process (inside process init, in no row; \
             every envelope stack, `s3+kms`, `file+kms` and `+tmp`, pays it once per process), \
             p50 / p90 / p99: {} ms.",
            triple(&warm_up)
        );
    }
    let memory = run
        .invocations
        .iter()
        .filter_map(|i| i.report.as_ref().map(|r| r.max_memory_mb))
        .max();
    if let Some(memory) = memory {
        let _ = writeln!(out, "- Max memory used: {memory} MB.");
    }
    let gb_second = prices.lambda_gb_second.get(&target.architecture).copied();
    let _ = writeln!(
        out,
        "\nLatencies in ms, p50 / p90 / p99 (nearest rank; n = samples). **Init**: building the \
         stack (clients, key lookups). **First read**: the environment's first `get`. **Cold**: \
         init + first read, per cold start. **Warm**: every later read. **Calls**: AWS requests \
         the function sent, counted on the wire.\n"
    );
    let _ = writeln!(
        out,
        "| Stack | Init | First read | Cold (init + first read) | Warm read | Calls, first read | Calls / warm read | Requests $ / 10k warm reads | Compute $ / 10k warm reads |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let mut unpriced = Vec::new();
    for (name, summary) in &stacks {
        if summary.first_read.is_empty() && summary.warm.is_empty() {
            let error = summary
                .errors
                .keys()
                .next()
                .map_or("no data", String::as_str);
            let _ = writeln!(
                out,
                "| {name} | **error** | {} | | | | | | |",
                escape(error)
            );
            continue;
        }
        let warm_per_read = per_read(&summary.warm_calls, summary.warm_reads_counted);
        let first_per_read = per_read(&summary.first_read_calls, summary.first_reads_counted);
        let request_cost =
            request_cost(&billed_requests(summary, run), prices, &mut unpriced) * 10_000.0;
        let compute = match (percentile(&summary.warm, 0.5), gb_second) {
            (Some(p50), Some(price)) => {
                dollars(p50 / 1000.0 * f64::from(target.memory_mb) / 1024.0 * price * 10_000.0)
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {compute} |",
            triple(&summary.init),
            triple(&summary.first_read),
            triple(&summary.cold_total),
            triple(&summary.warm),
            calls_text(&first_per_read, summary.first_reads_counted),
            calls_text(&warm_per_read, summary.warm_reads_counted),
            dollars(request_cost),
        );
    }
    let _ = writeln!(
        out,
        "\nCosts from {} Requests: the warm-read calls above at the per-request prices, plus \
         the KMS requests services make on your behalf (listed under the fleet model: S3 for \
         SSE-KMS, Secrets Manager, Parameter Store's SecureString), billed to you all the same. \
         Compute: the warm p50 at {} MB and the {} price per GB-second. Monthly fees (per \
         secret, per key, VPC endpoints) are in the fleet model's month.",
        prices.source, target.memory_mb, target.architecture,
    );
    unpriced.sort();
    unpriced.dedup();
    if !unpriced.is_empty() {
        let _ = writeln!(
            out,
            "\nNo price given for: {} (left out of the request cost).",
            unpriced.join(", ")
        );
    }
    let errors: Vec<_> = stacks
        .iter()
        .flat_map(|(name, s)| s.errors.iter().map(move |(e, n)| (name, e, n)))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\n## Errors\n");
        for (name, error, count) in errors {
            let _ = writeln!(out, "- {name}: {} ({count}×)", escape(error));
        }
    }
    let failed: Vec<_> = run
        .invocations
        .iter()
        .filter_map(|i| i.error.as_deref())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\n## Failed invocations\n");
        for error in failed {
            let _ = writeln!(out, "- {}", escape(error));
        }
    }
    if !run.peers.is_empty() {
        out.push_str(&peers_section(run, &stacks));
    }
    out.push_str(&crate::cpu_share::markdown(run));
    if let Some(network) = &run.network {
        out.push_str(&network_section(network));
        out.push_str(&connections_section(run));
    }
    let (fleet_stacks, compute) = fleet_inputs(run);
    out.push_str(&crate::fleet::markdown(
        &fleet_stacks,
        &run.quotas.for_region(&target.region),
        prices,
        run.fleet,
        compute,
        &target.region,
    ));
    if let Some(drill) = &run.rotation {
        out.push_str(&rotation_section(drill));
    }
    out.push_str(&crate::choosing::markdown());
    let _ = writeln!(out, "\n## Stacks\n");
    for (name, summary) in &stacks {
        let _ = writeln!(
            out,
            "- {name}: `{}`",
            summary.source.as_deref().unwrap_or("(not built)")
        );
    }
    out
}

/// What the fleet model needs of the run: each stack's measured calls, and the function's
/// memory and price for the compute of its reads.
pub(crate) fn fleet_inputs(run: &Run) -> (Vec<(String, StackCalls)>, Compute) {
    let stacks = summarize(run);
    let fleet_stacks: Vec<(String, StackCalls)> = stacks
        .iter()
        .map(|(name, summary)| {
            let mut cold = summary.init_calls.clone();
            add(&mut cold, &summary.first_read_calls);
            // A stack that never read (an error row above) has nothing to model.
            let read = !(summary.first_read.is_empty() && summary.warm.is_empty());
            let counted = summary.inits_counted.max(summary.first_reads_counted);
            let source = summary.source.as_deref().unwrap_or("");
            let calls = StackCalls {
                backend: backend_of(source).to_owned(),
                cached: source.starts_with("memory(") || source.starts_with("tmp["),
                per_cold_start: (read && counted > 0).then(|| per_read(&cold, counted)),
                per_first_read: (read && summary.first_reads_counted > 0)
                    .then(|| per_read(&summary.first_read_calls, summary.first_reads_counted)),
                per_warm_read: (read && summary.warm_reads_counted > 0)
                    .then(|| per_read(&summary.warm_calls, summary.warm_reads_counted)),
                warm_p50_ms: percentile(&summary.warm, 0.5),
            };
            (name.clone(), calls)
        })
        .collect();
    let compute = Compute {
        memory_mb: run.target.memory_mb,
        gb_second: run
            .prices
            .lambda_gb_second
            .get(&run.target.architecture)
            .copied(),
    };
    (fleet_stacks, compute)
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Renders the chart: per stack, cold (init + first read) and warm p50, ms, log scale.
///
/// # Errors
/// When drawing fails.
/// The latency chart (`report.svg`).
pub(crate) fn svg(run: &Run) -> Result<String, String> {
    crate::charts::latency(run)
}

/// Per stack of the function: p50 of the cold start (init + first read) and of a warm read.
pub(crate) fn stack_p50s(run: &Run) -> Vec<(String, Option<f64>, Option<f64>)> {
    summarize(run)
        .into_iter()
        .map(|(name, s)| {
            (
                name,
                percentile(&s.cold_total, 0.5),
                percentile(&s.warm, 0.5),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_parse_cold_and_warm() {
        let cold = "START RequestId: a Version: $LATEST\nsome log\nEND RequestId: a\n\
                    REPORT RequestId: a\tDuration: 12.35 ms\tBilled Duration: 93 ms\t\
                    Memory Size: 512 MB\tMax Memory Used: 31 MB\tInit Duration: 80.50 ms\t\n";
        assert_eq!(
            ReportLine::parse(cold),
            Some(ReportLine {
                duration_ms: 12.35,
                billed_ms: 93.0,
                memory_mb: 512,
                max_memory_mb: 31,
                init_ms: Some(80.5),
            })
        );
        let warm = "REPORT RequestId: b\tDuration: 2.00 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t";
        assert_eq!(ReportLine::parse(warm).unwrap().init_ms, None);
        assert_eq!(ReportLine::parse("no report here"), None);
        assert_eq!(
            ReportLine::parse("REPORT RequestId: c\tDuration: x ms"),
            None
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples = sorted((1..=100).rev().map(f64::from).collect());
        assert_eq!(percentile(&samples, 0.5), Some(50.0));
        assert_eq!(percentile(&samples, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn backends_come_from_the_innermost_layer() {
        assert_eq!(backend_of("memory(tmp(s3+sse-kms(b/p)))"), "s3+sse-kms");
        assert_eq!(backend_of("s3+kms(b/p)"), "s3+kms");
        assert_eq!(backend_of("secretsmanager(us-east-1)"), "secretsmanager");
        assert_eq!(backend_of("memory"), "memory");
    }
}
