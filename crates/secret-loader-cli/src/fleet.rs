//! The fleet model: what a burst of cold starts, a stream of reads, or a fleet of cached
//! environments refreshing would hit first, and what an option costs a month, whole. From the
//! calls each stack was *measured* to make per cold start, per first read and per warm read,
//! the calls services make on the caller's behalf, and the tables of published quotas and
//! prices for the run's Region ([`crate::tables`]), it says per stack the largest sustained
//! rate of cold starts and of warm reads before the first quota throttles, which quota that
//! is, and, at the fleet the user describes (`--fleet cold_per_s=N,reads_per_s=M,...`), the
//! busiest quota and the monthly cost: fixed fees, requests (those made on the caller's behalf
//! included) and the compute of the reads, with the free tiers beside it.
//!
//! It is arithmetic on measured counts and documented figures, not a load test; the report
//! says so and shows every input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::tables::{OnBehalfOptions, Prices, Quota, Quotas, by_service, with_on_behalf};

/// Seconds in the month the cost column assumes (30 days).
const SECONDS_PER_MONTH: f64 = 30.0 * 24.0 * 3600.0;

/// Hours in that month.
const HOURS_PER_MONTH: f64 = 30.0 * 24.0;

/// The AWS Parameters and Secrets Lambda Extension's default cache TTL: "By default, it caches
/// secrets for 300 seconds" (every Region).
const DEFAULT_TTL_SOURCE: &str =
    "https://docs.aws.amazon.com/lambda/latest/dg/with-secrets-manager.html";

/// Which kind of KMS key the services' own encryption (Secrets Manager, Parameter Store's
/// SecureString, S3 SSE-KMS) uses. Both are billed per request and count against the quota
/// (<https://aws.amazon.com/kms/pricing/>); only a customer-managed key has a monthly fee, and
/// only it can be shared across accounts. The envelope backends call KMS themselves, which
/// takes a customer-managed key whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum KeyKind {
    /// A key of the account's own (what `deploy/` makes).
    CustomerManaged,
    /// The service's `aws/secretsmanager`, `aws/ssm`, `aws/s3`.
    AwsManaged,
}

/// The fleet the model is worked for (`--fleet key=value,...`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct FleetRate {
    /// New execution environments per second across the fleet, each building its stack and
    /// reading once.
    pub(crate) cold_per_s: f64,
    /// Warm reads per second across the fleet.
    pub(crate) reads_per_s: f64,
    /// Functions the fleet is spread over (each has its own scale-up rate; the account's
    /// quotas are shared).
    pub(crate) functions: f64,
    /// Execution environments alive at once across the fleet.
    pub(crate) concurrency: f64,
    /// Secrets each environment reads.
    pub(crate) secrets: f64,
    /// A cached stack's TTL, seconds: each environment reads each secret again this often.
    pub(crate) ttl_s: f64,
    /// Secrets Manager stacks check the version (`DescribeSecret`) on expiry, and read the
    /// value again only when it changed.
    pub(crate) version_check: bool,
    /// The services' own KMS key.
    pub(crate) key: KeyKind,
    /// The bucket has an S3 Bucket Key.
    pub(crate) bucket_key: bool,
    /// The bucket's default encryption is SSE-KMS, so `s3+kms` envelope objects are
    /// encrypted by S3 with KMS too.
    pub(crate) envelope_sse_kms: bool,
    /// Availability Zones a VPC's interface endpoints are in (for `file+kms`, whose function
    /// runs in a VPC to reach EFS).
    pub(crate) azs: f64,
}

impl Default for FleetRate {
    fn default() -> Self {
        Self {
            cold_per_s: 10.0,
            reads_per_s: 1000.0,
            functions: 1.0,
            concurrency: 100.0,
            secrets: 1.0,
            ttl_s: 300.0,
            version_check: false,
            key: KeyKind::CustomerManaged,
            bucket_key: false,
            envelope_sse_kms: false,
            azs: 2.0,
        }
    }
}

const FLEET_KEYS: &str = "cold_per_s, reads_per_s, functions, concurrency, secrets, ttl_s, \
                          version_check, key, bucket_key, envelope_sse_kms, azs";

impl FromStr for FleetRate {
    type Err = String;

    /// `key=value,...` (any left out keeps its default).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut rate = Self::default();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected key=value (keys: {FLEET_KEYS})"))?;
            let value = value.trim();
            let number = |at_least: f64| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= at_least)
                    .ok_or_else(|| format!("`{part}`: not a number ≥ {at_least}"))
            };
            let switch = || match value {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!("`{part}`: expected true or false")),
            };
            match key.trim() {
                "cold_per_s" => rate.cold_per_s = number(0.0)?,
                "reads_per_s" => rate.reads_per_s = number(0.0)?,
                "functions" => rate.functions = number(1.0)?,
                "concurrency" => rate.concurrency = number(0.0)?,
                "secrets" => rate.secrets = number(1.0)?,
                "ttl_s" => rate.ttl_s = number(1.0)?,
                "azs" => rate.azs = number(1.0)?,
                "version_check" => rate.version_check = switch()?,
                "bucket_key" => rate.bucket_key = switch()?,
                "envelope_sse_kms" => rate.envelope_sse_kms = switch()?,
                "key" => {
                    rate.key = match value {
                        "customer-managed" => KeyKind::CustomerManaged,
                        "aws-managed" => KeyKind::AwsManaged,
                        _ => {
                            return Err(format!(
                                "`{part}`: key is customer-managed or aws-managed (AWS-owned \
                                 keys don't encrypt Secrets Manager secrets, SecureStrings or \
                                 SSE-KMS objects)"
                            ));
                        }
                    }
                }
                other => return Err(format!("unknown fleet key `{other}`; valid: {FLEET_KEYS}")),
            }
        }
        Ok(rate)
    }
}

