//! What the process holds in memory and how much it may hold: the resident set size (read
//! cheaply enough to check many times a second), the memory available to the process (the
//! cgroup's limit, else the machine's), and a way to hand freed heap memory back to the
//! operating system. Used by the `memory_limiter` processor; Linux only, other systems get
//! `None` / errors and the limiter then needs fixed limits.

use std::path::Path;

/// Bytes in a mebibyte (the unit of the `*_mib` config keys).
pub const MIB: u64 = 1024 * 1024;

/// The value cgroup v1 reports for "no limit" (the largest page-aligned `i64`).
pub const CGROUP_V1_UNLIMITED: u64 = 9_223_372_036_854_771_712;

/// Resident set size of this process in bytes: the pages it really holds in RAM (heap,
/// stacks, and the mapped binary), from `/proc/self/statm`.
///
/// Costs one `open` + `read` of a ~30-byte file into a stack buffer (a few µs, no heap
/// allocation), so it can be called on every check. `None` where `/proc` is missing.
pub fn rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::io::Read;
        let mut file = std::fs::File::open("/proc/self/statm").ok()?;
        let mut buf = [0u8; 128];
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let pages = parse_statm_resident(&buf[..len])?;
        Some(pages.saturating_mul(page_size()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The second field of `/proc/<pid>/statm` (resident pages).
fn parse_statm_resident(statm: &[u8]) -> Option<u64> {
    let mut fields = statm
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let resident = fields.nth(1)?;
    std::str::from_utf8(resident).ok()?.parse().ok()
}

/// The size of a memory page in bytes.
#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    static PAGE_SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
    })
}

/// Asks the allocator to return freed memory to the operating system, the closest thing
/// Rust has to the collector's forced garbage collection.
///
/// Rust frees memory as soon as its owner is dropped, but glibc's `malloc` keeps freed
/// chunks in its arenas and only gives back memory at the top of a heap, so after a burst
/// the RSS can stay high although little is in use. `malloc_trim(0)` walks every arena
/// and releases the free pages (`madvise(MADV_DONTNEED)`), so the RSS falls back to what
/// is really in use. It takes time proportional to the heap (around a millisecond for
/// a few hundred MiB), so callers rate-limit it. mimalloc (the `teletrace` binary's
/// allocator, see [`crate::allocator`]) is asked to do the same. Returns whether glibc's
/// trim was attempted (false where the C library has no such call).
pub fn release_free_memory() -> bool {
    crate::allocator::release_free_memory();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own structures under its locks.
        unsafe { libc::malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Where [`total_memory`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalMemorySource {
    /// A cgroup v2 `memory.max`.
    CgroupV2,
    /// A cgroup v1 `memory.limit_in_bytes`.
    CgroupV1,
    /// `MemTotal` of `/proc/meminfo` (no cgroup limit, or one above the machine's memory).
    MemInfo,
}

/// The memory this process may use, in bytes: the tightest memory limit of its cgroup
/// (v2 `memory.max`, v1 `memory.limit_in_bytes`, checked up the hierarchy), or the
/// machine's `MemTotal` when there is no limit or the limit is above it.
pub fn total_memory() -> Result<(u64, TotalMemorySource), String> {
    total_memory_in(Path::new("/proc"), Path::new("/sys/fs/cgroup"))
}

/// [`total_memory`] with other roots for `/proc` and `/sys/fs/cgroup` (for tests).
pub fn total_memory_in(
    proc_root: &Path,
    cgroup_root: &Path,
) -> Result<(u64, TotalMemorySource), String> {
    let meminfo_path = proc_root.join("meminfo");
    let meminfo = std::fs::read_to_string(&meminfo_path)
        .map_err(|e| format!("cannot read {}: {e}", meminfo_path.display()))?;
    let mem_total = parse_mem_total(&meminfo)
        .ok_or_else(|| format!("no MemTotal line in {}", meminfo_path.display()))?;
    let cgroups =
        std::fs::read_to_string(proc_root.join("self").join("cgroup")).unwrap_or_default();
    let limit = cgroup_limit(&cgroups, cgroup_root);
    Ok(match limit {
        Some((bytes, source)) if bytes < mem_total => (bytes, source),
        _ => (mem_total, TotalMemorySource::MemInfo),
    })
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let multiplier = match parts.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        None => 1,
        Some(_) => return None,
    };
    Some(value.saturating_mul(multiplier))
}

/// The tightest memory limit of the cgroup named in `/proc/self/cgroup` (`cgroups`) and
/// its ancestors; v2 is preferred when the unified hierarchy is mounted with the memory
/// controller.
fn cgroup_limit(cgroups: &str, root: &Path) -> Option<(u64, TotalMemorySource)> {
    let mut v1_path = None;
    let mut v2_path = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1_path = Some(path);
        }
    }
    if let Some(path) = v2_path {
        // The unified hierarchy is at the root (pure v2) or at `unified` (hybrid, which
        // has no memory controller there; v1's then applies).
        if root.join("cgroup.controllers").exists() {
            if let Some(limit) = tightest(root, path, "memory.max") {
                return Some((limit, TotalMemorySource::CgroupV2));
            }
        }
    }
    let path = v1_path?;
    tightest(&root.join("memory"), path, "memory.limit_in_bytes")
        .filter(|limit| *limit < CGROUP_V1_UNLIMITED)
        .map(|limit| (limit, TotalMemorySource::CgroupV1))
}

