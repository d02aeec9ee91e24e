//! What INFO reports about the process itself: CPU time (`getrusage`),
//! resident memory (`/proc/self/statm`, Linux) and its peak, in Redis's
//! human-readable notation.

/// CPU time and memory of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// User CPU seconds.
    pub user_secs: f64,
    /// System CPU seconds.
    pub sys_secs: f64,
    /// Resident set size now (0 where `/proc` is not available).
    pub rss_bytes: u64,
    /// Largest resident set size so far.
    pub peak_rss_bytes: u64,
}

/// The process's usage now.
pub fn usage() -> Usage {
    let mut u = Usage {
        rss_bytes: current_rss().unwrap_or(0),
        ..Usage::default()
    };
    // SAFETY: getrusage only writes the struct we pass, which is plain
    // data and fully initialised (zeroed) beforehand.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        u.user_secs = secs(ru.ru_utime);
        u.sys_secs = secs(ru.ru_stime);
        // Kilobytes on Linux.
        u.peak_rss_bytes = u64::try_from(ru.ru_maxrss)
            .unwrap_or(0)
            .saturating_mul(1024);
    }
    u.peak_rss_bytes = u.peak_rss_bytes.max(u.rss_bytes);
    u
}

/// Resident pages times the page size, from `/proc/self/statm`.
fn current_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).ok()?))
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `2.00M`, ...
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (1 << 50, "P"),
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            return format!("{:.2}{unit}", n as f64 / size as f64);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_match_redis() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1536), "1.50K");
        assert_eq!(bytes_to_human(3 << 20), "3.00M");
        assert_eq!(bytes_to_human(5 << 30), "5.00G");
    }

    #[test]
    fn usage_grows_with_work() {
        let before = usage();
        // Touch 32 MiB so the resident set and the CPU time both move.
        let mut v = vec![0u8; 32 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = (i % 251) as u8;
        }
        let mut spin = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(30) {
            spin = spin.wrapping_add(v[spin as usize % v.len()] as u64 + 1);
        }
        let after = usage();
        assert!(spin > 0);
        assert!(after.user_secs + after.sys_secs > before.user_secs + before.sys_secs);
        assert!(after.peak_rss_bytes >= 32 << 20, "{after:?}");
        if cfg!(target_os = "linux") {
            assert!(after.rss_bytes > 0);
        }
        drop(v);
    }
}
