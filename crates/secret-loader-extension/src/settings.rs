//! The switches: AWS's Parameters and Secrets Lambda Extension's environment variables with
//! their meanings, and ours beside them (`SECRET_LOADER_EXTENSION_*`).

use std::collections::BTreeMap;
use std::time::Duration;

/// `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`: the port on 127.0.0.1 (default 2773).
pub const PORT_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";
/// `SECRETS_MANAGER_TTL`: seconds a secret stays cached (default 300; 0 = no cache).
pub const SECRETS_MANAGER_TTL_ENV: &str = "SECRETS_MANAGER_TTL";
/// `SSM_PARAMETER_STORE_TTL`: seconds a parameter stays cached (default 300; 0 = no cache).
pub const SSM_TTL_ENV: &str = "SSM_PARAMETER_STORE_TTL";
/// `PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED`: `TRUE` (default) or `FALSE`.
pub const CACHE_ENABLED_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED";
/// `PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE`: entries per cache (default 1000; 0 = no cache).
pub const CACHE_SIZE_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE";
/// `PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`: requests to AWS in flight at once, per
/// stack (default 3).
pub const MAX_CONNECTIONS_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS";
/// `PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL`: `DEBUG`, `INFO` (default), `WARN`, `ERROR`,
/// `NONE`.
pub const LOG_LEVEL_ENV: &str = "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL";
/// `SECRETS_MANAGER_TIMEOUT_MILLIS`: deadline of a Secrets Manager read (0 = ours, 15 s).
pub const SECRETS_MANAGER_TIMEOUT_ENV: &str = "SECRETS_MANAGER_TIMEOUT_MILLIS";
/// `SSM_PARAMETER_STORE_TIMEOUT_MILLIS`: deadline of a Parameter Store read (0 = ours, 15 s).
pub const SSM_TIMEOUT_ENV: &str = "SSM_PARAMETER_STORE_TIMEOUT_MILLIS";

/// `SECRET_LOADER_EXTENSION_STACKS`: a JSON object of stack name → source URL.
pub const STACKS_ENV: &str = "SECRET_LOADER_EXTENSION_STACKS";
/// `SECRET_LOADER_EXTENSION_TOKEN_ENV`: the variable holding the token (default: the first
/// set of [`TOKEN_VARIABLES`], as the Secrets Manager Agent looks it up).
pub const TOKEN_ENV_ENV: &str = "SECRET_LOADER_EXTENSION_TOKEN_ENV";
/// Where the token is looked for, in order (the Secrets Manager Agent's
/// `ssrf_env_variables`): a value `file://PATH` names a file holding it.
pub const TOKEN_VARIABLES: [&str; 3] = [
    "AWS_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];
/// `SECRET_LOADER_EXTENSION_IDLE_TIMEOUT_MS`: how long a connection may take to send a
/// request's headers, and stay idle between requests (default 30,000, the agent's header read
/// timeout); then it is closed.
pub const IDLE_TIMEOUT_ENV: &str = "SECRET_LOADER_EXTENSION_IDLE_TIMEOUT_MS";
/// `SECRET_LOADER_EXTENSION_STALE_FOR_S`: how long past its TTL a cached value is still
/// served when the refresh fails with a transient error (throttled, 5xx, connection), for the
/// stacks the AWS switches configure. Default: 0 in Lambda (AWS's extension answers the
/// error), 3600 as an agent (the Secrets Manager Agent serves the stale value:
/// `ignore_transient_errors`, on by default).
pub const STALE_FOR_ENV: &str = "SECRET_LOADER_EXTENSION_STALE_FOR_S";
/// Lambda's `AWS_LAMBDA_INITIALIZATION_TYPE`: `snap-start` when this INIT is the one a
/// SnapStart snapshot is taken after.
pub const INITIALIZATION_TYPE_ENV: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
/// `SECRET_LOADER_EXTENSION_CONNECTION_LIFETIME_S`: how long one connection is served before
/// it is closed after its request in hand (default 300).
pub const CONNECTION_LIFETIME_ENV: &str = "SECRET_LOADER_EXTENSION_CONNECTION_LIFETIME_S";
/// `SECRET_LOADER_EXTENSION_MAX_CLIENTS`: open client connections at once (default 800, the
/// Secrets Manager Agent's); beyond it a request gets 429.
pub const MAX_CLIENTS_ENV: &str = "SECRET_LOADER_EXTENSION_MAX_CLIENTS";
/// `SECRET_LOADER_EXTENSION_PREFETCH`: ids to read at start, comma-separated (`id` for the
/// Secrets Manager route's stack, `stack:id` for another).
pub const PREFETCH_ENV: &str = "SECRET_LOADER_EXTENSION_PREFETCH";

/// The default port, AWS's.
pub const DEFAULT_PORT: u16 = 2773;
/// The default deadline of one read when the switch is 0: the library's whole-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Log levels, as AWS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
    /// `NONE`: no logs.
    None,
}

