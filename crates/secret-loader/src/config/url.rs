//! A source URL (`s3+kms://bucket/app?kms_key_id=alias/app&memory_ttl=5m`) → scheme → that
//! backend's options parser, and the cache layers' options to theirs.

use std::str::FromStr;

use url::Url;

use super::{Config, Scheme, SourceConfig};
use crate::cache::{MemoryOptions, TmpOptions};
use crate::error::{Error, Result};
use crate::options::Options;

/// URL option prefix of the memory layer's keys.
const MEMORY_PREFIX: &str = "memory_";
/// URL option prefix of the `/tmp` layer's keys.
const TMP_PREFIX: &str = "tmp_";

impl Config {
    /// A configuration from a source URL, cache options included
    /// (`s3+kms://bucket/app?kms_key_id=alias/app&memory_ttl=5m&tmp_ttl=1h`).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] listing what is valid; [`Error::Unsupported`] for a scheme
    /// whose backend this build leaves out (cargo feature off).
    pub fn from_url(text: &str) -> Result<Self> {
        let url = Url::parse(text.trim()).map_err(|err| {
            Error::invalid_config(format!(
                "source `{text}` is not a URL ({err}); expected e.g. `secretsmanager://`"
            ))
        })?;
        let scheme: Scheme = url.scheme().parse()?;
        let mut options = Options::new("");
        for (key, value) in url.query_pairs() {
            options.insert(key, value)?;
        }
        let memory = MemoryOptions::from_options(options.split_off(MEMORY_PREFIX, MEMORY_PREFIX))?;
        let tmp = TmpOptions::from_options(options.split_off(TMP_PREFIX, TMP_PREFIX))?;
        let source = source_from_url(text, scheme, &url, &mut options)?;
        let valid: Vec<String> = backend_keys(scheme)
            .iter()
            .map(|key| key.to_string())
            .chain(Options::new(MEMORY_PREFIX).names(MemoryOptions::KEYS))
            .chain(Options::new(TMP_PREFIX).names(TmpOptions::KEYS))
            .collect();
        options.finish(&format!(" for {scheme}://"), &valid)?;
        Ok(Self {
            source,
            memory,
            tmp,
        })
    }
}

impl FromStr for SourceConfig {
    type Err = Error;

    /// Parses a source URL such as `secretsmanager://?region=eu-west-1` (without cache
    /// options: those make a [`Config`]).
    fn from_str(text: &str) -> Result<Self> {
        let config = Config::from_url(text)?;
        if config.memory.is_some() || config.tmp.is_some() {
            return Err(Error::invalid_config(
                "cache options (memory_*, tmp_*) configure a Config, not a SourceConfig",
            ));
        }
        Ok(config.source)
    }
}

/// The option keys `scheme`'s backend takes (cache keys aside).
fn backend_keys(scheme: Scheme) -> Vec<&'static str> {
    #[cfg(feature = "aws")]
    let aws = crate::aws::AwsOptions::KEYS;
    #[cfg(not(feature = "aws"))]
    let aws: &[&str] = &[];
    let own: &[&str] = match scheme {
        #[cfg(feature = "secretsmanager")]
        Scheme::SecretsManager => super::SecretsManagerConfig::KEYS,
        #[cfg(feature = "s3")]
        Scheme::S3Kms => super::S3Config::ENVELOPE_KEYS,
        #[cfg(feature = "s3")]
        Scheme::S3SseKms => super::S3Config::SSE_KMS_KEYS,
        #[cfg(feature = "file")]
        Scheme::FileKms => super::FileConfig::KEYS,
        #[cfg(feature = "ssm")]
        Scheme::Ssm => super::SsmConfig::KEYS,
        #[cfg(feature = "env")]
        Scheme::EnvKms => super::EnvKmsConfig::KEYS,
        // Plaintext variables make no AWS call: no AWS options.
        #[cfg(feature = "env")]
        Scheme::Env => return super::EnvConfig::KEYS.to_vec(),
        #[allow(unreachable_patterns)]
        _ => &[],
    };
    aws.iter().chain(own).copied().collect()
}

/// Hands the URL to `scheme`'s backend, which takes its options out of `options`.
#[cfg_attr(
    not(any(
        feature = "secretsmanager",
        feature = "ssm",
        feature = "s3",
        feature = "file",
        feature = "env"
    )),
    allow(unused_variables)
)]
fn source_from_url(
    text: &str,
    scheme: Scheme,
    url: &Url,
    options: &mut Options,
) -> Result<SourceConfig> {
    match scheme {
        #[cfg(feature = "secretsmanager")]
        Scheme::SecretsManager => Ok(SourceConfig::SecretsManager(
            super::SecretsManagerConfig::from_url(text, url, options)?,
        )),
        #[cfg(feature = "s3")]
        Scheme::S3Kms => Ok(SourceConfig::S3Kms(super::S3Config::from_url(
            text,
            url,
            &path(url)?,
            false,
            options,
        )?)),
        #[cfg(feature = "s3")]
        Scheme::S3SseKms => Ok(SourceConfig::S3SseKms(super::S3Config::from_url(
            text,
            url,
            &path(url)?,
            true,
            options,
        )?)),
        #[cfg(feature = "file")]
        Scheme::FileKms => Ok(SourceConfig::FileKms(super::FileConfig::from_url(
            text,
            url,
            &path(url)?,
            options,
        )?)),
        #[cfg(feature = "ssm")]
        Scheme::Ssm => Ok(SourceConfig::Ssm(super::SsmConfig::from_url(
            text,
            url,
            &path(url)?,
            options,
        )?)),
        #[cfg(feature = "env")]
        Scheme::EnvKms => Ok(SourceConfig::EnvKms(super::EnvKmsConfig::from_url(
            text, url, options,
        )?)),
        #[cfg(feature = "env")]
        Scheme::Env => Ok(SourceConfig::Env(super::EnvConfig::from_url(
            text, url, options,
        )?)),
        #[allow(unreachable_patterns)]
        other => Err(other.compiled_out()),
    }
}

