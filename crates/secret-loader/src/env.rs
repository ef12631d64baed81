//! Environment-variable backends: `env+kms://`, a KMS ciphertext in a variable as Lambda's
//! console "encryption helpers" make them, and `env://`, the plaintext baseline.
//!
//! # Ids and variable names
//!
//! An id's name is upper-cased and every character outside `A-Z 0-9 _` becomes `_`, after an
//! optional `prefix=` (itself `A-Z 0-9 _`): `api_key` and `API_KEY` both read `API_KEY`,
//! `prod/db-password` reads `PROD_DB_PASSWORD`, and with `prefix=APP_`, `APP_PROD_DB_PASSWORD`.
//! The mapping is many-to-one by design (variables are flat), so it has no inverse.
//!
//! # `env+kms://`
//!
//! The variable holds the base64 of a KMS ciphertext (what `aws kms encrypt` prints, what the
//! console's encryption helpers store); each read is one KMS `Decrypt`, so put a memory cache
//! over it. The encryption context is, by `context=`:
//!
//! * `auto` (default): `LambdaFunctionName=$AWS_LAMBDA_FUNCTION_NAME` when that variable is
//!   set (as the console's own sample code decrypts), none otherwise;
//! * `none`: no context;
//! * `K=V[,K=V...]`: exactly these pairs.
//!
//! A process cannot change another process's environment, so these sources have no `put`:
//! [`EnvKmsSource::seal`] (the CLI's `seal`) makes the value to put in the function's
//! configuration.
//!
//! # `env://`
//!
//! The value in plain text. Anyone who can read the function's configuration
//! (`lambda:GetFunctionConfiguration`, the console) reads the secret: it is here as the
//! zero-cost baseline the comparison measures the safer options against.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::Client as KmsClient;
use aws_sdk_kms::primitives::Blob;
use secrecy::{ExposeSecret, SecretString};

use crate::aws::{AwsOptions, classify_sdk_error};
use crate::error::{BoxError, Error, Result};
use crate::id::SecretId;
use crate::options::Options;
use crate::source::SecretSource;
use crate::value::{STAGE_CURRENT, Secret, SecretValue, VersionSelector};

/// The backend name of `env+kms://`, used in errors and `Display`.
pub const BACKEND_KMS: &str = "env+kms";
/// The backend name of `env://`.
pub const BACKEND_PLAIN: &str = "env";
/// The encryption-context key Lambda's console encryption helpers bind ciphertexts to.
pub const FUNCTION_NAME_CONTEXT_KEY: &str = "LambdaFunctionName";
/// The variable Lambda sets to the function's name.
pub const FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";
/// The largest plaintext one KMS `Encrypt` takes, bytes.
pub const MAX_SEAL_BYTES: u64 = 4096;
/// Lambda's limit on all of a function's environment variables together, bytes.
pub const LAMBDA_ENVIRONMENT_BYTES: usize = 4096;

/// The variable `id` reads, after `prefix` (see the [module docs](self)).
pub fn variable_name(prefix: &str, id: &SecretId) -> String {
    let mut name = String::with_capacity(prefix.len() + id.name().len());
    name.push_str(prefix);
    name.extend(id.name().chars().map(|c| match c.to_ascii_uppercase() {
        c @ ('A'..='Z' | '0'..='9' | '_') => c,
        _ => '_',
    }));
    name
}

/// Where the variables come from: this process's environment, or a map the caller fills
/// (a function's configuration being prepared, tests).
#[derive(Clone, Default)]
pub struct Environment(Option<Arc<RwLock<HashMap<String, SecretString>>>>);

impl Environment {
    /// This process's environment, read at each `get` (Lambda fixes it at start-up).
    pub fn process() -> Self {
        Self(None)
    }

    /// An empty map of variables, shared by every clone.
    pub fn map() -> Self {
        Self(Some(Arc::default()))
    }

    /// Sets `name` in a map environment (a no-op for the process's, which is not ours to
    /// change). Returns whether the variable was set before.
    pub fn set(&self, name: &str, value: impl Into<String>) -> bool {
        self.0.as_ref().is_some_and(|map| {
            map.write()
                .unwrap_or_else(|poison| poison.into_inner())
                .insert(name.to_owned(), SecretString::from(value.into()))
                .is_some()
        })
    }