/// Everything the extension reads from its environment. `Debug` leaves the token out.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// Cache lifetime of the Secrets Manager route's stack; `None`: no cache.
    pub secrets_manager_ttl: Option<Duration>,
    /// Cache lifetime of the Parameter Store route's stack; `None`: no cache.
    pub ssm_ttl: Option<Duration>,
    /// Entries per cache.
    pub cache_size: usize,
    /// Requests to AWS in flight at once, per stack.
    pub max_connections: usize,
    /// Open client connections at once.
    pub max_clients: usize,
    /// Log level.
    pub log_level: LogLevel,
    /// Deadline of one Secrets Manager read.
    pub secrets_manager_timeout: Duration,
    /// Deadline of one Parameter Store read.
    pub ssm_timeout: Duration,
    /// The time a connection gets to send a request's headers, and may stay idle between
    /// requests.
    pub idle_timeout: Duration,
    /// How long one connection is served.
    pub connection_lifetime: Duration,
    /// How long past its TTL a value is served when its refresh fails transiently.
    pub stale_for: Duration,
    /// Running as a Lambda extension (`AWS_LAMBDA_RUNTIME_API` is set): bodies as AWS's
    /// extension writes them; outside Lambda, as the Secrets Manager Agent does.
    pub in_lambda: bool,
    /// SnapStart (`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`): no secret is cached or
    /// prefetched before the snapshot; caching starts with the first `INVOKE` (after restore).
    pub snap_start: bool,
    /// The variable whose value the token header must equal.
    pub token_variable: String,
    /// The token (that variable's value).
    pub token: String,
    /// Stacks by name: from [`STACKS_ENV`], else `SECRET_LOADER_SOURCE` / `SECRET_LOADER_CONFIG`
    /// as `default`, else AWS's two (`secretsmanager://` and `ssm://`).
    pub stacks: StackSource,
    /// Ids to read at start: (stack name or `None` for the Secrets Manager route's, id).
    pub prefetch: Vec<(Option<String>, String)>,
    /// Switches out of range that were clamped, one line each, logged at start (AWS's
    /// extension clamps too, rather than failing its INIT).
    pub warnings: Vec<String>,
}