/// The URL's path, percent-decoded.
#[cfg(any(feature = "s3", feature = "file", feature = "ssm"))]
fn path(url: &Url) -> Result<String> {
    percent_encoding::percent_decode_str(url.path())
        .decode_utf8()
        .map(|path| path.into_owned())
        .map_err(|_| Error::invalid_config(format!("`{url}`: the path is not UTF-8")))
}

#[cfg(all(
    test,
    feature = "secretsmanager",
    feature = "ssm",
    feature = "s3",
    feature = "file",
    feature = "env"
))]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::aws::AwsOptions;
    use crate::config::SecretsManagerConfig;
    use crate::envelope::AlgorithmSuite;

    #[test]
    fn parses_secretsmanager_with_options() {
        let config: SourceConfig =
            "secretsmanager://?region=eu-west-1&endpoint_url=http://127.0.0.1:5000&max_attempts=2&timeout=2s&attempt_timeout=500ms&kms_key_id=alias/app"
                .parse()
                .unwrap();
        let SourceConfig::SecretsManager(sm) = config else {
            panic!("{config:?}")
        };
        assert_eq!(sm.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            sm.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(sm.aws.max_attempts, 2);
        assert_eq!(sm.aws.operation_timeout, Duration::from_secs(2));
        assert_eq!(sm.aws.attempt_timeout, Duration::from_millis(500));
        assert_eq!(
            sm.aws.connect_timeout,
            AwsOptions::default().connect_timeout
        );
        assert_eq!(sm.kms_key_id.as_deref(), Some("alias/app"));

        let bare: SourceConfig = "secretsmanager://".parse().unwrap();
        assert_eq!(
            bare,
            SourceConfig::SecretsManager(SecretsManagerConfig::default())
        );
        assert_eq!(bare.scheme(), Scheme::SecretsManager);
    }

    #[test]
    fn parses_s3_and_file_schemes() {
        let s3: SourceConfig =
            "s3+kms://my-bucket/app/prod/?kms_key_id=alias/app&suite=committing-signed"
                .parse()
                .unwrap();
        let SourceConfig::S3Kms(c) = &s3 else {
            panic!("{s3:?}")
        };
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("my-bucket", "app/prod")
        );
        assert_eq!(c.kms_key_id.as_deref(), Some("alias/app"));
        assert_eq!(c.suite, AlgorithmSuite::CommittingSigned);

        let sse: SourceConfig = "s3+sse-kms://b?force_path_style=true".parse().unwrap();
        let SourceConfig::S3SseKms(c) = &sse else {
            panic!("{sse:?}")
        };
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str(), c.force_path_style),
            ("b", "", true)
        );

        let mut file: SourceConfig = "file+kms:///mnt/efs/my%20secrets?kms_key_id=k"
            .parse()
            .unwrap();
        file.set_kms_key_id("alias/other");
        let SourceConfig::FileKms(c) = &file else {
            panic!("{file:?}")
        };
        assert_eq!(c.root, PathBuf::from("/mnt/efs/my secrets"));
        assert_eq!(file.kms_key_id(), Some("alias/other"));
        assert_eq!(file.scheme(), Scheme::FileKms);
    }

    #[test]
    fn every_scheme_lists_its_own_keys_and_the_cache_keys_as_valid() {
        for (url, own) in [
            ("secretsmanager://?nope=1", "kms_key_id"),
            ("s3+kms://b/p?nope=1", "suite"),
            ("s3+sse-kms://b/p?nope=1", "force_path_style"),
            ("file+kms:///d?nope=1", "suite"),
            ("ssm:///team?nope=1", "kms_key_id"),
            ("env+kms://?nope=1", "context"),
        ] {
            let err = Config::from_url(url).unwrap_err().to_string();
            for key in [
                "region",
                own,
                "memory_ttl",
                "memory_version_check",
                "tmp_ttl",
                "tmp_kms_key_id",
            ] {
                assert!(err.contains(key), "{url}: {err} lacks {key}");
            }
        }
        let err = Config::from_url("s3+sse-kms://b?suite=committing")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown option `suite` for s3+sse-kms://"),
            "{err}"
        );
    }

    #[test]
    fn env_takes_only_its_prefix_and_the_cache_keys() {
        let err = Config::from_url("env://?region=x").unwrap_err().to_string();
        assert!(err.contains("unknown option `region` for env://"), "{err}");
        assert!(
            err.contains("prefix") && err.contains("memory_ttl"),
            "{err}"
        );
        let config = Config::from_url("env://?prefix=APP_&memory_ttl=1m").unwrap();
        assert_eq!(config.source.scheme(), Scheme::Env);
        assert!(config.source.aws().is_none(), "env:// makes no AWS call");
    }

    #[test]
    fn cache_options_in_the_url() {
        let config = Config::from_url(
            "secretsmanager://?memory_ttl=5m&memory_max_entries=3&tmp_ttl=1h&tmp_plaintext=true",
        )
        .unwrap();
        let memory = config.memory.unwrap();
        assert_eq!(
            (memory.ttl, memory.max_entries),
            (Duration::from_secs(300), 3)
        );
        let tmp = config.tmp.unwrap();
        assert_eq!((tmp.ttl, tmp.plaintext), (Duration::from_secs(3600), true));
        let err = Config::from_url("secretsmanager://?memory_ttl=5m&memory_ttll=1").unwrap_err();
        assert!(
            err.to_string().contains("unknown option `memory_ttll`"),
            "{err}"
        );
    }
}
