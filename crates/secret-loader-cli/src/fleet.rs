//! The fleet model: what 1,000 environments cold-starting at once, or a steady stream of
//! reads, would hit first. From the calls each stack was *measured* to make per cold start and
//! per warm read, the calls services make on our behalf, and a table of published request
//! quotas ([`Quotas`], bundled as `quotas.toml`, replaceable with `--quotas FILE`), it says per
//! stack the largest burst of cold starts per second and the most warm reads per second
//! before the first quota throttles, which quota that is, and the monthly request cost at a
//! rate the user gives (`--fleet cold_per_s=N,reads_per_s=M`).
//!
//! It is arithmetic on measured counts and documented limits, not a load test; the report
//! says so and shows every input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::report::Prices;

/// The quota table bundled with the CLI (see the file for where it comes from).
pub(crate) const DEFAULT_QUOTAS: &str = include_str!("quotas.toml");

/// Seconds in the month the cost column assumes (30 days).
const SECONDS_PER_MONTH: f64 = 30.0 * 24.0 * 3600.0;

/// Request quotas and the calls services make on the caller's behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Quotas {
    /// Where the numbers come from (shown with the model).
    pub(crate) source: String,
    /// The quotas.
    pub(crate) quota: Vec<Quota>,
    /// Calls services make for the caller, against the caller's quotas.
    #[serde(default)]
    pub(crate) on_behalf: Vec<OnBehalf>,
}

/// One request quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Quota {
    /// Its name as AWS gives it.
    pub(crate) name: String,
    /// Requests per second.
    pub(crate) per_second: f64,
    /// The calls it counts (`service:Operation`; `service` alone counts all of them).
    #[serde(default)]
    pub(crate) operations: Vec<String>,
    /// Counts cold starts themselves (Lambda's scale-up rate), not calls.
    #[serde(default)]
    pub(crate) cold_starts: bool,
    /// What it is per, when not per account and region.
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// Anything a reader should know.
    #[serde(default)]
    pub(crate) note: Option<String>,
}

impl Quota {
    fn counts(&self, operation: &str) -> bool {
        self.operations.iter().any(|counted| {
            counted == operation
                || (!counted.contains(':') && operation.split(':').next() == Some(counted))
        })
    }
}

/// Calls a service makes for the caller: each `operation` call adds `per_call` `adds` calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnBehalf {
    /// Only for stacks over this backend (`s3+sse-kms`), when given.
    #[serde(default)]
    pub(crate) backend: Option<String>,
    /// The call the function makes.
    pub(crate) operation: String,
    /// The call the service makes for it.
    pub(crate) adds: String,
    /// How many per call.
    pub(crate) per_call: f64,
    /// Why.
    #[serde(default)]
    pub(crate) note: Option<String>,
}

impl Quotas {
    /// Parses a quota file.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub(crate) fn from_toml(text: &str) -> Result<Self, String> {
        let quotas: Self = toml::from_str(text).map_err(|e| format!("invalid quotas file: {e}"))?;
        if let Some(bad) = quotas
            .quota
            .iter()
            .find(|q| !(q.per_second.is_finite() && q.per_second > 0.0))
        {
            return Err(format!(
                "invalid quotas file: `{}` needs a positive per_second",
                bad.name
            ));
        }
        Ok(quotas)
    }

    /// The bundled quotas.
    pub(crate) fn bundled() -> Self {
        Self::from_toml(DEFAULT_QUOTAS).expect("the bundled quotas parse")
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::bundled()
    }
}

/// The rate the cost column is computed at (`--fleet cold_per_s=N,reads_per_s=M`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct FleetRate {
    /// New execution environments per second, each building its stack and reading once.
    pub(crate) cold_per_s: f64,
    /// Warm reads per second across the fleet.
    pub(crate) reads_per_s: f64,
}

impl Default for FleetRate {
    fn default() -> Self {
        Self {
            cold_per_s: 10.0,
            reads_per_s: 1000.0,
        }
    }
}