    /// Removes `name` from a map environment; whether it was there.
    pub fn remove(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|map| {
            map.write()
                .unwrap_or_else(|poison| poison.into_inner())
                .remove(name)
                .is_some()
        })
    }

    /// The variable's value; `None` when it is not set or empty (a deployment template can
    /// only declare a variable, so empty means "not filled in yet"); `Err(())` when it is
    /// set but not UTF-8.
    fn lookup(&self, name: &str) -> Result<Option<SecretString>, ()> {
        Ok(self
            .lookup_raw(name)?
            .filter(|value| !value.expose_secret().is_empty()))
    }

    fn lookup_raw(&self, name: &str) -> Result<Option<SecretString>, ()> {
        match &self.0 {
            None => match std::env::var_os(name) {
                None => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(|text| Some(SecretString::from(text)))
                    .map_err(|_| ()),
            },
            Some(map) => Ok(map
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .get(name)
                .cloned()),
        }
    }

    fn describe(&self) -> String {
        match &self.0 {
            None => "process".into(),
            Some(map) => format!("map@{:p}", Arc::as_ptr(map)),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Environment::Process"),
            Some(map) => {
                let count = map.read().map_or(0, |map| map.len());
                write!(f, "Environment::Map({count} variables, [REDACTED])")
            }
        }
    }
}

/// The one prefix rule both schemes share.
fn parse_prefix(text: &str, options: &mut Options) -> Result<String> {
    let prefix = options.take("prefix").unwrap_or_default();
    if let Some(c) = prefix
        .chars()
        .find(|c| !matches!(c, 'A'..='Z' | '0'..='9' | '_'))
    {
        return Err(Error::invalid_config(format!(
            "`{text}`: prefix `{prefix}` has `{c}`; variable prefixes are A-Z 0-9 _"
        )));
    }
    Ok(prefix)
}

fn no_host_or_path(text: &str, url: &url::Url, scheme: &str) -> Result<()> {
    if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/") {
        return Err(Error::invalid_config(format!(
            "`{text}`: {scheme}:// takes no host or path, only options ({scheme}://?prefix=APP_)"
        )));
    }
    Ok(())
}

/// Which encryption context `env+kms://` decrypts (and seals) with (`context=`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContextOption {
    /// `LambdaFunctionName=$AWS_LAMBDA_FUNCTION_NAME` when set, none otherwise (`auto`).
    #[default]
    Auto,
    /// No encryption context (`none`).
    None,
    /// Exactly these pairs (`K=V,K=V`).
    Pairs(BTreeMap<String, String>),
}

impl ContextOption {
    fn parse(key: &str, text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            pairs => pairs
                .split(',')
                .map(|pair| match pair.split_once('=') {
                    Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                    _ => Err(Error::invalid_config(format!(
                        "{key} `{text}`: expected `auto`, `none` or K=V[,K=V...]"
                    ))),
                })
                .collect::<Result<_>>()
                .map(Self::Pairs),
        }
    }

    /// The pairs this option stands for, in `environment`.
    fn resolve(&self, environment: &Environment) -> BTreeMap<String, String> {
        match self {
            Self::Auto => environment
                .lookup(FUNCTION_NAME_ENV)
                .ok()
                .flatten()
                .map(|name| {
                    BTreeMap::from([(
                        FUNCTION_NAME_CONTEXT_KEY.to_owned(),
                        name.expose_secret().to_owned(),
                    )])
                })
                .unwrap_or_default(),
            Self::None => BTreeMap::new(),
            Self::Pairs(pairs) => pairs.clone(),
        }
    }
}

/// Options of `env+kms://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EnvKmsConfig {
    /// Shared AWS options (for KMS).
    pub aws: AwsOptions,
    /// Variable-name prefix (`prefix=`, `A-Z 0-9 _`); default none.
    pub prefix: String,
    /// The key ciphertexts must be under (`kms_key_id=`): given to `Decrypt` so a ciphertext
    /// under another key is refused, and the key [`EnvKmsSource::seal`] encrypts with.
    pub kms_key_id: Option<String>,
    /// The encryption context (`context=auto|none|K=V,...`; default `auto`).
    pub context: ContextOption,
}

