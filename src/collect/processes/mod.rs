//! Resident memory per process name and place: one walk of /proc a round
//! gives `sonde_process_resident_memory_bytes{comm, unit, container}`, the
//! resident pages of every process summed per label set (the cardinality
//! budget then folds the smallest into `comm="other"`).
//!
//! A round reads three small files per process: `comm`, `statm` (resident
//! pages) and `cgroup` (the cgroup v2 path, whose [`Placement`] names the
//! unit or container). `statm`, not `stat`: the kernel sums its per-CPU RSS
//! counters for `statm` and `status` but gives `stat` their cached total,
//! which lags by up to 32 pages per CPU. A BPF task iterator would save the
//! opens, but reading the exact count means walking each mm's per-CPU
//! counters from BPF, and the walk's cost is measured in BENCHMARKS.md
//! (Processes) to be small beside a collection interval.
//!
//! A process may end at any point of the walk: any file of it that cannot be
//! read (ENOENT, ESRCH) drops it from this round. Kernel threads have no
//! memory of their own and are skipped.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;

use crate::collect::cgroup::Placement;
use crate::collect::Collector;
use crate::model::Family;

pub const NAME: &str = "processes";

/// The walker of one /proc (a made-up one in tests).
pub struct Processes {
    proc: PathBuf,
    page_size: u64,
    /// Zero-initialized storage reused for every file read.
    buf: Vec<u8>,
}

impl Processes {
    pub fn new() -> Processes {
        Processes::at("/proc")
    }

    pub fn at(proc: impl Into<PathBuf>) -> Processes {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Processes {
            proc: proc.into(),
            page_size: u64::try_from(page_size).unwrap_or(4096),
            buf: Vec::new(),
        }
    }

    /// Bytes resident per (comm, place), from one walk.
    pub fn resident(&mut self) -> anyhow::Result<HashMap<(String, Placement), u64>> {
        let mut sums = HashMap::new();
        let entries = std::fs::read_dir(&self.proc)
            .with_context(|| format!("cannot list {}", self.proc.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if let Some((who, bytes)) = self.process(pid) {
                *sums.entry(who).or_insert(0) += bytes;
            }
        }
        Ok(sums)
    }

    /// One process's name, place and resident bytes; None when it is gone,
    /// unreadable or a kernel thread.
    fn process(&mut self, pid: &str) -> Option<((String, Placement), u64)> {
        let dir = self.proc.join(pid);
        let pages = resident_pages(self.read(dir.join("statm"))?)?;
        if pages == 0 {
            return None;
        }
        let comm = self
            .read(dir.join("comm"))?
            .trim_end_matches('\n')
            .to_string();
        let placement = v2_path(self.read(dir.join("cgroup"))?)
            .map_or_else(Placement::default, Placement::of_path);
        Some(((comm, placement), pages * self.page_size))
    }

    /// The whole text of a small /proc file: open, reads until the end,
    /// close (`read_to_end` would add a stat and a seek to size a file
    /// whose size /proc does not know).
    fn read(&mut self, path: PathBuf) -> Option<&str> {
        let mut file = std::fs::File::open(path).ok()?;
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize((len * 2).max(4096), 0);
            }
            match file.read(&mut self.buf[len..]).ok()? {
                0 => break,
                n => len += n,
            }
        }
        std::str::from_utf8(&self.buf[..len]).ok()
    }
}

impl Default for Processes {
    fn default() -> Self {
        Processes::new()
    }
}

/// The second field of `statm`: resident pages.
fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The unified hierarchy's line of `/proc/PID/cgroup` ("0::/path"), present
/// on v2 and hybrid systems alike.
fn v2_path(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|line| line.strip_prefix("0::"))
}

impl Collector for Processes {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut family = Family::gauge(
            "sonde_process_resident_memory_bytes",
            "Resident memory of the processes of a name, per unit or container (/proc/PID/statm).",
        );
        for ((comm, placement), bytes) in self.resident()? {
            let mut labels = vec![("comm", comm.as_str())];
            labels.extend(placement.labels());
            family.push(&labels, bytes as f64);
        }
        out.push(family);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statm_and_the_unified_line() {
        assert_eq!(resident_pages("4960 1234 800 10 0 300 0\n"), Some(1234));
        assert_eq!(resident_pages("4960\n"), None);
        let hybrid = "12:memory:/system.slice/a.service\n0::/system.slice/a.service\n";
        assert_eq!(v2_path(hybrid), Some("/system.slice/a.service"));
        assert_eq!(v2_path("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn sums_processes_of_one_name_and_skips_kernel_threads_and_vanished_ones() {
        let root = std::env::temp_dir().join(format!("sonde-proc-test-{}", std::process::id()));
        let process = |pid: &str, comm: &str, statm: &str, cgroup: &str| {
            let dir = root.join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(dir.join("statm"), statm).unwrap();
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        };
        process(
            "1",
            "nginx",
            "100 10 0 0 0 0 0\n",
            "0::/system.slice/nginx.service\n",
        );
        process(
            "2",
            "nginx",
            "100 5 0 0 0 0 0\n",
            "0::/system.slice/nginx.service\n",
        );
        process("3", "kthreadd", "0 0 0 0 0 0 0\n", "0::/\n");
        // Gone between the listing and its files.
        std::fs::create_dir_all(root.join("4")).unwrap();
        std::fs::create_dir_all(root.join("self")).unwrap();
        let mut walker = Processes::at(&root);
        let sums = walker.resident().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let nginx = (
            "nginx".to_string(),
            Placement::of_path("/system.slice/nginx.service"),
        );
        assert_eq!(sums.get(&nginx), Some(&(15 * walker.page_size)));
        assert_eq!(sums.len(), 1);
    }

    #[test]
    fn sees_this_process() {
        let sums = Processes::new().resident().unwrap();
        let ours: u64 = sums
            .iter()
            .filter(|((comm, _), _)| comm.starts_with("sonde"))
            .map(|(_, b)| b)
            .sum();
        assert!(ours > 0, "{sums:?}");
    }
}
