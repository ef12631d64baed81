//! Text options, as a URL query or a TOML table gives them, consumed key by key by the
//! backend or cache layer they belong to. Each backend and layer parses its own keys here,
//! so both forms of configuration go through one parser per component.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// Options not yet consumed. `shown` is how keys are written where they came from
/// (`memory_` in a URL, `memory.` in a TOML table), so messages name them as the user did.
#[derive(Debug, Default)]
pub(crate) struct Options {
    values: BTreeMap<String, String>,
    shown: &'static str,
}

impl Options {
    /// No options yet; keys are shown with `shown` before them.
    pub(crate) fn new(shown: &'static str) -> Self {
        Self {
            values: BTreeMap::new(),
            shown,
        }
    }

    /// Adds an option.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `key` is already set.
    pub(crate) fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<()> {
        let key = key.into();
        if self.values.contains_key(&key) {
            return Err(Error::invalid_config(format!(
                "option `{}` given twice",
                self.name(&key)
            )));
        }
        self.values.insert(key, value.into());
        Ok(())
    }

    /// `key` as the user wrote it.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.shown)
    }

    /// Takes the option out.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    /// Takes the option out and parses it with `parse(shown name, text)`.
    pub(crate) fn take_with<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.values.remove(key) {
            Some(text) => parse(&self.name(key), &text).map(Some),
            None => Ok(None),
        }
    }

    /// Takes out `key`, the option that turns a component on (a cache layer's `ttl`):
    /// `None` when no option at all is given.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `key` is missing but other options are given.
    pub(crate) fn take_switch<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.take_with(key, parse)? {
            Some(value) => Ok(Some(value)),
            None => match self.first_name() {
                None => Ok(None),
                Some(stray) => Err(Error::invalid_config(format!(
                    "`{stray}` needs `{}`, which turns that cache on",
                    self.name(key)
                ))),
            },
        }
    }

    /// Moves the options whose key starts with `prefix` into a new set, without the prefix,
    /// shown with `shown`.
    pub(crate) fn split_off(&mut self, prefix: &str, shown: &'static str) -> Self {
        let (taken, kept) = std::mem::take(&mut self.values)
            .into_iter()
            .partition::<BTreeMap<_, _>, _>(|(key, _)| key.starts_with(prefix));
        self.values = kept;
        Self {
            values: taken
                .into_iter()
                .map(|(key, value)| (key[prefix.len()..].to_owned(), value))
                .collect(),
            shown,
        }
    }

    /// The first option left, as the user wrote it.
    pub(crate) fn first_name(&self) -> Option<String> {
        self.values.keys().next().map(|key| self.name(key))
    }

    /// Ok when every option was consumed; otherwise an error naming the first one left
    /// `where_` (e.g. `for secretsmanager://`) and listing `valid`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a key left over.
    pub(crate) fn finish(self, where_: &str, valid: &[String]) -> Result<()> {
        match self.first_name() {
            None => Ok(()),
            Some(key) => Err(Error::invalid_config(format!(
                "unknown option `{key}`{where_}; valid options: {}",
                list(valid.iter())
            ))),
        }
    }

    /// Every key of `keys` as shown here (for "valid options" lists).
    pub(crate) fn names(&self, keys: &[&str]) -> Vec<String> {
        keys.iter().map(|key| self.name(key)).collect()
    }
}

/// A positive duration (`500ms`, `5s`, `2m`).
pub(crate) fn parse_duration(key: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "{key} `{text}` is not a positive duration (e.g. `500ms`, `5s`, `2m`)"
            ))
        })
}

/// A duration that may be zero (`0` or `0s`), else as [`parse_duration`].
pub(crate) fn parse_duration_or_zero(key: &str, text: &str) -> Result<Duration> {
    if matches!(text, "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    parse_duration(key, text)
}

/// `true` or `false`.
pub(crate) fn parse_bool(key: &str, text: &str) -> Result<bool> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid_config(format!(
            "{key} `{text}` is not true or false"
        ))),
    }
}

/// A count of at least 1.
pub(crate) fn parse_positive(key: &str, text: &str) -> Result<usize> {
    let n: usize = text
        .parse()
        .map_err(|_| Error::invalid_config(format!("{key} `{text}` is not a number")))?;
    if n == 0 {
        return Err(Error::invalid_config(format!("{key} must be at least 1")));
    }
    Ok(n)
}

/// `items` joined by `, `.
pub(crate) fn list<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_off_moves_prefixed_keys_and_names_them_as_written() {
        let mut options = Options::new("");
        options.insert("region", "x").unwrap();
        options.insert("memory_ttl", "5m").unwrap();
        options.insert("memory_foo", "1").unwrap();
        let memory = options.split_off("memory_", "memory_");
        assert_eq!(options.first_name().as_deref(), Some("region"));
        assert_eq!(memory.first_name().as_deref(), Some("memory_foo"));
        let err = memory
            .finish("", &["memory_ttl".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown option `memory_foo`; valid options: memory_ttl"),
            "{err}"
        );
        assert!(
            options
                .insert("region", "y")
                .unwrap_err()
                .to_string()
                .contains("option `region` given twice")
        );
    }

    #[test]
    fn parsers_name_the_key_and_refuse_bad_text() {
        assert_eq!(parse_duration("t", "2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("t", "0s").is_err());
        assert_eq!(parse_duration_or_zero("t", "0").unwrap(), Duration::ZERO);
        assert!(
            parse_bool("b", "yes")
                .unwrap_err()
                .to_string()
                .contains("b `yes`")
        );
        assert!(
            parse_positive("n", "0")
                .unwrap_err()
                .to_string()
                .contains("n must be at least 1")
        );
    }
}