/// The smallest numeric value of `file` in `root/path` and each of its ancestors up to
/// `root` (`max` and unreadable files mean no limit at that level). When the process's
/// cgroup directory is not visible (a container with its own cgroup namespace sees its
/// cgroup as the root), the root's own file still counts.
fn tightest(root: &Path, path: &str, file: &str) -> Option<u64> {
    let mut limit: Option<u64> = None;
    let mut dir = root.join(path.trim_start_matches('/'));
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            if let Ok(value) = text.trim().parse::<u64>() {
                limit = Some(limit.map_or(value, |l| l.min(value)));
            }
        }
        if dir == root || !dir.starts_with(root) || !dir.pop() {
            break;
        }
    }
    limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reads_own_rss() {
        let before = rss_bytes().expect("linux has /proc/self/statm");
        assert!(before > 0);
        assert_eq!(before % page_size(), 0);
        // Touching 64 MiB makes the resident size grow by about that much.
        let block = vec![1u8; 64 * MIB as usize];
        let after = rss_bytes().unwrap();
        assert!(after >= before + 60 * MIB, "before {before}, after {after}");
        drop(block);
    }

    #[test]
    fn parses_statm() {
        assert_eq!(
            parse_statm_resident(b"5000 1234 300 10 0 900 0\n"),
            Some(1234)
        );
        assert_eq!(parse_statm_resident(b"5000"), None);
        assert_eq!(parse_statm_resident(b"5000 x"), None);
    }

    #[test]
    fn parses_mem_total() {
        let meminfo = "MemTotal:       24682416 kB\nMemFree:         2612000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_682_416 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    struct Fake {
        dir: std::path::PathBuf,
    }

    impl Fake {
        fn new(name: &str, cgroup: &str) -> Fake {
            let dir = std::env::temp_dir()
                .join(format!("teletrace-memory-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("proc/self")).unwrap();
            fs::create_dir_all(dir.join("cgroup")).unwrap();
            fs::write(dir.join("proc/meminfo"), "MemTotal: 8388608 kB\n").unwrap();
            fs::write(dir.join("proc/self/cgroup"), cgroup).unwrap();
            Fake { dir }
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.dir.join("cgroup").join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn total(&self) -> (u64, TotalMemorySource) {
            total_memory_in(&self.dir.join("proc"), &self.dir.join("cgroup")).unwrap()
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    const EIGHT_GIB: u64 = 8 * 1024 * MIB;

    #[test]
    fn no_cgroup_limit_means_mem_total() {
        let fake = Fake::new("none", "0::/\n");
        assert_eq!(fake.total(), (EIGHT_GIB, TotalMemorySource::MemInfo));
        fake.write("cgroup.controllers", "memory pids\n");
        fake.write("memory.max", "max\n");
        assert_eq!(fake.total(), (EIGHT_GIB, TotalMemorySource::MemInfo));
    }

    #[test]
    fn cgroup_v2_limit_up_the_hierarchy() {
        let fake = Fake::new("v2", "0::/app/worker\n");
        fake.write("cgroup.controllers", "memory pids\n");
        fake.write("app/worker/memory.max", "max\n");
        fake.write("app/memory.max", "536870912\n");
        assert_eq!(fake.total(), (512 * MIB, TotalMemorySource::CgroupV2));
        fake.write("app/worker/memory.max", "268435456\n");
        assert_eq!(fake.total(), (256 * MIB, TotalMemorySource::CgroupV2));
        // A limit above the machine's memory is no limit.
        fake.write("app/worker/memory.max", "99999999999999\n");
        fake.write("app/memory.max", "max\n");
        assert_eq!(fake.total(), (EIGHT_GIB, TotalMemorySource::MemInfo));
    }

    #[test]
    fn cgroup_v2_namespace_root() {
        // Inside a container with its own cgroup namespace the process is at `/`.
        let fake = Fake::new("v2ns", "0::/\n");
        fake.write("cgroup.controllers", "memory\n");
        fake.write("memory.max", "1073741824\n");
        assert_eq!(fake.total(), (1024 * MIB, TotalMemorySource::CgroupV2));
    }

    #[test]
    fn cgroup_v1_limit_and_unlimited() {
        let fake = Fake::new(
            "v1",
            "4:memory:/process_api/abc\n1:cpu:/\n0::/\n", // hybrid: v2 has no memory
        );
        fake.write(
            "memory/process_api/abc/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(fake.total(), (EIGHT_GIB, TotalMemorySource::MemInfo));
        fake.write("memory/process_api/memory.limit_in_bytes", "2147483648\n");
        assert_eq!(fake.total(), (2048 * MIB, TotalMemorySource::CgroupV1));
    }

    #[test]
    fn missing_meminfo_is_an_error() {
        let fake = Fake::new("nomeminfo", "0::/\n");
        fs::remove_file(fake.dir.join("proc/meminfo")).unwrap();
        let e = total_memory_in(&fake.dir.join("proc"), &fake.dir.join("cgroup")).unwrap_err();
        assert!(e.contains("meminfo"), "{e}");
    }

    #[test]
    fn this_machine_has_some_memory() {
        let (total, _) = total_memory().unwrap();
        assert!(total > 64 * MIB);
    }
}
