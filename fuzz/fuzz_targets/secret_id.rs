//! Secret id validation on arbitrary strings: never panics; whatever it accepts has only the
//! allowed characters in its name, and whatever it hands out as a path has no `..`/`.`/empty
//! segment and no leading `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secret_loader::SecretId;

fuzz_target!(|text: &str| {
    if let Ok(id) = SecretId::new(text) {
        let name = id.name();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)));
        if let Ok(segments) = id.path_segments() {
            assert!(!name.starts_with('/'));
            assert!(segments.iter().all(|s| !s.is_empty() && *s != "." && *s != ".."));
        }
    }
});