impl EnvKmsConfig {
    /// The option keys of `env+kms://` besides [`AwsOptions::KEYS`].
    pub(crate) const KEYS: &'static [&'static str] = &["prefix", "kms_key_id", "context"];

    /// The options of `env+kms://`, taken out of `options`.
    pub(crate) fn from_url(text: &str, url: &url::Url, options: &mut Options) -> Result<Self> {
        no_host_or_path(text, url, BACKEND_KMS)?;
        Ok(Self {
            aws: AwsOptions::from_options(options)?,
            prefix: parse_prefix(text, options)?,
            kms_key_id: options.take("kms_key_id"),
            context: options
                .take_with("context", ContextOption::parse)?
                .unwrap_or_default(),
        })
    }
}

/// Options of `env://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EnvConfig {
    /// Variable-name prefix (`prefix=`, `A-Z 0-9 _`); default none.
    pub prefix: String,
}

impl EnvConfig {
    /// The option keys of `env://`.
    pub(crate) const KEYS: &'static [&'static str] = &["prefix"];

    /// The options of `env://`, taken out of `options`.
    pub(crate) fn from_url(text: &str, url: &url::Url, options: &mut Options) -> Result<Self> {
        no_host_or_path(text, url, BACKEND_PLAIN)?;
        Ok(Self {
            prefix: parse_prefix(text, options)?,
        })
    }
}

/// Only the current version exists in a variable.
fn current_only(backend: &'static str, version: &VersionSelector) -> Result<()> {
    match version {
        VersionSelector::Current => Ok(()),
        VersionSelector::Stage(stage) if stage == STAGE_CURRENT => Ok(()),
        other => Err(Error::Unsupported {
            backend,
            operation: format!("{other:?} (a variable holds only its current value)"),
        }),
    }
}

fn not_set(backend: &'static str, id: &SecretId, name: &str) -> Error {
    Error::NotFound {
        backend,
        id: id.to_string(),
        source: Some(Arc::from(BoxError::from(format!(
            "environment variable {name} is not set (or empty)"
        )))),
    }
}

fn not_utf8(backend: &'static str, id: &SecretId, name: &str) -> Error {
    Error::InvalidFormat {
        backend,
        id: id.to_string(),
        reason: format!("is in variable {name}, which is not UTF-8"),
    }
}

/// Reads secrets that Lambda's console encryption helpers (or [`EnvKmsSource::seal`]) put
/// into environment variables: base64 KMS ciphertexts, one `Decrypt` per read.
#[derive(Clone)]
pub struct EnvKmsSource {
    kms: KmsClient,
    environment: Environment,
    prefix: String,
    kms_key_id: Option<String>,
    context: ContextOption,
    scope: String,
}

impl EnvKmsSource {
    /// The source `config` describes over this process's environment, with a KMS client
    /// from `sdk`.
    pub async fn from_config(sdk: &SdkConfig, config: &EnvKmsConfig) -> Self {
        Self {
            kms: KmsClient::new(sdk),
            environment: Environment::process(),
            prefix: config.prefix.clone(),
            kms_key_id: config.kms_key_id.clone(),
            context: config.context.clone(),
            scope: crate::aws::scope(
                sdk,
                config.aws.profile.as_deref(),
                &[crate::aws::service::KMS],
            )
            .await,
        }
    }

    /// The same source over another set of variables.
    pub fn with_environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The variables this source reads.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The variable `id` reads.
    pub fn variable_name(&self, id: &SecretId) -> String {
        variable_name(&self.prefix, id)
    }