impl FromStr for FleetRate {
    type Err = String;

    /// `cold_per_s=N,reads_per_s=M` (either may be left out: its default stays).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut rate = Self::default();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected cold_per_s=N or reads_per_s=M"))?;
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("`{part}`: not a rate (a number ≥ 0)"))?;
            match key.trim() {
                "cold_per_s" => rate.cold_per_s = value,
                "reads_per_s" => rate.reads_per_s = value,
                other => {
                    return Err(format!(
                        "unknown fleet key `{other}`; valid: cold_per_s, reads_per_s"
                    ));
                }
            }
        }
        Ok(rate)
    }
}

/// What the model needs of one measured stack.
#[derive(Debug, Clone, Default)]
pub(crate) struct StackCalls {
    /// The backend under the stack's layers (`s3+sse-kms`).
    pub(crate) backend: String,
    /// Calls per cold start (building the stack and the first read), by operation; `None`
    /// when none were counted.
    pub(crate) per_cold_start: Option<BTreeMap<String, f64>>,
    /// Calls per warm read, by operation; `None` when none were counted.
    pub(crate) per_warm_read: Option<BTreeMap<String, f64>>,
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

/// The model's answer for one stack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StackFleet {
    /// Calls per cold start, on-behalf calls included.
    pub(crate) cold: BTreeMap<String, f64>,
    /// Calls per warm read, on-behalf calls included.
    pub(crate) warm: BTreeMap<String, f64>,
    /// The largest burst of cold starts per second.
    pub(crate) max_cold_per_s: Limit,
    /// The most warm reads per second.
    pub(crate) max_reads_per_s: Limit,
    /// At the given rate: the busiest quota and its use (1.0 = at the quota).
    pub(crate) busiest: Option<(String, f64)>,
    /// Request cost per month at the given rate, USD.
    pub(crate) monthly_usd: f64,
    /// Calls no quota in the table counts.
    pub(crate) unmodelled: Vec<String>,
    /// Parameter Store needs its paid higher-throughput setting at the given rate.
    pub(crate) needs_ssm_higher_throughput: bool,
}

/// `calls` with what services make on the caller's behalf added.
fn with_on_behalf(
    calls: &BTreeMap<String, f64>,
    backend: &str,
    rules: &[OnBehalf],
) -> BTreeMap<String, f64> {
    let mut out = calls.clone();
    for rule in rules {
        if rule.backend.as_deref().is_some_and(|b| b != backend) {
            continue;
        }
        if let Some(n) = calls.get(&rule.operation) {
            *out.entry(rule.adds.clone()).or_default() += n * rule.per_call;
        }
    }
    out
}

fn load(quota: &Quota, calls: &BTreeMap<String, f64>, cold_start: bool) -> f64 {
    if quota.cold_starts {
        return if cold_start { 1.0 } else { 0.0 };
    }
    calls
        .iter()
        .filter(|(operation, _)| quota.counts(operation))
        .map(|(_, n)| n)
        .sum()
}

