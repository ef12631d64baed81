//! Lambda's CPU share on this machine: a cgroup CPU quota around one execution environment.
//!
//! Lambda gives a function CPU in proportion to its memory: "At 1,769 MB, a function has the
//! equivalent of one vCPU (one vCPU-second of credits per second)"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>, every Region).
//! [`CpuQuota`] holds an environment's processes (the runtime and its extensions, as Lambda's
//! sandbox holds them) in a cgroup whose CFS quota is that share of one CPU, so a cold start
//! can be measured under the limit rather than only modelled. It needs a writable cgroup CPU
//! controller: cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`), which in practice means root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The memory size at which Lambda gives one vCPU (source in the module's documentation).
pub const ONE_VCPU_MB: u32 = 1769;

/// The CFS period the quota is counted over (the kernel's default, 100 ms).
const PERIOD: Duration = Duration::from_millis(100);

/// The share of one CPU that Lambda gives a function of `memory_mb` (1.0 at 1,769 MB;
/// more above it, which a single thread cannot use).
#[must_use]
pub fn lambda_cpu_share(memory_mb: u32) -> f64 {
    f64::from(memory_mb) / f64::from(ONE_VCPU_MB)
}

/// Which cgroup interface the quota is written through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// cgroup v2: `cpu.max` = "QUOTA PERIOD".
    V2,
    /// cgroup v1's `cpu` controller: `cpu.cfs_period_us`, `cpu.cfs_quota_us`.
    V1,
}

/// A cgroup with a CPU quota; processes added to it share the quota. Removed when dropped
/// (once its processes have ended).
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
    version: Version,
    share: f64,
}

impl CpuQuota {
    /// A new cgroup limited to `share` of one CPU, under the CPU controller's root.
    ///
    /// # Errors
    /// When this machine has no CPU controller this process may write (not root, or a
    /// container without one), or the kernel refuses the quota.
    pub fn new(share: f64) -> Result<Self, String> {
        Self::under(Path::new("/sys/fs/cgroup"), share)
    }

    fn under(root: &Path, share: f64) -> Result<Self, String> {
        if !(share.is_finite() && share > 0.0) {
            return Err(format!("a CPU share must be above 0, not {share}"));
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "secret-loader-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let v2 = std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|controllers| controllers.split_whitespace().any(|c| c == "cpu"));
        let (parent, version) = if v2 {
            (root.to_owned(), Version::V2)
        } else if root.join("cpu/cpu.cfs_quota_us").exists() {
            (root.join("cpu"), Version::V1)
        } else {
            return Err(format!(
                "no cgroup CPU controller under {} (neither v2 `cpu.max` nor v1 `cpu/`)",
                root.display()
            ));
        };
        if version == Version::V2 {
            // The children of `parent` get the cpu controller only if it is delegated.
            let control = parent.join("cgroup.subtree_control");
            let delegated = std::fs::read_to_string(&control)
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
            if !delegated {
                write(&control, "+cpu")?;
            }
        }
        let dir = parent.join(name);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
        let quota = Self {
            dir,
            version,
            share,
        };
        let period = PERIOD.as_micros();
        // The kernel's least quota is 1 ms.
        let micros = ((share * period as f64).round() as u128).max(1000);
        match version {
            Version::V2 => write(&quota.dir.join("cpu.max"), &format!("{micros} {period}"))?,
            Version::V1 => {
                write(&quota.dir.join("cpu.cfs_period_us"), &period.to_string())?;
                write(&quota.dir.join("cpu.cfs_quota_us"), &micros.to_string())?;
            }
        }
        Ok(quota)
    }

    /// The share of one CPU the cgroup's processes get together.
    #[must_use]
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Moves process `pid` into the cgroup; the processes it starts from then on are in it
    /// too. (A process added just after it was spawned ran its first instructions outside:
    /// microseconds, before its program's first line.)
    ///
    /// # Errors
    /// When the kernel refuses the move.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// How often the quota ran out and the cgroup's processes waited (`nr_throttled`), and
    /// for how long in all: proof the limit bit.
    #[must_use]
    pub fn throttled(&self) -> Option<(u64, Duration)> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        let waited = match self.version {
            Version::V2 => Duration::from_micros(field("throttled_usec ")?),
            Version::V1 => Duration::from_nanos(field("throttled_time ")?),
        };
        Some((field("nr_throttled ")?, waited))
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // A cgroup goes once it is empty; its last processes may still be exiting (EBUSY).
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_memory_over_1769_mb() {
        assert!((lambda_cpu_share(1769) - 1.0).abs() < 1e-12);
        assert!((lambda_cpu_share(512) - 0.2894).abs() < 1e-4);
        assert!((lambda_cpu_share(128) - 0.0724).abs() < 1e-4);
    }

    #[test]
    fn a_machine_without_a_cpu_controller_is_told_so() {
        let empty = tempfile::tempdir().unwrap();
        let err = CpuQuota::under(empty.path(), 0.5).unwrap_err();
        assert!(err.contains("no cgroup CPU controller"), "{err}");
        assert!(CpuQuota::under(empty.path(), 0.0).is_err());
        assert!(CpuQuota::under(empty.path(), f64::NAN).is_err());
    }

    #[test]
    fn a_v1_quota_is_written_as_period_and_quota() {
        // A directory shaped like cgroup v1's `cpu` controller (the kernel's files are plain
        // files to the writer).
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("cpu")).unwrap();
        std::fs::write(root.path().join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        let quota = CpuQuota::under(root.path(), lambda_cpu_share(512)).unwrap();
        let read = |file: &str| std::fs::read_to_string(quota.dir.join(file)).unwrap();
        assert_eq!(read("cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu.cfs_quota_us"), "28943");
        quota.add(4242).unwrap();
        assert_eq!(read("cgroup.procs"), "4242");
    }

    /// The kernel enforces the quota: a process spinning in a cgroup with a tenth of a CPU
    /// runs out of it (and waits) within a few periods. Needs a writable CPU controller; on a
    /// machine without one (not root) it says so and checks nothing else.
    #[test]
    fn a_spinning_process_under_a_quota_is_throttled() {
        let quota = match CpuQuota::new(0.1) {
            Ok(quota) => quota,
            Err(why) => {
                eprintln!("no cgroup CPU controller here: {why}");
                return;
            }
        };
        let mut spin = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let added = quota.add(spin.id());
        std::thread::sleep(PERIOD * 5);
        let throttled = quota.throttled();
        let _ = spin.kill();
        let _ = spin.wait();
        added.unwrap();
        let (times, waited) = throttled.expect("cpu.stat has the throttling counters");
        assert!(times >= 2, "throttled {times} times in 5 periods");
        assert!(waited > Duration::ZERO);
        drop(quota);
    }

    #[test]
    fn a_v2_quota_is_one_line_and_the_controller_is_delegated() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory",
        )
        .unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        let quota = CpuQuota::under(root.path(), lambda_cpu_share(128)).unwrap();
        assert_eq!(
            std::fs::read_to_string(quota.dir.join("cpu.max")).unwrap(),
            "7236 100000"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap(),
            "+cpu"
        );
    }
}
