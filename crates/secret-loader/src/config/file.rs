//! A TOML configuration file: the source URL, and optional `[memory]` and `[tmp]` tables whose
//! keys go to the same per-layer parsers as the URL's `memory_*` and `tmp_*` options.
//!
//! ```toml
//! source = "s3+kms://bucket/app?kms_key_id=alias/app"
//! [memory]
//! ttl = "5m"
//! [tmp]
//! ttl = "1h"
//! ```

use std::path::Path;

use serde::Deserialize;

use super::Config;
use crate::cache::{MemoryOptions, TmpOptions};
use crate::error::{Error, Result};
use crate::options::Options;

/// The file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    source: String,
    memory: Option<toml::Table>,
    tmp: Option<toml::Table>,
}

impl Config {
    /// A configuration from TOML text:
    ///
    /// ```toml
    /// source = "secretsmanager://?region=eu-west-1"
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for invalid TOML, unknown keys (listing the valid ones) and
    /// an invalid source URL.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|err| Error::invalid_config(format!("TOML: {}", err.message())))?;
        let mut config = Self::from_url(&file.source)?;
        if let Some(table) = file.memory {
            if config.memory.is_some() {
                return Err(Error::invalid_config(
                    "the memory cache is configured twice: in the source URL and in [memory]",
                ));
            }
            config.memory = MemoryOptions::from_options(table_options(table, "memory.")?)?;
        }
        if let Some(table) = file.tmp {
            if config.tmp.is_some() {
                return Err(Error::invalid_config(
                    "the tmp cache is configured twice: in the source URL and in [tmp]",
                ));
            }
            config.tmp = TmpOptions::from_options(table_options(table, "tmp.")?)?;
        }
        Ok(config)
    }

    /// A configuration from a TOML file; see [`Config::from_toml_str`].
    ///
    /// # Errors
    /// As [`Config::from_toml_str`], and [`Error::InvalidConfig`] when the file can't be read.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::invalid_config(format!("cannot read {}: {err}", path.display()))
        })?;
        Self::from_toml_str(&text).map_err(|err| match err {
            Error::InvalidConfig { message } => {
                Error::invalid_config(format!("{}: {message}", path.display()))
            }
            other => other,
        })
    }
}

/// A layer's table as text options (`ttl = "5m"`, `max_entries = 500`, `plaintext = true`),
/// its keys shown as `shown` + key. A table with a `ttl` key is on, so an empty table is
/// refused rather than silently ignored.
fn table_options(table: toml::Table, shown: &'static str) -> Result<Options> {
    let mut options = Options::new(shown);
    if table.is_empty() {
        return Err(Error::invalid_config(format!(
            "`{shown}ttl` is required to turn that cache on"
        )));
    }
    for (key, value) in table {
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(Error::invalid_config(format!(
                    "{shown}{key} must be a string, an integer or a boolean, not {}",
                    other.type_str()
                )));
            }
        };
        options.insert(key, text)?;
    }
    Ok(options)
}

#[cfg(all(test, feature = "secretsmanager"))]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    #[test]
    #[allow(irrefutable_let_patterns)]
    fn toml_source() {
        let config = Config::from_toml_str("source = \"secretsmanager://?profile=dev\"\n").unwrap();
        let SourceConfig::SecretsManager(sm) = config.source else {
            panic!()
        };
        assert_eq!(sm.aws.profile.as_deref(), Some("dev"));
    }

    #[test]
    fn tables_go_through_the_layer_parsers() {
        let config = Config::from_toml_str(
            "source = \"secretsmanager://\"\n[memory]\nttl = \"5m\"\nmax_entries = 7\nversion_check = true\n[tmp]\nttl = \"1h\"\nplaintext = true\n",
        )
        .unwrap();
        let memory = config.memory.unwrap();
        assert_eq!((memory.max_entries, memory.version_check), (7, true));
        assert!(config.tmp.unwrap().plaintext);
        for (text, expected) in [
            (
                "[memory]\nmax_entries = 7\n",
                "`memory.max_entries` needs `memory.ttl`",
            ),
            ("[memory]\n", "`memory.ttl` is required"),
            (
                "[tmp]\nttl = \"1h\"\nplaintext = \"yes\"\n",
                "tmp.plaintext `yes` is not true or false",
            ),
            ("[tmp]\nttl = [1]\n", "tmp.ttl must be a string"),
        ] {
            let err = Config::from_toml_str(&format!("source = \"secretsmanager://\"\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