/// Where the stacks come from.
#[derive(Debug, Clone, PartialEq)]
pub enum StackSource {
    /// [`STACKS_ENV`]: name → source URL.
    Named(BTreeMap<String, String>),
    /// `SECRET_LOADER_SOURCE` or `SECRET_LOADER_CONFIG`: one stack, `default`.
    Single(Box<secret_loader::Config>),
    /// Nothing configured: `secretsmanager://` and `ssm://`, as AWS's extension serves.
    AwsDefaults,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("port", &self.port)
            .field("secrets_manager_ttl", &self.secrets_manager_ttl)
            .field("ssm_ttl", &self.ssm_ttl)
            .field("cache_size", &self.cache_size)
            .field("max_connections", &self.max_connections)
            .field("max_clients", &self.max_clients)
            .field("log_level", &self.log_level)
            .field("secrets_manager_timeout", &self.secrets_manager_timeout)
            .field("ssm_timeout", &self.ssm_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("connection_lifetime", &self.connection_lifetime)
            .field("stale_for", &self.stale_for)
            .field("in_lambda", &self.in_lambda)
            .field("snap_start", &self.snap_start)
            .field("token_variable", &self.token_variable)
            .field("token", &"[REDACTED]")
            .field("stacks", &self.stacks)
            .field("prefetch", &self.prefetch)
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl Settings {
    /// The settings from this process's environment.
    ///
    /// # Errors
    /// One message naming the variable and what is valid.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The settings from another variable lookup (tests, `secret-loader serve`).
    ///
    /// # Errors
    /// As [`Settings::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let warnings = std::cell::RefCell::new(Vec::new());
        // A whole number; one out of `min..=max` is clamped into it, with a warning. Text
        // that is no number at all is refused: that is a mistake, not a bound.
        let bounded = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
            let Some(text) = get(name) else {
                return Ok(default);
            };
            let number = text.parse::<i128>().map_err(|_| {
                format!("{name}=`{text}`: expected a whole number from {min} to {max}")
            })?;
            let clamped = number.clamp(i128::from(min), i128::from(max)) as u64;
            if i128::from(clamped) != number {
                warnings.borrow_mut().push(format!(
                    "{name}={text} is out of range ({min} to {max}); using {clamped}"
                ));
            }
            Ok(clamped)
        };
        let number = |name: &str, default: u64, max: u64| bounded(name, default, 0, max);
        let port = match get(PORT_ENV) {
            Some(text) if !text.parse::<u16>().is_ok_and(|p| p > 0) => {
                warnings.borrow_mut().push(format!(
                    "{PORT_ENV}={text} is not a port from 1 to 65535; using {DEFAULT_PORT}"
                ));
                u64::from(DEFAULT_PORT)
            }
            _ => number(PORT_ENV, u64::from(DEFAULT_PORT), 65_535)?,
        };
        let cache_enabled = match get(CACHE_ENABLED_ENV).map(|v| v.to_ascii_lowercase()) {
            None => true,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => return Err(format!("{CACHE_ENABLED_ENV}=`{v}`: expected TRUE or FALSE")),
        };
        let cache_size = number(CACHE_SIZE_ENV, 1000, 1_000_000)? as usize;
        // No 300 s cap (AWS's): a day at most, which is what "rotate daily" needs.
        let ttl = |name| -> Result<Option<Duration>, String> {
            let seconds = number(name, 300, 86_400)?;
            Ok((cache_enabled && cache_size > 0 && seconds > 0)
                .then(|| Duration::from_secs(seconds)))
        };
        let timeout = |name| -> Result<Duration, String> {
            Ok(match number(name, 0, 600_000)? {
                0 => DEFAULT_TIMEOUT,
                millis => Duration::from_millis(millis),
            })
        };
        let max_connections = bounded(MAX_CONNECTIONS_ENV, 3, 1, 10_000)? as usize;
        let max_clients = bounded(MAX_CLIENTS_ENV, 800, 1, 100_000)? as usize;
        let idle_timeout =
            Duration::from_millis(bounded(IDLE_TIMEOUT_ENV, 30_000, 100, 3_600_000)?);
        let connection_lifetime =
            Duration::from_secs(bounded(CONNECTION_LIFETIME_ENV, 300, 1, 86_400)?);
        let in_lambda = get("AWS_LAMBDA_RUNTIME_API").is_some();
        let stale_for = Duration::from_secs(bounded(
            STALE_FOR_ENV,
            if in_lambda { 0 } else { 3600 },
            0,
            86_400,
        )?);
        let log_level = match get(LOG_LEVEL_ENV)
            .map(|v| v.to_ascii_uppercase())
            .as_deref()
        {
            None | Some("INFO") => LogLevel::Info,
            Some("DEBUG") => LogLevel::Debug,
            Some("WARN") => LogLevel::Warn,
            Some("ERROR") => LogLevel::Error,
            Some("NONE") => LogLevel::None,
            Some(other) => {
                return Err(format!(
                    "{LOG_LEVEL_ENV}=`{other}`: expected DEBUG, INFO, WARN, ERROR or NONE"
                ));
            }
        };
        let (token_variable, token) = token(&get)?;
        let stacks =
            match get(STACKS_ENV) {
                Some(json) => {
                    let stacks: BTreeMap<String, String> = serde_json::from_str(&json).map_err(|e| {
                    format!("{STACKS_ENV} must be a JSON object of stack name to source URL: {e}")
                })?;
                    if stacks.is_empty() {
                        return Err(format!("{STACKS_ENV} names no stack"));
                    }
                    StackSource::Named(stacks)
                }
                None if get(secret_loader::config::SOURCE_ENV).is_some()
                    || get(secret_loader::config::CONFIG_FILE_ENV).is_some() =>
                {
                    let config = secret_loader::Config::from_lookup(&lookup)
                        .map_err(|e| e.display_chain().to_string())?;
                    StackSource::Single(Box::new(config))
                }
                None => StackSource::AwsDefaults,
            };
        let prefetch = get(PREFETCH_ENV)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| match item.split_once(':') {
                        // `arn:...` is an id, not `stack:id`.
                        Some((stack, id)) if stack != "arn" => {
                            (Some(stack.to_owned()), id.to_owned())
                        }
                        _ => (None, item.to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            port: port as u16,
            secrets_manager_ttl: ttl(SECRETS_MANAGER_TTL_ENV)?,
            ssm_ttl: ttl(SSM_TTL_ENV)?,
            cache_size: cache_size.max(1),
            max_connections,
            max_clients,
            log_level,
            secrets_manager_timeout: timeout(SECRETS_MANAGER_TIMEOUT_ENV)?,
            ssm_timeout: timeout(SSM_TIMEOUT_ENV)?,
            idle_timeout,
            connection_lifetime,
            stale_for,
            in_lambda,
            snap_start: get(INITIALIZATION_TYPE_ENV).is_some_and(|t| t == "snap-start"),
            token_variable,
            token,
            stacks,
            prefetch,
            warnings: warnings.into_inner(),
        })
    }
}