    /// Encrypts `value` with the configured key under the context this source decrypts
    /// with, or `LambdaFunctionName=function` when one is given: the base64 text to set as
    /// the variable [`EnvKmsSource::variable_name`] in the function's configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without a key; [`Error::InvalidFormat`] over
    /// [`MAX_SEAL_BYTES`]; KMS failures by kind.
    pub async fn seal(
        &self,
        id: &SecretId,
        value: &SecretValue,
        function: Option<&str>,
    ) -> Result<String> {
        let key = self.kms_key_id.as_deref().ok_or_else(|| {
            Error::invalid_config(
                "sealing for env+kms:// needs a KMS key: --kms-key or `kms_key_id=`",
            )
        })?;
        if value.len() as u64 > MAX_SEAL_BYTES {
            return Err(Error::too_large(
                BACKEND_KMS,
                id.as_str(),
                "the value",
                value.len(),
                MAX_SEAL_BYTES,
            ));
        }
        let context = match function {
            Some(function) => {
                BTreeMap::from([(FUNCTION_NAME_CONTEXT_KEY.to_owned(), function.to_owned())])
            }
            None => self.context.resolve(&self.environment),
        };
        let output = self
            .kms
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(value.expose_bytes()))
            .set_encryption_context((!context.is_empty()).then(|| context.into_iter().collect()))
            .send()
            .await
            .map_err(|err| classify(err, id))?;
        let blob = output.ciphertext_blob.ok_or_else(|| Error::Other {
            backend: BACKEND_KMS,
            id: id.to_string(),
            source: Some(Arc::from(BoxError::from(
                "Encrypt answered without a ciphertext",
            ))),
        })?;
        Ok(aws_smithy_types::base64::encode(blob.as_ref()))
    }
}

fn classify<E>(err: aws_sdk_kms::error::SdkError<E>, id: &SecretId) -> Error
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify_sdk_error(
        err,
        BACKEND_KMS,
        id.as_str(),
        crate::aws::kms::error_code_kind,
    )
}

#[async_trait]
impl SecretSource for EnvKmsSource {
    fn identity(&self) -> String {
        format!(
            "{BACKEND_KMS}:{};environment={};prefix={};context={:?}",
            self.scope,
            self.environment.describe(),
            self.prefix,
            self.context
        )
    }

    /// The identity plus a hash of the variable's content (or `unset`): two processes on one
    /// host whose variables hold different ciphertexts never share a `/tmp` entry.
    fn identity_of(&self, id: &SecretId) -> String {
        use sha2::{Digest, Sha256};
        let content = match self.environment.lookup(&self.variable_name(id)) {
            Ok(Some(text)) => Sha256::digest(text.expose_secret().as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            Ok(None) => "unset".to_owned(),
            Err(()) => "not-utf8".to_owned(),
        };
        format!("{};variable={content}", self.identity())
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        current_only(BACKEND_KMS, version)?;
        let name = self.variable_name(id);
        let text = match self.environment.lookup(&name) {
            Ok(Some(text)) => text,
            Ok(None) => return Err(not_set(BACKEND_KMS, id, &name)),
            Err(()) => return Err(not_utf8(BACKEND_KMS, id, &name)),
        };
        let ciphertext = aws_smithy_types::base64::decode(text.expose_secret().trim())
            .ok()
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| Error::InvalidFormat {
                backend: BACKEND_KMS,
                id: id.to_string(),
                reason: format!(
                    "is in variable {name}, which is not base64 (expected a KMS ciphertext)"
                ),
            })?;
        let context = self.context.resolve(&self.environment);
        let mut output = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .set_key_id(self.kms_key_id.clone())
            .set_encryption_context((!context.is_empty()).then(|| context.into_iter().collect()))
            .send()
            .await
            .map_err(|err| classify(err, id))?;
        let plaintext = output
            .plaintext
            .take()
            .map(Blob::into_inner)
            .unwrap_or_default();
        let value = match String::from_utf8(plaintext) {
            Ok(text) => SecretValue::text(text),
            Err(err) => SecretValue::binary(err.into_bytes()),
        };
        tracing::debug!(backend = BACKEND_KMS, id = %id, variable = %name, "read secret");
        Ok(Secret::new(id.clone(), BACKEND_KMS, value))
    }
}

impl fmt::Debug for EnvKmsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvKmsSource")
            .field("environment", &self.environment)
            .field("prefix", &self.prefix)
            .field("kms_key_id", &self.kms_key_id)
            .field("context", &self.context)
            .finish()
    }
}

impl fmt::Display for EnvKmsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BACKEND_KMS}({}*)", self.prefix)
    }
}

/// Reads secrets in plain text from environment variables: the baseline, not a safe store.
#[derive(Clone, Debug)]
pub struct EnvSource {
    environment: Environment,
    prefix: String,
}

impl EnvSource {
    /// The source `config` describes over this process's environment.
    pub fn from_config(config: &EnvConfig) -> Self {
        Self {
            environment: Environment::process(),
            prefix: config.prefix.clone(),
        }
    }

    /// The same source over another set of variables.
    pub fn with_environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }
}

