//! The AWS figures the report and the fleet model compute with, each with the page it comes
//! from: prices ([`Prices`], bundled as `prices.toml`) and request quotas with the calls
//! services make on the caller's behalf ([`Quotas`], `quotas.toml`), per Region. Both the
//! report and the fleet model read them; neither owns them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The published prices bundled with the CLI (see the file for where they come from).
pub(crate) const DEFAULT_PRICES: &str = include_str!("prices.toml");

/// The quota table bundled with the CLI (see the file for where it comes from).
pub(crate) const DEFAULT_QUOTAS: &str = include_str!("quotas.toml");

/// Prices the cost columns are computed from: USD, given as inputs (`--prices FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Prices {
    /// Where the numbers come from (shown under the table).
    pub(crate) source: String,
    /// When they were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) read: Option<String>,
    /// The Regions they hold for (empty in runs recorded before prices had Regions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) regions: Vec<String>,
    /// USD per request, by service as the SDK signs it (`secretsmanager`, `kms`, `s3`).
    pub(crate) per_request: BTreeMap<String, f64>,
    /// USD per GB-second of Lambda duration, by architecture (`x86_64`, `arm64`).
    pub(crate) lambda_gb_second: BTreeMap<String, f64>,
    /// KMS requests S3 makes for each GET of an SSE-KMS object, as runs recorded before
    /// `quotas.toml`'s on-behalf rules billed them; no longer used.
    pub(crate) sse_kms_kms_requests_per_get: f64,
    /// USD per Parameter Store request with its higher-throughput setting on (standard
    /// throughput is free); the fleet model uses it where a rate needs that setting.
    #[serde(default)]
    pub(crate) ssm_higher_throughput_per_request: f64,
    /// Fixed monthly fees.
    #[serde(default)]
    pub(crate) monthly: MonthlyFees,
    /// Free tiers per month.
    #[serde(default)]
    pub(crate) free_per_month: FreeTiers,
    /// The page each figure comes from, by its key (`per_request.kms`, `monthly.secret`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) sources: BTreeMap<String, String>,
}

/// Fixed monthly fees, USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MonthlyFees {
    /// A Secrets Manager secret.
    pub(crate) secret: f64,
    /// A customer-managed KMS key.
    pub(crate) kms_key: f64,
    /// An advanced Parameter Store parameter.
    pub(crate) ssm_advanced_parameter: f64,
    /// A VPC interface endpoint, per hour per Availability Zone.
    pub(crate) vpc_endpoint_hour: f64,
}

/// Free tiers, per month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FreeTiers {
    /// KMS requests (across all Regions).
    pub(crate) kms_requests: f64,
    /// Lambda invocations.
    pub(crate) lambda_requests: f64,
    /// Lambda GB-seconds.
    pub(crate) lambda_gb_seconds: f64,
}

impl Prices {
    /// Parses a prices file.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub(crate) fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("invalid prices file: {e}"))
    }

    /// The bundled prices.
    pub(crate) fn bundled() -> Self {
        Self::from_toml(DEFAULT_PRICES).expect("the bundled prices parse")
    }

    /// Whether these prices are known to hold in `region`.
    pub(crate) fn holds_for(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }
}

/// Request quotas and the calls services make on the caller's behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Quotas {
    /// Where the numbers come from (shown with the model).
    pub(crate) source: String,
    /// When they were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) read: Option<String>,
    /// The Regions the table holds for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) regions: Vec<String>,
    /// The Region `per_second` was resolved for ([`Quotas::for_region`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) region: Option<String>,
    /// The quotas.
    pub(crate) quota: Vec<Quota>,
    /// Calls services make for the caller, against the caller's quotas and bill.
    #[serde(default)]
    pub(crate) on_behalf: Vec<OnBehalf>,
}

/// One request quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Quota {
    /// Its name as AWS gives it.
    pub(crate) name: String,
    /// Requests per second (environments, for a concurrency quota), in every Region
    /// `by_region` does not name.
    pub(crate) per_second: f64,
    /// The Regions whose figure differs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) by_region: BTreeMap<String, f64>,
    /// The calls it counts (`service:Operation`; `service` alone counts all of them).
    #[serde(default)]
    pub(crate) operations: Vec<String>,
    /// Counts cold starts themselves (Lambda's scale-up rate), not calls.
    #[serde(default)]
    pub(crate) cold_starts: bool,
    /// Each function has its own (Lambda's scale-up): the fleet's is this times its functions.
    #[serde(default)]
    pub(crate) per_function: bool,
    /// Counts execution environments alive at once, not a rate.
    #[serde(default)]
    pub(crate) concurrency: bool,
    /// What it is per, when not per account and Region.
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// Anything a reader should know.
    #[serde(default)]
    pub(crate) note: Option<String>,
    /// The page it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
}

