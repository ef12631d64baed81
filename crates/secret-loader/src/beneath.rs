//! Files beneath a directory handle, never outside it: the one way the file backend and the
//! `/tmp` cache touch the file system.
//!
//! Paths are never checked and then used again (a writer under the root could swap a
//! directory for a symlink in between). Every operation walks from an open directory handle:
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it (Linux 5.6+),
//! else one `openat` per segment with `O_NOFOLLOW | O_DIRECTORY`; then `openat`, `renameat`,
//! `unlinkat` relative to the directory reached. A symlink anywhere on the way is refused.
//!
//! Writes go to a temporary file with a random name, created with `O_EXCL` (so it is ours
//! alone, even when two writers on a shared file system have the same pid, as two Lambda
//! environments on one EFS do), then renamed over the target; a failed write removes only
//! that file. New directories are created 0700 and their parent synced.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a walk beneath the root failed.
#[derive(Debug)]
pub(crate) enum Beneath {
    /// A symlink (or `..`) on the way: it could lead out of the root.
    Escapes,
    /// The file system said no.
    Io(io::Error),
}

impl fmt::Display for Beneath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Escapes => f.write_str("a symlink on the way (refused)"),
            Self::Io(err) => err.fmt(f),
        }
    }
}

impl From<io::Error> for Beneath {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl From<Errno> for Beneath {
    fn from(errno: Errno) -> Self {
        match errno {
            // ELOOP: a symlink where O_NOFOLLOW / RESOLVE_NO_SYMLINKS forbids one;
            // EXDEV: RESOLVE_BENEATH saw the path leave the directory.
            Errno::LOOP | Errno::XDEV => Self::Escapes,
            other => Self::Io(other.into()),
        }
    }
}

/// An open directory; everything below goes through it.
#[derive(Debug)]
pub(crate) struct Dir(OwnedFd);

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens `path` itself (a configured root: symlinks on the way to it are the operator's
    /// choice and are followed, but the last component must be a real directory).
    pub(crate) fn open(path: &Path) -> Result<Self, Beneath> {
        Ok(Self(rustix::fs::openat(
            rustix::fs::CWD,
            path,
            DIR_FLAGS,
            Mode::empty(),
        )?))
    }

    /// The directory `segments` below this one (each a plain name, as ids guarantee),
    /// creating missing ones (0700, parent synced) when `create`.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn descend(&self, segments: &[&str], create: bool) -> Result<Self, Beneath> {
        if segments.is_empty() {
            return Ok(Self(self.0.try_clone()?));
        }
        if !create {
            let path = segments.join("/");
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
            match rustix::fs::openat2(&self.0, &path, DIR_FLAGS, Mode::empty(), resolve) {
                Ok(fd) => return Ok(Self(fd)),
                // No openat2 (old kernel, seccomp): walk segment by segment below. ENOTDIR may
                // be a symlink met with O_NOFOLLOW: the walk tells which.
                Err(Errno::NOSYS | Errno::PERM | Errno::NOTDIR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let mut current = Self(self.0.try_clone()?);
        for segment in segments {
            if matches!(*segment, "" | "." | "..") || segment.contains('/') {
                return Err(Beneath::Escapes);
            }
            if create {
                match rustix::fs::mkdirat(&current.0, *segment, Mode::from_raw_mode(0o700)) {
                    Ok(()) => rustix::fs::fsync(&current.0)?,
                    Err(Errno::EXIST) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            current = match rustix::fs::openat(&current.0, *segment, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => Self(fd),
                // O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR: tell it from a file.
                Err(Errno::NOTDIR) if current.file_type(segment)? == Some(FileType::Symlink) => {
                    return Err(Beneath::Escapes);
                }
                Err(err) => return Err(err.into()),
            };
        }
        Ok(current)
    }

    /// Opens the regular file `name` here for reading; a symlink is refused.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn open_file(&self, name: &str) -> Result<File, Beneath> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let file = File::from(rustix::fs::openat(&self.0, name, flags, Mode::empty())?);
        if file.metadata()?.is_dir() {
            return Err(io::Error::from(io::ErrorKind::IsADirectory).into());
        }
        Ok(file)
    }

    /// What `name` here is, without following a symlink; `None` when nothing is there.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn file_type(&self, name: &str) -> Result<Option<FileType>, Beneath> {
        match rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(err) => Err(Beneath::Io(err.into())),
        }
    }

    /// Replaces `name` here with `bytes` atomically: a reader sees the old content or the new,
    /// never part of it. `rename` replaces a symlink at `name` itself, never what it points
    /// to. With `durable`, the file and then this directory are synced.
    pub(crate) fn replace(&self, name: &str, bytes: &[u8], durable: bool) -> Result<(), Beneath> {
        let temp = format!(".{name}.{}.tmp", random_suffix()?);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.0, &temp, flags, Mode::from_raw_mode(0o600))?;
        // From here the temporary file is ours (O_EXCL): on any failure remove it, and only it.
        let written = (|| -> Result<(), Beneath> {
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            if durable {
                file.sync_all()?;
            }
            rustix::fs::renameat(&self.0, &temp, &self.0, name)?;
            if durable {
                rustix::fs::fsync(&self.0)?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&self.0, &temp, AtFlags::empty());
        }
        written
    }

    /// Removes the regular file `name` here. A directory is not found; a symlink is refused
    /// (never followed, never removed).
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn remove_file(&self, name: &str) -> Result<(), Beneath> {
        match self.file_type(name)? {
            None | Some(FileType::Directory) => {
                Err(io::Error::from(io::ErrorKind::NotFound).into())
            }
            Some(FileType::Symlink) => Err(Beneath::Escapes),
            Some(_) => Ok(rustix::fs::unlinkat(&self.0, name, AtFlags::empty())?),
        }
    }
}

/// 16 random hex digits from the kernel.
fn random_suffix() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    crate::random::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_never_followed_and_writes_stay_beneath() {
        let outside = tempfile_dir("outside");
        let root = tempfile_dir("root");
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), root.join("real/file-link")).unwrap();
        std::fs::write(outside.join("f"), b"outside").unwrap();
        let dir = Dir::open(&root).unwrap();

        for create in [false, true] {
            let got = dir.descend(&["link"], create);
            assert!(matches!(got, Err(Beneath::Escapes)), "{create}: {got:?}");
            assert!(matches!(
                dir.descend(&["link", "x"], create),
                Err(Beneath::Escapes)
            ));
            assert!(matches!(
                dir.descend(&[".."], create),
                Err(Beneath::Escapes)
            ));
        }
        let real = dir.descend(&["real"], false).unwrap();
        assert!(matches!(real.open_file("file-link"), Err(Beneath::Escapes)));
        assert!(matches!(
            real.remove_file("file-link"),
            Err(Beneath::Escapes)
        ));
        real.replace("file-link", b"inside", true).unwrap();
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"outside");
        assert_eq!(
            std::fs::read(root.join("real/file-link")).unwrap(),
            b"inside"
        );

        let deep = dir.descend(&["a", "b"], true).unwrap();
        deep.replace("s", b"v", true).unwrap();
        assert_eq!(std::fs::read(root.join("a/b/s")).unwrap(), b"v");
        let names: Vec<_> = std::fs::read_dir(root.join("a/b")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        deep.remove_file("s").unwrap();
        assert!(
            matches!(deep.remove_file("s"), Err(Beneath::Io(e)) if e.kind() == io::ErrorKind::NotFound)
        );
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "beneath-{name}-{}-{}",
            std::process::id(),
            random_suffix().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