#[async_trait]
impl SecretSource for EnvSource {
    fn identity(&self) -> String {
        format!(
            "{BACKEND_PLAIN}:environment={};prefix={}",
            self.environment.describe(),
            self.prefix
        )
    }

    async fn get(&self, id: &SecretId, version: &VersionSelector) -> Result<Secret> {
        current_only(BACKEND_PLAIN, version)?;
        let name = variable_name(&self.prefix, id);
        match self.environment.lookup(&name) {
            Ok(Some(text)) => Ok(Secret::new(
                id.clone(),
                BACKEND_PLAIN,
                SecretValue::text(text.expose_secret()),
            )),
            Ok(None) => Err(not_set(BACKEND_PLAIN, id, &name)),
            Err(()) => Err(not_utf8(BACKEND_PLAIN, id, &name)),
        }
    }
}

impl fmt::Display for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BACKEND_PLAIN}({}*)", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> SecretId {
        SecretId::new(name).unwrap()
    }

    #[test]
    fn ids_map_to_variable_names() {
        assert_eq!(variable_name("", &id("api_key")), "API_KEY");
        assert_eq!(variable_name("", &id("API_KEY")), "API_KEY");
        assert_eq!(
            variable_name("", &id("prod/db-password")),
            "PROD_DB_PASSWORD"
        );
        assert_eq!(variable_name("APP_", &id("a.b+c=d@e")), "APP_A_B_C_D_E");
        assert_eq!(
            variable_name(
                "",
                &id("arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf")
            ),
            "X_ABCDEF",
            "an ARN names by its secret name"
        );
    }

    #[test]
    fn options_parse_and_refuse_what_is_not_valid() {
        let parse = |text: &str| {
            let url = url::Url::parse(text).unwrap();
            let mut options = Options::new("");
            for (key, value) in url.query_pairs() {
                options.insert(key, value).unwrap();
            }
            EnvKmsConfig::from_url(text, &url, &mut options)
        };
        let config =
            parse("env+kms://?prefix=APP_&context=LambdaFunctionName=f,stage=prod").unwrap();
        assert_eq!(config.prefix, "APP_");
        assert_eq!(
            config.context,
            ContextOption::Pairs(BTreeMap::from([
                ("LambdaFunctionName".into(), "f".into()),
                ("stage".into(), "prod".into())
            ]))
        );
        assert_eq!(
            parse("env+kms://?context=none").unwrap().context,
            ContextOption::None
        );
        assert_eq!(parse("env+kms://").unwrap().context, ContextOption::Auto);
        for (bad, says) in [
            ("env+kms://?prefix=app_", "variable prefixes are A-Z 0-9 _"),
            ("env+kms://?context=oops", "expected `auto`, `none`"),
            ("env+kms://host", "takes no host or path"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn auto_context_is_the_function_name_when_lambda_sets_it() {
        let environment = Environment::map();
        assert!(ContextOption::Auto.resolve(&environment).is_empty());
        environment.set(FUNCTION_NAME_ENV, "my-function");
        assert_eq!(
            ContextOption::Auto.resolve(&environment),
            BTreeMap::from([("LambdaFunctionName".into(), "my-function".into())])
        );
        assert!(ContextOption::None.resolve(&environment).is_empty());
    }

    #[tokio::test]
    async fn plaintext_variables_read_back_and_missing_ones_are_not_found() {
        let environment = Environment::map();
        let source = EnvSource::from_config(&EnvConfig {
            prefix: "APP_".into(),
        })
        .with_environment(environment.clone());
        assert!(!environment.set("APP_PROD_TOKEN", "LEAK-CANARY-env"));
        let secret = source
            .get(&id("prod/token"), &VersionSelector::Current)
            .await
            .unwrap();
        assert_eq!(secret.value().expose_str(), Some("LEAK-CANARY-env"));
        let err = source
            .get(&id("prod/other"), &VersionSelector::Current)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        assert!(
            err.display_chain()
                .to_string()
                .contains("APP_PROD_OTHER is not set"),
            "{}",
            err.display_chain()
        );
        let err = source
            .get(&id("prod/token"), &VersionSelector::Id("1".into()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);
        let printed = format!("{source:?} {environment:?} {secret:?}");
        assert!(!printed.contains("LEAK-CANARY"), "{printed}");
    }
}