impl Quota {
    /// Whether it counts `operation`.
    pub(crate) fn counts(&self, operation: &str) -> bool {
        self.operations.iter().any(|counted| {
            counted == operation
                || (!counted.contains(':') && operation.split(':').next() == Some(counted))
        })
    }
}

/// Calls a service makes for the caller: each `operation` call adds `per_call` `adds` calls
/// (times the secrets a batch call returns, up to `per_secret_up_to`, where given).
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
    /// How many per call (per secret, with `per_secret_up_to`).
    pub(crate) per_call: f64,
    /// A batch call: one per secret it returns, at most this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) per_secret_up_to: Option<f64>,
    /// An S3 Bucket Key takes it away.
    #[serde(default)]
    pub(crate) bucket_key_avoids: bool,
    /// The page it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
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
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if let Some(bad) = quotas
            .quota
            .iter()
            .find(|q| !positive(q.per_second) || !q.by_region.values().all(|v| positive(*v)))
        {
            return Err(format!(
                "invalid quotas file: `{}` needs a positive per_second in every Region",
                bad.name
            ));
        }
        Ok(quotas)
    }

    /// The bundled quotas.
    pub(crate) fn bundled() -> Self {
        Self::from_toml(DEFAULT_QUOTAS).expect("the bundled quotas parse")
    }

    /// The quotas as they are in `region`: each `per_second` its Region's figure.
    pub(crate) fn for_region(&self, region: &str) -> Self {
        let mut out = self.clone();
        out.region = Some(region.to_owned());
        for quota in &mut out.quota {
            if let Some(figure) = quota.by_region.get(region) {
                quota.per_second = *figure;
            }
        }
        out
    }

    /// Whether the table is known to hold in `region`.
    pub(crate) fn holds_for(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::bundled()
    }
}

/// What decides which on-behalf calls a stack's calls bring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OnBehalfOptions {
    /// Secrets a batch call returns.
    pub(crate) secrets_per_batch: f64,
    /// The bucket has an S3 Bucket Key.
    pub(crate) bucket_key: bool,
    /// `s3+kms` envelope objects are also SSE-KMS (a bucket whose default encryption is
    /// SSE-KMS): S3 decrypts them with KMS too, a third request per read.
    pub(crate) envelope_sse_kms: bool,
}

impl Default for OnBehalfOptions {
    fn default() -> Self {
        Self {
            secrets_per_batch: 1.0,
            bucket_key: false,
            envelope_sse_kms: false,
        }
    }
}

fn applies(rule: &OnBehalf, backend: &str, options: OnBehalfOptions) -> bool {
    let backend_matches = match rule.backend.as_deref() {
        None => true,
        Some(b) => {
            b == backend || (options.envelope_sse_kms && b == "s3+sse-kms" && backend == "s3+kms")
        }
    };
    backend_matches && !(options.bucket_key && rule.bucket_key_avoids)
}

/// `calls` (by `service:Operation`) of a stack over `backend`, with the calls services make
/// on the caller's behalf added.
pub(crate) fn with_on_behalf(
    calls: &BTreeMap<String, f64>,
    backend: &str,
    rules: &[OnBehalf],
    options: OnBehalfOptions,
) -> BTreeMap<String, f64> {
    let mut out = calls.clone();
    for rule in rules.iter().filter(|r| applies(r, backend, options)) {
        if let Some(n) = calls.get(&rule.operation) {
            let per_call = match rule.per_secret_up_to {
                Some(most) => rule.per_call * options.secrets_per_batch.clamp(1.0, most),
                None => rule.per_call,
            };
            *out.entry(rule.adds.clone()).or_default() += n * per_call;
        }
    }
    out
}

/// The service of a call counted as `service:Operation` (or, in older runs, `service`).
pub(crate) fn service_of(operation: &str) -> &str {
    operation.split(':').next().unwrap_or(operation)
}