impl FleetRate {
    /// What decides the calls services make on the caller's behalf.
    pub(crate) fn on_behalf(&self) -> OnBehalfOptions {
        OnBehalfOptions {
            secrets_per_batch: self.secrets,
            bucket_key: self.bucket_key,
            envelope_sse_kms: self.envelope_sse_kms,
        }
    }
}

/// What the model needs of one measured stack.
#[derive(Debug, Clone, Default)]
pub(crate) struct StackCalls {
    /// The backend under the stack's layers (`s3+sse-kms`).
    pub(crate) backend: String,
    /// A memory or `/tmp` cache layer is over it.
    pub(crate) cached: bool,
    /// Calls per cold start (building the stack and the first read), by operation; `None`
    /// when none were counted.
    pub(crate) per_cold_start: Option<BTreeMap<String, f64>>,
    /// Calls per first read (what a cache miss costs), by operation.
    pub(crate) per_first_read: Option<BTreeMap<String, f64>>,
    /// Calls per warm read, by operation; `None` when none were counted.
    pub(crate) per_warm_read: Option<BTreeMap<String, f64>>,
    /// The warm read's p50, ms.
    pub(crate) warm_p50_ms: Option<f64>,
}

/// The function the reads run in, for their compute cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Compute {
    /// Its memory, MB.
    pub(crate) memory_mb: u32,
    /// USD per GB-second at its architecture, when priced.
    pub(crate) gb_second: Option<f64>,
}

/// A limit and the quota that sets it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Limit {
    /// No calls at all: nothing to throttle.
    Unbounded,
    /// Calls, but no quota in the table counts them (or a run recorded before calls were
    /// counted by operation).
    Unmodelled,
    /// At most this many per second, set by this quota.
    At(f64, String),
}

/// A month of one stack at the fleet's rate, USD.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Monthly {
    /// Fixed fees, each with what it is for.
    pub(crate) fixed: Vec<(String, f64)>,
    /// Requests, those made on the caller's behalf and the caches' refreshes included.
    pub(crate) requests: f64,
    /// The compute of the warm reads (their p50 at the function's memory).
    pub(crate) compute: f64,
    /// What free tiers would take off, each with its name (not subtracted above).
    pub(crate) free: Vec<(String, f64)>,
}

impl Monthly {
    /// Fixed fees + requests + compute.
    pub(crate) fn total(&self) -> f64 {
        self.fixed.iter().map(|(_, usd)| usd).sum::<f64>() + self.requests + self.compute
    }
}

/// The model's answer for one stack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StackFleet {
    /// Calls per cold start, on-behalf calls included.
    pub(crate) cold: BTreeMap<String, f64>,
    /// Calls per warm read, on-behalf calls included.
    pub(crate) warm: BTreeMap<String, f64>,
    /// Calls per second the caches' refreshes make across the fleet, on-behalf included.
    pub(crate) refresh: BTreeMap<String, f64>,
    /// The most cold starts per second, sustained.
    pub(crate) max_cold_per_s: Limit,
    /// The most warm reads per second.
    pub(crate) max_reads_per_s: Limit,
    /// At the given rate: the busiest quota and its use (1.0 = at the quota).
    pub(crate) busiest: Option<(String, f64)>,
    /// A month at the given rate.
    pub(crate) monthly: Monthly,
    /// Calls no quota in the table counts.
    pub(crate) unmodelled: Vec<String>,
    /// Parameter Store needs its paid higher-throughput setting at the given rate.
    pub(crate) needs_ssm_higher_throughput: bool,
}

/// A quota's figure for the fleet: per function ones times the functions.
fn capacity(quota: &Quota, rate: &FleetRate) -> f64 {
    if quota.per_function {
        quota.per_second * rate.functions
    } else {
        quota.per_second
    }
}

fn load(quota: &Quota, calls: &BTreeMap<String, f64>, cold_start: bool) -> f64 {
    if quota.concurrency {
        return 0.0;
    }
    if quota.cold_starts {
        return if cold_start { 1.0 } else { 0.0 };
    }
    calls
        .iter()
        .filter(|(operation, _)| quota.counts(operation))
        .map(|(_, n)| n)
        .sum()
}