/// The token and the variable it came from: [`TOKEN_ENV_ENV`]'s variable when one is named,
/// else the first of [`TOKEN_VARIABLES`] that is set; a value `file://PATH` is read from that
/// file (trimmed), as the agent does.
fn token(get: &impl Fn(&str) -> Option<String>) -> Result<(String, String), String> {
    let candidates: Vec<String> = match get(TOKEN_ENV_ENV) {
        Some(name) => vec![name],
        None => TOKEN_VARIABLES
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
    };
    let Some((variable, value)) = candidates
        .iter()
        .find_map(|name| get(name).map(|value| (name.clone(), value)))
    else {
        return Err(format!(
            "no token: set {} (every request must carry it in X-Aws-Parameters-Secrets-Token \
             or X-Vault-Token), or name another variable with {TOKEN_ENV_ENV}",
            candidates.join(" or ")
        ));
    };
    let token = match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                format!("{variable} names the token file {path}, which can't be read: {e}")
            })?
            .trim()
            .to_owned(),
        None => value,
    };
    if token.is_empty() {
        return Err(format!("{variable}: the token is empty"));
    }
    Ok((variable, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_are_aws_s_with_the_session_token() {
        let s = settings(&[("AWS_SESSION_TOKEN", "tok")]).unwrap();
        assert_eq!(s.port, 2773);
        assert_eq!(s.secrets_manager_ttl, Some(Duration::from_secs(300)));
        assert_eq!(s.ssm_ttl, Some(Duration::from_secs(300)));
        assert_eq!(
            (s.cache_size, s.max_connections, s.max_clients),
            (1000, 3, 800)
        );
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.secrets_manager_timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            (s.token_variable.as_str(), s.token.as_str()),
            ("AWS_SESSION_TOKEN", "tok")
        );
        assert_eq!(s.stacks, StackSource::AwsDefaults);
    }

    #[test]
    fn switches_keep_aws_s_meanings() {
        let s = settings(&[
            ("AWS_SESSION_TOKEN", "tok"),
            (PORT_ENV, "9000"),
            (SECRETS_MANAGER_TTL_ENV, "3600"),
            (SSM_TTL_ENV, "0"),
            (CACHE_SIZE_ENV, "10"),
            (MAX_CONNECTIONS_ENV, "8"),
            (LOG_LEVEL_ENV, "debug"),
            (SECRETS_MANAGER_TIMEOUT_ENV, "250"),
            (
                PREFETCH_ENV,
                "a/b, s3:c ,arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf",
            ),
        ])
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(
            s.secrets_manager_ttl,
            Some(Duration::from_secs(3600)),
            "no 300 s cap"
        );
        assert_eq!(s.ssm_ttl, None, "0 turns the cache off");
        assert_eq!(s.cache_size, 10);
        assert_eq!(s.max_connections, 8);
        assert_eq!(s.log_level, LogLevel::Debug);
        assert_eq!(s.secrets_manager_timeout, Duration::from_millis(250));
        assert_eq!(
            s.prefetch,
            [
                (None, "a/b".to_owned()),
                (Some("s3".to_owned()), "c".to_owned()),
                (
                    None,
                    "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf".to_owned()
                ),
            ]
        );
        let off = settings(&[("AWS_SESSION_TOKEN", "t"), (CACHE_ENABLED_ENV, "FALSE")]).unwrap();
        assert_eq!((off.secrets_manager_ttl, off.ssm_ttl), (None, None));
        let zero = settings(&[("AWS_SESSION_TOKEN", "t"), (CACHE_SIZE_ENV, "0")]).unwrap();
        assert_eq!(
            zero.secrets_manager_ttl, None,
            "size 0 turns the caches off"
        );
    }

    #[test]
    fn bad_switches_and_a_missing_token_are_refused_by_name() {
        for (vars, says) in [
            (
                vec![],
                "AWS_TOKEN or AWS_SESSION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN",
            ),
            (vec![(CACHE_ENABLED_ENV, "yes")], CACHE_ENABLED_ENV),
            (vec![(LOG_LEVEL_ENV, "LOUD")], LOG_LEVEL_ENV),
            (
                vec![(SECRETS_MANAGER_TTL_ENV, "five")],
                SECRETS_MANAGER_TTL_ENV,
            ),
            (vec![(STACKS_ENV, "[]")], STACKS_ENV),
            (vec![(STACKS_ENV, "{}")], STACKS_ENV),
        ] {
            let mut vars = vars;
            if !says.contains("AWS_SESSION_TOKEN") {
                vars.push(("AWS_SESSION_TOKEN", "t"));
            }
            let err = settings(&vars).unwrap_err();
            assert!(err.contains(says), "{vars:?}: {err}");
        }
        let other =
            settings(&[(TOKEN_ENV_ENV, "MY_TOKEN"), ("MY_TOKEN", "x-secret-token")]).unwrap();
        assert_eq!(other.token, "x-secret-token");
        assert!(
            !format!("{other:?}").contains("x-secret-token"),
            "Debug leaves the token out"
        );
    }

    /// Out of range is clamped with a warning (as AWS's extension does), not a failed INIT.
    #[test]
    fn out_of_range_switches_are_clamped_with_a_warning() {
        let s = settings(&[
            ("AWS_SESSION_TOKEN", "t"),
            (PORT_ENV, "70000"),
            (SECRETS_MANAGER_TTL_ENV, "999999"),
            (SSM_TTL_ENV, "-5"),
            (MAX_CONNECTIONS_ENV, "0"),
            (IDLE_TIMEOUT_ENV, "1"),
        ])
        .unwrap();
        assert_eq!(s.port, DEFAULT_PORT);
        assert_eq!(s.secrets_manager_ttl, Some(Duration::from_secs(86_400)));
        assert_eq!(s.ssm_ttl, None, "clamped to 0: no cache");
        assert_eq!(s.max_connections, 1);
        assert_eq!(s.idle_timeout, Duration::from_millis(100));
        assert_eq!(s.warnings.len(), 5, "{:?}", s.warnings);
        for name in [
            PORT_ENV,
            SECRETS_MANAGER_TTL_ENV,
            SSM_TTL_ENV,
            MAX_CONNECTIONS_ENV,
        ] {
            assert!(
                s.warnings.iter().any(|w| w.starts_with(name)),
                "{name}: {:?}",
                s.warnings
            );
        }
        let quiet = settings(&[("AWS_SESSION_TOKEN", "t")]).unwrap();
        assert!(quiet.warnings.is_empty());
        assert_eq!(
            (quiet.idle_timeout, quiet.connection_lifetime),
            (Duration::from_secs(30), Duration::from_secs(300))
        );
        assert_eq!(quiet.stale_for, Duration::from_secs(3600), "as an agent");
        let in_lambda = settings(&[
            ("AWS_SESSION_TOKEN", "t"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ])
        .unwrap();
        assert_eq!(in_lambda.stale_for, Duration::ZERO, "as AWS's extension");
    }

    /// The token is looked up as the Secrets Manager Agent looks it up: `AWS_TOKEN`, then
    /// `AWS_SESSION_TOKEN`, then `AWS_CONTAINER_AUTHORIZATION_TOKEN` (what SnapStart
    /// functions have), and a `file://` value is read from its file.
    #[test]
    fn the_token_is_looked_up_as_the_agent_does() {
        let pick = |vars: &[(&str, &str)]| {
            let s = settings(vars).unwrap();
            (s.token_variable, s.token)
        };
        assert_eq!(
            pick(&[("AWS_TOKEN", "a"), ("AWS_SESSION_TOKEN", "b")]),
            ("AWS_TOKEN".to_owned(), "a".to_owned())
        );
        assert_eq!(
            pick(&[("AWS_CONTAINER_AUTHORIZATION_TOKEN", "c")]),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(),
                "c".to_owned()
            )
        );
        let dir = std::env::temp_dir().join(format!("sl-token-{}", std::process::id()));
        std::fs::write(&dir, "from-a-file\n").unwrap();
        let file = format!("file://{}", dir.display());
        assert_eq!(pick(&[("AWS_TOKEN", &file)]).1, "from-a-file");
        std::fs::remove_file(&dir).unwrap();
        let err = settings(&[("AWS_TOKEN", &file)]).unwrap_err();
        assert!(
            err.contains("can't be read") && err.contains("AWS_TOKEN"),
            "{err}"
        );
    }
}