fn limit(quotas: &Quotas, calls: &BTreeMap<String, f64>, cold_start: bool) -> Limit {
    quotas
        .quota
        .iter()
        .filter_map(|quota| {
            let load = load(quota, calls, cold_start);
            (load > 0.0).then(|| (quota.per_second / load, quota.name.clone()))
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

/// The model for one stack.
pub(crate) fn model(
    stack: &StackCalls,
    quotas: &Quotas,
    prices: &Prices,
    rate: FleetRate,
) -> StackFleet {
    let cold = with_on_behalf(
        stack.per_cold_start.as_ref().unwrap_or(&BTreeMap::new()),
        &stack.backend,
        &quotas.on_behalf,
    );
    let warm = with_on_behalf(
        stack.per_warm_read.as_ref().unwrap_or(&BTreeMap::new()),
        &stack.backend,
        &quotas.on_behalf,
    );
    let busiest = quotas
        .quota
        .iter()
        .map(|quota| {
            let per_second = rate.cold_per_s * load(quota, &cold, true)
                + rate.reads_per_s * load(quota, &warm, false);
            (quota.name.clone(), per_second / quota.per_second)
        })
        .filter(|(_, used)| *used > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let needs_ssm_higher_throughput = quotas
        .quota
        .iter()
        .filter(|q| q.operations.iter().any(|o| o.starts_with("ssm:")))
        .any(|quota| {
            rate.cold_per_s * load(quota, &cold, true)
                + rate.reads_per_s * load(quota, &warm, false)
                > quota.per_second
        });
    // Billed: the calls the function makes (on-behalf calls are throttled against the caller's
    // quotas, but billed only where the main table bills them: S3 SSE-KMS).
    let billed = |calls: &BTreeMap<String, f64>| -> f64 {
        crate::report::billed_by_service(calls, &stack.backend, prices)
            .iter()
            .map(|(service, n)| n * price(prices, service, needs_ssm_higher_throughput))
            .sum()
    };
    let counted = |calls: &Option<BTreeMap<String, f64>>| calls.clone().unwrap_or_default();
    // `+ 0.0`: an empty sum is -0.0, which would print as `$-0.00`.
    let monthly_usd = (rate.cold_per_s * billed(&counted(&stack.per_cold_start))
        + rate.reads_per_s * billed(&counted(&stack.per_warm_read)))
        * SECONDS_PER_MONTH
        + 0.0;
    let mut unmodelled: Vec<String> = cold
        .keys()
        .chain(warm.keys())
        .filter(|operation| !quotas.quota.iter().any(|q| q.counts(operation)))
        .cloned()
        .collect();
    unmodelled.sort();
    unmodelled.dedup();
    StackFleet {
        max_cold_per_s: limit(quotas, &cold, true),
        max_reads_per_s: limit(quotas, &warm, false),
        cold,
        warm,
        busiest,
        monthly_usd,
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

fn rate_text(value: f64) -> String {
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
    } else if value >= 10.0 {
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

/// The report's fleet section.
pub(crate) fn markdown(
    stacks: &[(String, StackCalls)],
    quotas: &Quotas,
    prices: &Prices,
    rate: FleetRate,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## What a fleet hits first (a model)\n");
    let _ = writeln!(
        out,
        "Arithmetic, not a load test: the calls each stack was measured to make above (per cold \
         start: building the stack and its first read; per warm read), plus the calls services \
         make on your behalf, against the request quotas below. **Max cold starts/s**: the \
         largest burst of new execution environments per second before the first quota \
         throttles; **max warm reads/s**: the same for reads. **At the rate**: {} cold starts/s \
         and {} warm reads/s across the fleet (`--fleet cold_per_s=N,reads_per_s=M`): the \
         busiest quota and how much of it that rate uses, and the request cost of 30 days at \
         that rate (requests only: per-secret, per-key and per-parameter monthly fees are not \
         included).\n",
        rate_text(rate.cold_per_s),
        rate_text(rate.reads_per_s)
    );
    let _ = writeln!(
        out,
        "| Stack | Calls per cold start | Calls per warm read | Max cold starts/s (first quota) | Max warm reads/s (first quota) | At the rate: busiest quota | Requests $ / month at the rate |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut unmodelled = Vec::new();
    let mut higher_throughput = Vec::new();
    for (name, stack) in stacks {
        if stack.per_cold_start.is_none() && stack.per_warm_read.is_none() {
            let _ = writeln!(out, "| {name} | – | – | – | – | – | – |");
            continue;
        }
        let fleet = model(stack, quotas, prices, rate);
        let busiest = match &fleet.busiest {
            Some((quota, used)) => format!("{quota}, {:.0}%", used * 100.0),
            None => "none".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {busiest} | {} |",
            calls_text(&fleet.cold),
            calls_text(&fleet.warm),
            limit_text(&fleet.max_cold_per_s),
            limit_text(&fleet.max_reads_per_s),
            if fleet.needs_ssm_higher_throughput {
                format!("${:.2} (higher throughput)", fleet.monthly_usd)
            } else {
                format!("${:.2}", fleet.monthly_usd)
            }
        );
        unmodelled.extend(fleet.unmodelled);
        if fleet.needs_ssm_higher_throughput {
            higher_throughput.push(name.clone());
        }
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
    if !higher_throughput.is_empty() {
        let _ = writeln!(
            out,
            "\nAt this rate Parameter Store's standard throughput is exceeded for {}: the cost \
             assumes its paid higher-throughput setting (${} per request).",
            higher_throughput.join(", "),
            prices.ssm_higher_throughput_per_request
        );
    }
    let _ = writeln!(out, "\nQuotas ({}):\n", quotas.source);
    let _ = writeln!(out, "| Quota | Per second | Counts | Notes |");
    let _ = writeln!(out, "|---|---|---|---|");
    for quota in &quotas.quota {
        let counts = if quota.cold_starts {
            "cold starts".to_owned()
        } else {
            quota.operations.join(", ")
        };
        let notes: Vec<&str> = [quota.scope.as_deref(), quota.note.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {counts} | {} |",
            quota.name,
            rate_text(quota.per_second),
            notes.join("; ")
        );
    }
    if !quotas.on_behalf.is_empty() {
        let _ = writeln!(
            out,
            "\nCalls made on your behalf, counted against your quotas:\n"
        );
        for rule in &quotas.on_behalf {
            let _ = writeln!(
                out,
                "- {}{} → {} {}{}",
                rule.operation,
                rule.backend
                    .as_deref()
                    .map(|b| format!(" (over {b})"))
                    .unwrap_or_default(),
                rule.per_call,
                rule.adds,
                rule.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(pairs: &[(&str, f64)]) -> Option<BTreeMap<String, f64>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
    }

    #[test]
    fn the_bundled_quotas_parse_and_name_the_issue_s_defaults() {
        let quotas = Quotas::bundled();
        let per_second = |name: &str| {
            quotas
                .quota
                .iter()
                .find(|q| q.name == name)
                .map(|q| q.per_second)
        };
        assert_eq!(per_second("Secrets Manager GetSecretValue"), Some(10_000.0));
        assert_eq!(
            per_second("Secrets Manager BatchGetSecretValue"),
            Some(100.0)
        );
        assert_eq!(
            per_second("Parameter Store get APIs (standard throughput)"),
            Some(40.0)
        );
        assert_eq!(
            per_second("KMS cryptographic operations (symmetric)"),
            Some(10_000.0)
        );
        assert_eq!(per_second("S3 GET/HEAD per prefix"), Some(5_500.0));
    }

    #[test]
    fn fleet_rates_parse_and_refuse_nonsense() {
        assert_eq!(
            "cold_per_s=50,reads_per_s=2000"
                .parse::<FleetRate>()
                .unwrap(),
            FleetRate {
                cold_per_s: 50.0,
                reads_per_s: 2000.0
            }
        );
        assert_eq!(
            "reads_per_s=5".parse::<FleetRate>().unwrap().cold_per_s,
            FleetRate::default().cold_per_s
        );
        for bad in ["cold=1", "cold_per_s=-1", "reads_per_s=x", "cold_per_s"] {
            assert!(bad.parse::<FleetRate>().is_err(), "{bad}");
        }
        let bad_quota = "source = \"x\"\n[[quota]]\nname = \"q\"\nper_second = 0\n";
        assert!(
            Quotas::from_toml(bad_quota)
                .unwrap_err()
                .contains("positive")
        );
    }

    #[test]
    fn the_first_quota_to_throttle_is_found_with_on_behalf_calls() {
        let quotas = Quotas::bundled();
        let prices = Prices::bundled();
        // Secrets Manager bare: 1 GetSecretValue per read, plus KMS's Decrypt on our behalf.
        let sm = StackCalls {
            backend: "secretsmanager".into(),
            per_cold_start: calls(&[("secretsmanager:GetSecretValue", 1.0)]),
            per_warm_read: calls(&[("secretsmanager:GetSecretValue", 1.0)]),
        };
        let fleet = model(&sm, &quotas, &prices, FleetRate::default());
        assert_eq!(fleet.warm.get("kms:Decrypt"), Some(&1.0));
        let Limit::At(rate, _) = &fleet.max_reads_per_s else {
            panic!("{fleet:?}")
        };
        assert_eq!(*rate, 10_000.0);
        // Parameter Store: the 40/s get quota comes first, long before KMS.
        let ssm = StackCalls {
            backend: "ssm".into(),
            per_cold_start: calls(&[("ssm:GetParameter", 1.0)]),
            per_warm_read: calls(&[("ssm:GetParameter", 1.0)]),
        };
        let fleet = model(&ssm, &quotas, &prices, FleetRate::default());
        assert_eq!(
            fleet.max_reads_per_s,
            Limit::At(
                40.0,
                "Parameter Store get APIs (standard throughput)".into()
            )
        );
        assert!(fleet.needs_ssm_higher_throughput, "1,000 reads/s > 40/s");
        assert!(
            fleet.monthly_usd > 0.0,
            "priced at the higher-throughput rate"
        );
        // An envelope stack's DescribeKey at init: 2,000/s caps the cold burst.
        let envelope = StackCalls {
            backend: "s3+kms".into(),
            per_cold_start: calls(&[
                ("kms:DescribeKey", 1.0),
                ("kms:Decrypt", 1.0),
                ("s3:GET", 1.0),
            ]),
            per_warm_read: calls(&[]),
        };
        let fleet = model(&envelope, &quotas, &prices, FleetRate::default());
        assert_eq!(
            fleet.max_cold_per_s,
            Limit::At(1_000.0, "Lambda scale-up per function".into()),
            "Lambda's own scale-up comes before DescribeKey's 2,000/s"
        );
        assert_eq!(
            fleet.max_reads_per_s,
            Limit::Unbounded,
            "a cached read makes no call"
        );
        // SSE-KMS: S3 asks KMS for every GET.
        let sse = StackCalls {
            backend: "s3+sse-kms".into(),
            per_cold_start: calls(&[]),
            per_warm_read: calls(&[("s3:GET", 1.0)]),
        };
        let fleet = model(&sse, &quotas, &prices, FleetRate::default());
        assert_eq!(fleet.warm.get("kms:Decrypt"), Some(&1.0));
        assert_eq!(
            fleet.max_reads_per_s,
            Limit::At(5_500.0, "S3 GET/HEAD per prefix".into())
        );
    }

    #[test]
    fn monthly_cost_is_the_rate_times_the_priced_calls() {
        let quotas = Quotas::bundled();
        let prices = Prices::bundled();
        let stack = StackCalls {
            backend: "secretsmanager".into(),
            per_cold_start: calls(&[("secretsmanager:GetSecretValue", 1.0)]),
            per_warm_read: calls(&[("secretsmanager:GetSecretValue", 1.0)]),
        };
        let rate = FleetRate {
            cold_per_s: 0.0,
            reads_per_s: 1.0,
        };
        let fleet = model(&stack, &quotas, &prices, rate);
        let want = prices.per_request["secretsmanager"] * SECONDS_PER_MONTH;
        assert!(
            (fleet.monthly_usd - want).abs() < 1e-9,
            "{}",
            fleet.monthly_usd
        );
        // GetSecretValue and KMS's Decrypt on our behalf: each quota 1/10,000 used.
        assert_eq!(fleet.busiest.unwrap().1, 1.0 / 10_000.0);
    }
}
