//! Configuration fixtures: every file under `fixtures/config/invalid/` must fail with the
//! error its first line names (`# error: ...`); every file under `valid/` must parse.

use std::path::{Path, PathBuf};

use secret_loader::{Config, ErrorKind};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn each_invalid_config_fails_with_its_own_error() {
    let files = fixtures("invalid");
    assert!(files.len() >= 10, "fixtures missing: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{}: first line must be `# error: ...`", path.display()));
        let err = Config::from_toml_file(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{}", path.display());
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "{}:\n  expected: {expected}\n  got:      {message}",
            path.display()
        );
        assert!(
            message.contains(&path.display().to_string()),
            "names the file: {message}"
        );
    }
}

#[test]
fn each_valid_config_parses() {
    let files = fixtures("valid");
    assert!(!files.is_empty());
    for path in files {
        Config::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn a_missing_file_is_an_invalid_config_naming_it() {
    let err = Config::from_toml_file("no/such/secret-loader.toml").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("no/such/secret-loader.toml"),
        "{err}"
    );
}