fn limit(
    quotas: &Quotas,
    rate: &FleetRate,
    calls: &BTreeMap<String, f64>,
    cold_start: bool,
) -> Limit {
    quotas
        .quota
        .iter()
        .filter_map(|quota| {
            let load = load(quota, calls, cold_start);
            (load > 0.0).then(|| (capacity(quota, rate) / load, quota.name.clone()))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(
            || {
                if calls.values().any(|n| *n > 0.0) {
                    Limit::Unmodelled
                } else {
                    Limit::Unbounded
                }
            },
            |(rate, name)| Limit::At(rate, name),
        )
}

/// USD per request to `service`.
fn price(prices: &Prices, service: &str, ssm_higher_throughput: bool) -> f64 {
    if service == "ssm" && ssm_higher_throughput {
        return prices.ssm_higher_throughput_per_request;
    }
    prices.per_request.get(service).copied().unwrap_or(0.0)
}

fn scaled(calls: &BTreeMap<String, f64>, by: f64) -> BTreeMap<String, f64> {
    calls.iter().map(|(k, v)| (k.clone(), v * by)).collect()
}

fn kms_calls(calls: &BTreeMap<String, f64>) -> f64 {
    calls
        .iter()
        .filter(|(op, _)| op.starts_with("kms:") || op.as_str() == "kms")
        .map(|(_, n)| n)
        .sum()
}

/// The model for one stack.
pub(crate) fn model(
    stack: &StackCalls,
    quotas: &Quotas,
    prices: &Prices,
    rate: FleetRate,
    compute: Compute,
) -> StackFleet {
    let options = rate.on_behalf();
    let measured = |calls: &Option<BTreeMap<String, f64>>| calls.clone().unwrap_or_default();
    let behalf = |calls: &BTreeMap<String, f64>| {
        with_on_behalf(calls, &stack.backend, &quotas.on_behalf, options)
    };
    let cold = behalf(&measured(&stack.per_cold_start));
    let warm = behalf(&measured(&stack.per_warm_read));
    // A cached stack reads each secret again every TTL in every environment (never more
    // often than it is read); a refresh costs what a first read did, or one DescribeSecret
    // with the version check while the secret is unchanged.
    let refreshes_per_s = if stack.cached {
        (rate.concurrency * rate.secrets / rate.ttl_s).min(rate.reads_per_s)
    } else {
        0.0
    };
    let per_refresh = if rate.version_check && stack.backend == "secretsmanager" {
        BTreeMap::from([("secretsmanager:DescribeSecret".to_owned(), 1.0)])
    } else {
        behalf(&measured(&stack.per_first_read))
    };
    let refresh = if refreshes_per_s > 0.0 {
        scaled(&per_refresh, refreshes_per_s)
    } else {
        BTreeMap::new()
    };
    let per_second = |quota: &Quota| {
        rate.cold_per_s * load(quota, &cold, true)
            + rate.reads_per_s * load(quota, &warm, false)
            + load(quota, &refresh, false)
    };
    let busiest = quotas
        .quota
        .iter()
        .map(|quota| {
            let used = if quota.concurrency {
                rate.concurrency / quota.per_second
            } else {
                per_second(quota) / capacity(quota, &rate)
            };
            (quota.name.clone(), used)
        })
        .filter(|(_, used)| *used > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let needs_ssm_higher_throughput = quotas
        .quota
        .iter()
        .filter(|q| q.operations.iter().any(|o| o.starts_with("ssm:")))
        .any(|quota| per_second(quota) > capacity(quota, &rate));
    // Every request is billed where it is made: the function's own, and KMS's on its behalf.
    let per_month = |calls: &BTreeMap<String, f64>| -> f64 {
        by_service(calls)
            .iter()
            .map(|(service, n)| n * price(prices, service, needs_ssm_higher_throughput))
            .sum::<f64>()
            * SECONDS_PER_MONTH
    };
    // `+ 0.0`: an empty sum is -0.0, which would print as `$-0.00`.
    let requests = per_month(&scaled(&cold, rate.cold_per_s))
        + per_month(&scaled(&warm, rate.reads_per_s))
        + per_month(&refresh)
        + 0.0;
    let gb_seconds = stack.warm_p50_ms.unwrap_or(0.0) / 1000.0 * f64::from(compute.memory_mb)
        / 1024.0
        * rate.reads_per_s
        * SECONDS_PER_MONTH;
    let compute_usd = compute.gb_second.map_or(0.0, |p| gb_seconds * p);
    let mut fixed = Vec::new();
    if stack.backend == "secretsmanager" {
        fixed.push((
            format!(
                "{} secret{}",
                rate.secrets,
                if rate.secrets == 1.0 { "" } else { "s" }
            ),
            rate.secrets * prices.monthly.secret,
        ));
    }
    let direct_kms = [
        &stack.per_cold_start,
        &stack.per_first_read,
        &stack.per_warm_read,
    ]
    .into_iter()
    .any(|calls| calls.as_ref().is_some_and(|c| kms_calls(c) > 0.0));
    let service_kms = kms_calls(&cold) + kms_calls(&warm) > 0.0;
    if direct_kms || (service_kms && rate.key == KeyKind::CustomerManaged) {
        fixed.push(("1 KMS key".to_owned(), prices.monthly.kms_key));
    }
    if stack.backend == "file+kms" {
        // The function reaches EFS from a VPC, so every AWS service it calls needs an
        // interface endpoint there (no internet path).
        let services = by_service(&measured(&stack.per_cold_start))
            .into_keys()
            .chain(by_service(&measured(&stack.per_warm_read)).into_keys())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as f64;
        if services > 0.0 {
            fixed.push((
                format!(
                    "{services} VPC endpoint{} × {} AZs",
                    if services == 1.0 { "" } else { "s" },
                    rate.azs
                ),
                services * rate.azs * HOURS_PER_MONTH * prices.monthly.vpc_endpoint_hour,
            ));
        }
    }
    let kms_per_month = (rate.cold_per_s * kms_calls(&cold)
        + rate.reads_per_s * kms_calls(&warm)
        + kms_calls(&refresh))
        * SECONDS_PER_MONTH;
    let mut free = Vec::new();
    let kms_price = prices.per_request.get("kms").copied().unwrap_or(0.0);
    if kms_per_month > 0.0 && prices.free_per_month.kms_requests > 0.0 {
        free.push((
            "KMS requests".to_owned(),
            kms_per_month.min(prices.free_per_month.kms_requests) * kms_price,
        ));
    }
    if let Some(p) = compute.gb_second
        && gb_seconds > 0.0
        && prices.free_per_month.lambda_gb_seconds > 0.0
    {
        free.push((
            "Lambda GB-seconds".to_owned(),
            gb_seconds.min(prices.free_per_month.lambda_gb_seconds) * p,
        ));
    }
    let mut unmodelled: Vec<String> = cold
        .keys()
        .chain(warm.keys())
        .chain(refresh.keys())
        .filter(|operation| !quotas.quota.iter().any(|q| q.counts(operation)))
        .cloned()
        .collect();
    unmodelled.sort();
    unmodelled.dedup();
    StackFleet {
        max_cold_per_s: limit(quotas, &rate, &cold, true),
        max_reads_per_s: limit(quotas, &rate, &warm, false),
        cold,
        warm,
        refresh,
        busiest,
        monthly: Monthly {
            fixed,
            requests,
            compute: compute_usd,
            free,
        },
        unmodelled,
        needs_ssm_higher_throughput,
    }
}

fn calls_text(calls: &BTreeMap<String, f64>) -> String {
    if calls.is_empty() {
        return "0".into();
    }
    calls
        .iter()
        .map(|(operation, n)| {
            if n.fract() == 0.0 {
                format!("{operation} {n}")
            } else {
                format!("{operation} {n:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn rate_text(value: f64) -> String {
    if value >= 100.0 {
        let whole = value.floor() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn limit_text(limit: &Limit) -> String {
    match limit {
        Limit::Unbounded => "no limit (no calls)".into(),
        Limit::Unmodelled => "unknown (calls no quota counts)".into(),
        Limit::At(rate, quota) => format!("{} ({quota})", rate_text(*rate)),
    }
}

fn usd(value: f64) -> String {
    if value >= 1000.0 {
        format!("${}", rate_text(value.round()))
    } else {
        format!("${value:.2}")
    }
}

fn switch_text(on: bool, yes: &str, no: &str) -> String {
    (if on { yes } else { no }).to_owned()
}

/// `$1.00 (what) + ...`, or `empty` for none.
fn fees_text(fees: &[(String, f64)], empty: &str, separator: &str) -> String {
    if fees.is_empty() {
        return empty.to_owned();
    }
    fees.iter()
        .map(|(what, fee)| format!("{} ({what})", usd(*fee)))
        .collect::<Vec<_>>()
        .join(separator)
}

/// What the report says of `region` and the tables: nothing when both hold there.
pub(crate) fn region_text(region: &str, quotas: &Quotas, prices: &Prices) -> String {
    let mut out = String::new();
    if !quotas.holds_for(region) {
        let _ = writeln!(
            out,
            "\n**The quota table does not know {region}** (it holds for {}): the quotas below \
             are the figures it gives Regions without one of their own, not checked for \
             {region}. Pass `--quotas FILE` with {region}'s.",
            if quotas.regions.is_empty() {
                "no Region named".to_owned()
            } else {
                quotas.regions.join(", ")
            }
        );
    }
    if !prices.holds_for(region) {
        let _ = writeln!(
            out,
            "\n**The prices are not {region}'s** (they hold for {}): every cost here is at \
             those prices, not checked for {region}. Pass `--prices FILE` with {region}'s.",
            if prices.regions.is_empty() {
                "no Region named".to_owned()
            } else {
                prices.regions.join(", ")
            }
        );
    }
    out
}

/// The report's fleet section.
pub(crate) fn markdown(
    stacks: &[(String, StackCalls)],
    quotas: &Quotas,
    prices: &Prices,
    rate: FleetRate,
    compute: Compute,
    region: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## What a fleet hits first, and what it costs (a model)\n"
    );
    let _ = writeln!(
        out,
        "Arithmetic, not a load test: the calls each stack was measured to make above (per cold \
         start: building the stack and its first read; per warm read), plus the calls services \
         make on your behalf, against the request quotas of **{region}** and at its prices \
         (tables below, each figure with its source). **Max cold starts/s**: the most new \
         execution environments per second, sustained, before the first quota throttles \
         (Lambda's own scale-up allows a burst of 1,000 per function at once, then 1,000 more \
         every 10 s: the sustained rate is the one given); \
         **max warm reads/s**: the same for uncached reads. **Refresh**: a cached stack reads \
         each secret again every TTL in every environment alive (never more often than it is \
         read), which costs what a first read did."
    );
    out.push_str(&region_text(region, quotas, prices));
    let _ = writeln!(
        out,
        "\n**The fleet** (`--fleet key=value,...`; keys: {FLEET_KEYS}): {} cold starts/s and {} \
         warm reads/s across {} function{}, {} execution environments alive, {} secret{} each; \
         cached stacks refresh every {} s (the default is AWS's own extension's TTL, {DEFAULT_TTL_SOURCE}){}; \
         the services encrypt with {} KMS key; S3 {}, `s3+kms` objects {}.\n",
        rate_text(rate.cold_per_s),
        rate_text(rate.reads_per_s),
        rate_text(rate.functions),
        if rate.functions == 1.0 { "" } else { "s" },
        rate_text(rate.concurrency),
        rate_text(rate.secrets),
        if rate.secrets == 1.0 { "" } else { "s" },
        rate_text(rate.ttl_s),
        switch_text(
            rate.version_check,
            ", Secrets Manager ones with a version check (`DescribeSecret`, the secret unchanged)",
            ""
        ),
        match rate.key {
            KeyKind::CustomerManaged => "a customer-managed",
            KeyKind::AwsManaged => "the AWS-managed",
        },
        switch_text(rate.bucket_key, "with a Bucket Key", "without a Bucket Key"),
        switch_text(
            rate.envelope_sse_kms,
            "SSE-KMS as well (the bucket's default)",
            "under SSE-S3 (no second KMS layer, as `deploy/` stores them)"
        ),
    );
    let _ = writeln!(
        out,
        "| Stack | Calls per cold start | Calls per warm read | Refresh calls/s at the rate | Max cold starts/s (first quota) | Max warm reads/s (first quota) | At the rate: busiest quota |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut unmodelled = Vec::new();
    let mut higher_throughput = Vec::new();
    let mut months = Vec::new();
    for (name, stack) in stacks {
        if stack.per_cold_start.is_none() && stack.per_warm_read.is_none() {
            let _ = writeln!(out, "| {name} | – | – | – | – | – | – |");
            continue;
        }
        let fleet = model(stack, quotas, prices, rate, compute);
        let busiest = match &fleet.busiest {
            Some((quota, used)) => format!("{quota}, {}%", percent(*used)),
            None => "none".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {busiest} |",
            calls_text(&fleet.cold),
            calls_text(&fleet.warm),
            if stack.cached {
                calls_text(&fleet.refresh)
            } else {
                "–".to_owned()
            },
            limit_text(&fleet.max_cold_per_s),
            limit_text(&fleet.max_reads_per_s),
        );
        unmodelled.extend(fleet.unmodelled.iter().cloned());
        if fleet.needs_ssm_higher_throughput {
            higher_throughput.push(name.clone());
        }
        months.push((name, fleet));
    }
    unmodelled.sort();
    unmodelled.dedup();
    if !unmodelled.is_empty() {
        let _ = writeln!(
            out,
            "\nCalls no quota below counts (left out of the limits): {}.{}",
            unmodelled.join(", "),
            if unmodelled.iter().any(|c| !c.contains(':')) {
                " Calls named by service alone come from a run recorded before calls were \
                 counted by operation: record it again for the model to place them."
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "\n### A month of it\n");
    let _ = writeln!(
        out,
        "30 days at the fleet's rate, USD: fixed fees, every request (the function's, those \
         KMS serves on its behalf, the caches' refreshes; cold starts included) and the compute \
         of the warm reads (their p50 at {} MB). Free tiers are shown beside the total, not \
         taken off it: they are per account, shared with everything else it runs.\n",
        compute.memory_mb
    );
    let _ = writeln!(
        out,
        "| Stack | Fixed fees | Requests | Compute of the reads | Total / month | Free tiers would take off |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (name, fleet) in &months {
        let month = &fleet.monthly;
        let fixed = fees_text(&month.fixed, "$0", " + ");
        let free = fees_text(&month.free, "–", ", ");
        let _ = writeln!(
            out,
            "| {name} | {fixed} | {}{} | {} | **{}** | {free} |",
            usd(month.requests),
            if fleet.needs_ssm_higher_throughput {
                " (higher throughput)"
            } else {
                ""
            },
            usd(month.compute),
            usd(month.total()),
        );
    }
    if !higher_throughput.is_empty() {
        let _ = writeln!(
            out,
            "\nAt this rate Parameter Store's standard throughput is exceeded for {}: the cost \
             assumes its paid higher-throughput setting (${} per request).",
            higher_throughput.join(", "),
            prices.ssm_higher_throughput_per_request
        );
    }
    let _ = writeln!(
        out,
        "\nQuotas in {region} ({}{}):\n",
        quotas.source,
        quotas
            .read
            .as_deref()
            .map(|d| format!(" Read {d}."))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "| Quota | In {region} | Counts | Notes | Source |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for quota in &quotas.quota {
        let counts = if quota.concurrency {
            "environments alive".to_owned()
        } else if quota.cold_starts {
            "cold starts".to_owned()
        } else {
            quota.operations.join(", ")
        };
        let notes: Vec<&str> = [quota.scope.as_deref(), quota.note.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let unit = if quota.concurrency {
            ""
        } else if quota.per_function {
            "/s per function"
        } else {
            "/s"
        };
        let _ = writeln!(
            out,
            "| {} | {}{unit} | {counts} | {} | {} |",
            quota.name,
            rate_text(quota.per_second),
            notes.join("; "),
            quota.source.as_deref().unwrap_or("–")
        );
    }
    if !quotas.on_behalf.is_empty() {
        let _ = writeln!(
            out,
            "\nCalls made on your behalf, counted against your quotas and billed to you (KMS \
             bills requests to customer- and AWS-managed keys, a service's on your behalf \
             included: https://aws.amazon.com/kms/pricing/):\n"
        );
        for rule in &quotas.on_behalf {
            let _ = writeln!(
                out,
                "- {}{} → {} {}{}{}{}",
                rule.operation,
                rule.backend
                    .as_deref()
                    .map(|b| format!(" (over {b})"))
                    .unwrap_or_default(),
                rule.per_call,
                rule.adds,
                rule.per_secret_up_to
                    .map(|n| format!(" per secret, up to {n}"))
                    .unwrap_or_default(),
                rule.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default(),
                rule.source
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            );
        }
    }
    if !prices.sources.is_empty() {
        let _ = writeln!(
            out,
            "\nPrices ({}{}), each from:\n",
            prices.source,
            prices
                .read
                .as_deref()
                .map(|d| format!(" Read {d}."))
                .unwrap_or_default()
        );
        for (key, source) in &prices.sources {
            let _ = writeln!(out, "- `{key}`: {source}");
        }
    }
    out
}

/// A share as a percentage a reader can compare: whole numbers, more digits below 1 %.
fn percent(used: f64) -> String {
    let p = used * 100.0;
    if p >= 10.0 {
        format!("{p:.0}")
    } else if p >= 1.0 {
        format!("{p:.1}")
    } else {
        format!("{p:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(pairs: &[(&str, f64)]) -> Option<BTreeMap<String, f64>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-9 * want.abs().max(1.0)
    }

    /// 512 MB on x86_64 at the bundled price.
    fn compute() -> Compute {
        Compute {
            memory_mb: 512,
            gb_second: Prices::bundled().lambda_gb_second.get("x86_64").copied(),
        }
    }

    fn bare(backend: &str, op: &str) -> StackCalls {
        StackCalls {
            backend: backend.into(),
            cached: false,
            per_cold_start: calls(&[(op, 1.0)]),
            per_first_read: calls(&[(op, 1.0)]),
            per_warm_read: calls(&[(op, 1.0)]),
            warm_p50_ms: Some(5.0),
        }
    }

    fn cached(backend: &str, op: &str) -> StackCalls {
        StackCalls {
            cached: true,
            per_warm_read: calls(&[]),
            ..bare(backend, op)
        }
    }

    fn us_east_1() -> Quotas {
        Quotas::bundled().for_region("us-east-1")
    }

    /// No cold start, one warm read a second across the fleet: a month is 2,592,000 reads.
    fn one_read_a_second() -> FleetRate {
        FleetRate {
            cold_per_s: 0.0,
            reads_per_s: 1.0,
            ..FleetRate::default()
        }
    }

    /// The model in us-east-1 at the bundled prices, 512 MB x86_64.
    fn at(stack: &StackCalls, rate: FleetRate) -> StackFleet {
        model(stack, &us_east_1(), &Prices::bundled(), rate, compute())
    }

    #[test]
    fn fleet_keys_parse_and_refuse_nonsense() {
        let rate: FleetRate =
            "cold_per_s=50,reads_per_s=2000,functions=3,key=aws-managed,bucket_key=true"
                .parse()
                .unwrap();
        assert_eq!(rate.cold_per_s, 50.0);
        assert_eq!(rate.reads_per_s, 2000.0);
        assert_eq!(rate.functions, 3.0);
        assert_eq!(rate.key, KeyKind::AwsManaged);
        assert!(rate.bucket_key);
        assert_eq!(rate.ttl_s, 300.0, "AWS's extension's default TTL stays");
        for bad in [
            "cold=1",
            "cold_per_s=-1",
            "reads_per_s=x",
            "cold_per_s",
            "functions=0",
            "ttl_s=0",
            "key=aws-owned",
            "bucket_key=maybe",
        ] {
            assert!(bad.parse::<FleetRate>().is_err(), "{bad}");
        }
        // A run recorded before these keys: the rest default.
        let old: FleetRate =
            serde_json::from_str(r#"{"cold_per_s": 1, "reads_per_s": 2}"#).unwrap();
        assert_eq!(old.functions, 1.0);
    }

    #[test]
    fn the_first_quota_to_throttle_is_the_region_s() {
        let prices = Prices::bundled();
        let rate = FleetRate {
            concurrency: 50.0,
            ..FleetRate::default()
        };
        // Secrets Manager bare in us-east-1: GetSecretValue 10,000/s comes before KMS's
        // 100,000/s (the Decrypt on our behalf).
        let sm = at(
            &bare("secretsmanager", "secretsmanager:GetSecretValue"),
            rate,
        );
        assert_eq!(sm.warm.get("kms:Decrypt"), Some(&1.0));
        assert_eq!(
            sm.max_reads_per_s,
            Limit::At(10_000.0, "Secrets Manager GetSecretValue".into())
        );
        // env+kms: KMS alone, 100,000/s in us-east-1, 20,000 in eu-central-1, 10,000 in sa-east-1.
        let kms = bare("env+kms", "kms:Decrypt");
        for (region, want) in [
            ("us-east-1", 100_000.0),
            ("eu-central-1", 20_000.0),
            ("sa-east-1", 10_000.0),
        ] {
            let quotas = Quotas::bundled().for_region(region);
            assert_eq!(
                model(&kms, &quotas, &prices, rate, compute()).max_reads_per_s,
                Limit::At(want, "KMS cryptographic operations (symmetric)".into()),
                "{region}"
            );
        }
        // 1,000 env+kms reads/s in us-east-1 use 1 % of KMS, 50 environments 5 % of the
        // account's concurrency; the 10 cold starts/s 10 % of Lambda's 100/s scale-up, the
        // busiest.
        let fleet = at(&kms, rate);
        assert_eq!(
            fleet.busiest,
            Some(("Lambda scale-up per function".into(), 0.1))
        );
        // Parameter Store: the 40/s get quota first.
        let ssm = at(&bare("ssm", "ssm:GetParameter"), rate);
        assert_eq!(
            ssm.max_reads_per_s,
            Limit::At(
                40.0,
                "Parameter Store get APIs (standard throughput)".into()
            )
        );
        assert!(ssm.needs_ssm_higher_throughput, "1,010 gets/s > 40/s");
    }

    #[test]
    fn lambda_scales_up_100_environments_a_second_per_function() {
        // 1,000 environments every 10 s per function: 100/s sustained; 3 functions: 300/s.
        let env = bare("env", "none:None");
        let env = StackCalls {
            per_cold_start: calls(&[]),
            per_first_read: calls(&[]),
            per_warm_read: calls(&[]),
            ..env
        };
        let one = at(&env, FleetRate::default());
        assert_eq!(
            one.max_cold_per_s,
            Limit::At(100.0, "Lambda scale-up per function".into())
        );
        let three = FleetRate {
            functions: 3.0,
            ..FleetRate::default()
        };
        let fleet = at(&env, three);
        assert_eq!(
            fleet.max_cold_per_s,
            Limit::At(300.0, "Lambda scale-up per function".into())
        );
        // 10 cold starts/s of 300/s: 3.3 %; 100 environments alive of the account's 1,000:
        // 10 %, the busier.
        assert_eq!(
            fleet.busiest,
            Some(("Lambda concurrent executions".into(), 0.1))
        );
    }

    #[test]
    fn every_request_is_billed_where_it_is_made() {
        let reads = one_read_a_second();
        // secretsmanager: $0.05 + KMS's $0.03 per 10,000 on our behalf = $0.08 per 10,000,
        // so 1 read/s for 30 days = 2,592,000 × $0.000008 = $20.736.
        let sm = at(
            &bare("secretsmanager", "secretsmanager:GetSecretValue"),
            reads,
        );
        assert!(
            close(sm.monthly.requests, 20.736),
            "{}",
            sm.monthly.requests
        );
        // ssm at standard throughput: the call is free, KMS's Decrypt is not: $0.03 per
        // 10,000 → $7.776.
        let ssm = at(&bare("ssm", "ssm:GetParameter"), reads);
        assert!(!ssm.needs_ssm_higher_throughput);
        assert!(
            close(ssm.monthly.requests, 7.776),
            "{}",
            ssm.monthly.requests
        );
        // s3+kms, envelope objects in an SSE-KMS bucket: GET $0.0000004 + 2 × KMS $0.000003
        // = $0.0000064 a read → $16.5888; under SSE-S3: $0.0000034 → $8.8128.
        let s3 = StackCalls {
            per_warm_read: calls(&[("s3:GET", 1.0), ("kms:Decrypt", 1.0)]),
            ..bare("s3+kms", "s3:GET")
        };
        let sse_default = FleetRate {
            envelope_sse_kms: true,
            ..reads
        };
        assert!(close(at(&s3, sse_default).monthly.requests, 16.5888));
        assert!(close(at(&s3, reads).monthly.requests, 8.8128));
    }

    #[test]
    fn a_month_is_fixed_fees_requests_and_compute_with_free_tiers_beside() {
        let reads = one_read_a_second();
        let sm = at(
            &bare("secretsmanager", "secretsmanager:GetSecretValue"),
            reads,
        );
        // $0.40 the secret, $1 the customer-managed key.
        assert_eq!(
            sm.monthly.fixed,
            vec![("1 secret".into(), 0.40), ("1 KMS key".into(), 1.0)]
        );
        // Compute: 5 ms × 0.5 GB = 0.0025 GB-s a read; × 2,592,000 reads = 6,480 GB-s;
        // × $0.0000166667 = $0.108000216.
        assert!(
            close(sm.monthly.compute, 6480.0 * 0.0000166667),
            "{}",
            sm.monthly.compute
        );
        assert!(close(
            sm.monthly.total(),
            1.40 + 20.736 + 6480.0 * 0.0000166667
        ));
        // Free tiers: 20,000 KMS requests ($0.06); 6,480 GB-s all free ($0.108).
        assert_eq!(sm.monthly.free[0].0, "KMS requests");
        assert!(close(sm.monthly.free[0].1, 0.06));
        assert!(close(sm.monthly.free[1].1, 6480.0 * 0.0000166667));
        // The AWS-managed key: no key fee.
        let aws_managed = FleetRate {
            key: KeyKind::AwsManaged,
            ..reads
        };
        let sm = at(
            &bare("secretsmanager", "secretsmanager:GetSecretValue"),
            aws_managed,
        );
        assert_eq!(sm.monthly.fixed, vec![("1 secret".into(), 0.40)]);
        // file+kms: its function is in a VPC; KMS needs an interface endpoint in each of 2 AZs:
        // 2 × 720 h × $0.01 = $14.40, and the key $1.
        let file = at(&bare("file+kms", "kms:Decrypt"), reads);
        assert_eq!(
            file.monthly.fixed,
            vec![
                ("1 KMS key".into(), 1.0),
                ("1 VPC endpoint × 2 AZs".into(), 14.40)
            ]
        );
        // env: nothing fixed, no request.
        let env = StackCalls {
            per_cold_start: calls(&[]),
            per_first_read: calls(&[]),
            per_warm_read: calls(&[]),
            ..bare("env", "x:Y")
        };
        let env = at(&env, reads);
        assert!(env.monthly.fixed.is_empty() && env.monthly.requests == 0.0);
    }

    #[test]
    fn cached_stacks_refresh_every_ttl_in_every_environment() {
        let rate = FleetRate {
            cold_per_s: 0.0,
            ..FleetRate::default()
        };
        // 100 environments, 1 secret, TTL 300 s: 1/3 refresh a second, each a GetSecretValue
        // and KMS's Decrypt: $0.000008 × 2,592,000 / 3 = $6.912 a month.
        let sm = at(
            &cached("secretsmanager", "secretsmanager:GetSecretValue"),
            rate,
        );
        assert!(close(
            sm.refresh["secretsmanager:GetSecretValue"],
            1.0 / 3.0
        ));
        assert!(close(sm.refresh["kms:Decrypt"], 1.0 / 3.0));
        assert!(close(sm.monthly.requests, 6.912), "{}", sm.monthly.requests);
        assert_eq!(
            sm.max_reads_per_s,
            Limit::Unbounded,
            "a cached read makes no call"
        );
        // With the version check, an unchanged secret costs one DescribeSecret ($0.000005):
        // $4.32.
        let checked = FleetRate {
            version_check: true,
            ..rate
        };
        let sm = at(
            &cached("secretsmanager", "secretsmanager:GetSecretValue"),
            checked,
        );
        assert_eq!(
            sm.refresh.keys().collect::<Vec<_>>(),
            ["secretsmanager:DescribeSecret"]
        );
        assert!(close(sm.monthly.requests, 4.32), "{}", sm.monthly.requests);
        // 12,000 environments refreshing 10 secrets every 300 s: 400 gets/s, ten times
        // Parameter Store's 40/s standard throughput.
        let many = FleetRate {
            concurrency: 12_000.0,
            secrets: 10.0,
            ..rate
        };
        let ssm = at(&cached("ssm", "ssm:GetParameter"), many);
        assert!(close(ssm.refresh["ssm:GetParameter"], 400.0));
        assert!(ssm.needs_ssm_higher_throughput);
        // Never more refreshes than reads: 1 read/s, whatever the fleet.
        let slow = FleetRate {
            reads_per_s: 1.0,
            ..many
        };
        let ssm = at(&cached("ssm", "ssm:GetParameter"), slow);
        assert!(close(ssm.refresh["ssm:GetParameter"], 1.0));
    }

    #[test]
    fn a_region_the_tables_lack_is_said_plainly() {
        let quotas = Quotas::bundled();
        let prices = Prices::bundled();
        assert_eq!(region_text("us-east-1", &quotas, &prices), "");
        let text = region_text("eu-west-1", &quotas, &prices);
        assert!(text.contains("The prices are not eu-west-1's"), "{text}");
        assert!(!text.contains("quota table does not know"), "{text}");
        let text = region_text("cn-north-1", &quotas, &prices);
        assert!(
            text.contains("The quota table does not know cn-north-1"),
            "{text}"
        );
        assert!(text.contains("The prices are not cn-north-1's"), "{text}");
    }
}
