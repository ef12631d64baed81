//! Replacing a file atomically: the one way the file backend and the `/tmp` cache write.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `dir/name` through a temporary file in `dir` (created with `O_EXCL` and
/// `O_NOFOLLOW`, mode 0600) renamed over the target, so a reader sees the old content or the
/// new, never part of it. `rename` replaces a symlink at the target itself, never what it
/// points to. With `durable`, the file and then the directory are fsynced.
pub(crate) fn write_atomically(
    dir: &Path,
    name: &OsStr,
    bytes: &[u8],
    durable: bool,
) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&temp, dir.join(name))?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}
