//! Secret id validation on arbitrary strings: never panics, and whatever it accepts has no
//! `..`/`.`/empty segment, no leading `/` and only the allowed characters in its name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_loader::SecretId;

fuzz_target!(|text: &str| {
    if let Ok(id) = SecretId::new(text) {
        let name = id.name();
        assert!(!name.starts_with('/'));
        assert!(id.segments().all(|s| !s.is_empty() && s != "." && s != ".."));
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)));
    }
});
