//! CPU lists from sysfs (`0-3,5,7-8`).

use crate::transport::error::PerfError;

const ONLINE: &str = "/sys/devices/system/cpu/online";
const POSSIBLE: &str = "/sys/devices/system/cpu/possible";
const PRESENT: &str = "/sys/devices/system/cpu/present";
/// Larger ids are treated as garbage (the kernel's NR_CPUS is at most 8192).
const MAX_CPU: u32 = 1 << 20;

/// Parse a kernel CPU list such as `0-3,5,7-8` (trailing newline allowed)
/// into sorted, de-duplicated ids.
pub fn parse_cpu_list(s: &str) -> Result<Vec<u32>, PerfError> {
    parse(s).map_err(|reason| PerfError::CpuList { path: None, input: s.trim().to_string(), reason })
}

/// The online CPUs, from `/sys/devices/system/cpu/online`.
pub fn online_cpus() -> Result<Vec<u32>, PerfError> {
    read_list(ONLINE)
}

/// Number of possible CPU ids (max id + 1), the size a PERF_EVENT_ARRAY needs.
pub fn possible_cpu_count() -> Result<u32, PerfError> {
    let cpus = read_list(POSSIBLE)?;
    // parse() never returns an empty list.
    Ok(cpus.last().map_or(0, |m| m + 1))
}

/// Number of present CPU ids (max id + 1): the CPUs that can run. Often
/// far fewer than the possible ones on virtual machines (room for hot-plug).
pub fn present_cpu_count() -> Result<u32, PerfError> {
    let cpus = read_list(PRESENT)?;
    Ok(cpus.last().map_or(0, |m| m + 1))
}

fn read_list(path: &'static str) -> Result<Vec<u32>, PerfError> {
    let s = std::fs::read_to_string(path).map_err(|source| PerfError::Read { path, source })?;
    parse(&s).map_err(|reason| PerfError::CpuList { path: Some(path), input: s.trim().to_string(), reason })
}

fn parse(s: &str) -> Result<Vec<u32>, &'static str> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty");
    }
    let mut out = Vec::new();
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(item)?, num(item)?),
        };
        if lo > hi {
            return Err("range start above its end");
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn num(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a decimal CPU number");
    }
    match s.parse::<u32>() {
        Ok(n) if n < MAX_CPU => Ok(n),
        _ => Err("CPU number too large"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<u32> {
        parse_cpu_list(s).unwrap()
    }

    #[test]
    fn lists() {
        assert_eq!(ok("0"), [0]);
        assert_eq!(ok("0\n"), [0]);
        assert_eq!(ok("0-3"), [0, 1, 2, 3]);
        assert_eq!(ok("0-3,5,7-8\n"), [0, 1, 2, 3, 5, 7, 8]);
        assert_eq!(ok("4,0-1"), [0, 1, 4]);
        assert_eq!(ok("2-2,2"), [2]);
        assert_eq!(ok("127"), [127]);
    }

    #[test]
    fn bad_lists() {
        for bad in [
            "",
            "\n",
            "a",
            "0-",
            "-1",
            "3-1",
            "0,,1",
            "0,",
            ",0",
            "1 -2",
            "+1",
            "0-3:2",
            "99999999999",
            "1048576",
        ] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_cpu_list("3-1").unwrap_err().to_string();
        assert_eq!(e, "bad CPU list \"3-1\": range start above its end");
    }

    #[test]
    fn sysfs_lists_parse() {
        // Real files exist on any Linux host; their content must parse.
        let online = online_cpus().unwrap();
        let possible = possible_cpu_count().unwrap();
        assert!(!online.is_empty());
        assert!(online.iter().all(|&c| c < possible), "{online:?} vs {possible}");
    }
}