/// Calls by operation, summed by service.
pub(crate) fn by_service(calls: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut requests = BTreeMap::new();
    for (operation, n) in calls {
        *requests
            .entry(service_of(operation).to_owned())
            .or_default() += n;
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn the_bundled_tables_parse_and_name_a_source_for_every_figure() {
        let prices = Prices::bundled();
        assert!(prices.per_request.contains_key("secretsmanager"));
        assert!(prices.lambda_gb_second.contains_key("arm64"));
        for key in prices
            .per_request
            .keys()
            .map(|k| format!("per_request.{k}"))
            .chain(
                [
                    "lambda_gb_second",
                    "monthly.secret",
                    "monthly.kms_key",
                    "monthly.vpc_endpoint_hour",
                    "free_per_month.kms_requests",
                ]
                .map(String::from),
            )
        {
            let source = prices.sources.get(&key);
            assert!(
                source.is_some_and(|s| s.starts_with("https://")),
                "{key}: {source:?}"
            );
        }
        let quotas = Quotas::bundled();
        for quota in &quotas.quota {
            assert!(
                quota
                    .source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("https://")),
                "{}",
                quota.name
            );
        }
        for rule in &quotas.on_behalf {
            assert!(rule.source.is_some(), "{}", rule.operation);
        }
        assert!(quotas.read.is_some() && prices.read.is_some());
    }

    #[test]
    fn kms_s_quota_is_the_region_s() {
        // KMS's request-quota page: 100,000/s in us-east-1, us-west-2 and eu-west-1; 20,000/s
        // in six Regions among them eu-central-1; 10,000/s in every other.
        let quotas = Quotas::bundled();
        let kms = |region: &str| {
            quotas
                .for_region(region)
                .quota
                .iter()
                .find(|q| q.name == "KMS cryptographic operations (symmetric)")
                .unwrap()
                .per_second
        };
        assert_eq!(kms("us-east-1"), 100_000.0);
        assert_eq!(kms("eu-west-1"), 100_000.0);
        assert_eq!(kms("eu-central-1"), 20_000.0);
        assert_eq!(kms("sa-east-1"), 10_000.0);
        assert!(quotas.holds_for("sa-east-1"));
        assert!(!quotas.holds_for("cn-north-1"), "another partition");
        assert!(Prices::bundled().holds_for("us-east-1"));
        assert!(!Prices::bundled().holds_for("eu-west-1"));
    }

    #[test]
    fn services_calls_on_the_caller_s_behalf() {
        let rules = Quotas::bundled().on_behalf;
        let plain = OnBehalfOptions::default();
        // Secrets Manager: one Decrypt per GetSecretValue.
        let sm = with_on_behalf(
            &calls(&[("secretsmanager:GetSecretValue", 1.0)]),
            "secretsmanager",
            &rules,
            plain,
        );
        assert_eq!(sm.get("kms:Decrypt"), Some(&1.0));
        // A batch of 5 secrets: 5 Decrypts; of 50 (more than a call takes): 20.
        let batch = calls(&[("secretsmanager:BatchGetSecretValue", 1.0)]);
        let five = OnBehalfOptions {
            secrets_per_batch: 5.0,
            ..plain
        };
        let fifty = OnBehalfOptions {
            secrets_per_batch: 50.0,
            ..plain
        };
        assert_eq!(
            with_on_behalf(&batch, "secretsmanager", &rules, five).get("kms:Decrypt"),
            Some(&5.0)
        );
        assert_eq!(
            with_on_behalf(&batch, "secretsmanager", &rules, fifty).get("kms:Decrypt"),
            Some(&20.0)
        );
        // SSE-KMS: a Decrypt per GET, none with a Bucket Key; envelope objects only in a
        // bucket whose default encryption is SSE-KMS.
        let get = calls(&[("s3:GET", 1.0), ("kms:Decrypt", 1.0)]);
        assert_eq!(
            with_on_behalf(&calls(&[("s3:GET", 1.0)]), "s3+sse-kms", &rules, plain)
                .get("kms:Decrypt"),
            Some(&1.0)
        );
        let bucket_key = OnBehalfOptions {
            bucket_key: true,
            ..plain
        };
        assert_eq!(
            with_on_behalf(&calls(&[("s3:GET", 1.0)]), "s3+sse-kms", &rules, bucket_key)
                .get("kms:Decrypt"),
            None
        );
        assert_eq!(
            with_on_behalf(&get, "s3+kms", &rules, plain).get("kms:Decrypt"),
            Some(&1.0)
        );
        let sse_default = OnBehalfOptions {
            envelope_sse_kms: true,
            ..plain
        };
        // s3+kms in an SSE-KMS bucket: three requests a read (GET, our Decrypt, S3's).
        let three = with_on_behalf(&get, "s3+kms", &rules, sse_default);
        assert_eq!(three.values().sum::<f64>(), 3.0);
        assert_eq!(by_service(&three), calls(&[("kms", 2.0), ("s3", 1.0)]));
    }
}
