//! Resident memory per process name and place: one walk of /proc a round
//! gives `sonde_process_resident_memory_bytes{comm, unit, container}`, the
//! resident pages of every process summed per label set (the cardinality
//! budget then folds the smallest into `comm="other"`).
//!
//! A round reads two small files per process: `status` (the name and
//! `VmRSS`) and `cgroup` (the cgroup v2 path, whose [`Placement`] names the
//! unit or container). A process that had no memory of its own last round
//! (a kernel thread, most of /proc on an idle host) is asked `statm` first,
//! the cheapest file that says so, and read on only if it has memory now
//! (a usermode helper that has exec'd since, a PID reused).
//!
//! `status` or `statm`, not `stat`: the kernel sums its per-CPU RSS
//! counters for `statm` and `status` but gives `stat` their cached total,
//! which lags by up to 32 pages per CPU (measured here: 28 of 91 processes
//! off in `stat`, none in `status`). `status` rather than `statm` and
//! `comm`: one file instead of two, and each file costs an open, a read
//! and a close, every one traced by sonde's own syscalls program
//! (BENCHMARKS.md, "Idle: the collect thread"). A BPF task iterator would
//! save the opens, but reading the exact count means walking each mm's
//! per-CPU counters from BPF, and the walk's cost is measured in
//! BENCHMARKS.md (Processes) to be small beside a collection interval.
//!
//! A process may end at any point of the walk: any file of it that cannot be
//! read (ENOENT, ESRCH) drops it from this round. Kernel threads have no
//! memory of their own (no `VmRSS` line) and are skipped.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;

use crate::collect::cgroup::Placement;
use crate::collect::{Collector, FastSet};
use crate::model::Family;

pub const NAME: &str = "processes";

/// The walker of one /proc (a made-up one in tests).
pub struct Processes {
    proc: PathBuf,
    /// Zero-initialized storage reused for every file read.
    buf: Vec<u8>,
    /// The PIDs without memory of their own in the last walk, and in this one.
    no_memory: [FastSet<u32>; 2],
}

impl Processes {
    pub fn new() -> Processes {
        Processes::at("/proc")
    }

    pub fn at(proc: impl Into<PathBuf>) -> Processes {
        Processes {
            proc: proc.into(),
            buf: Vec::new(),
            no_memory: Default::default(),
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
        let [last, this] = &mut self.no_memory;
        std::mem::swap(last, this);
        this.clear();
        Ok(sums)
    }

    /// One process's name, place and resident bytes; None when it is gone,
    /// unreadable or a kernel thread.
    fn process(&mut self, pid: &str) -> Option<((String, Placement), u64)> {
        let dir = self.proc.join(pid);
        let number = pid.parse().ok()?;
        let had_none = self.no_memory[0].contains(&number);
        if had_none && resident_pages(self.read(dir.join("statm"))?)? == 0 {
            self.no_memory[1].insert(number);
            return None;
        }
        let (comm, kib) = name_and_resident_kib(self.read(dir.join("status"))?)?;
        if kib == 0 {
            self.no_memory[1].insert(number);
            return None;
        }
        let placement = v2_path(self.read(dir.join("cgroup"))?)
            .map_or_else(Placement::default, Placement::of_path);
        Some(((comm, placement), kib * 1024))
    }

    /// The whole text of a small /proc file: open, read, close.
    ///
    /// A read shorter than the buffer ends the file, so the usual last read
    /// that returns 0 is left out (a system call per file): each of these
    /// files is one record the kernel writes whole into its own buffer
    /// before copying what fits, and a regular file reads to its end the
    /// same way. A read that fills the buffer goes on reading.
    /// (`read_to_end` would add a stat and a seek to size a file whose size
    /// /proc does not know.)
    fn read(&mut self, path: PathBuf) -> Option<&str> {
        let mut file = std::fs::File::open(path).ok()?;
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize((len * 2).max(4096), 0);
            }
            let room = self.buf.len() - len;
            let read = file.read(&mut self.buf[len..]).ok()?;
            len += read;
            if read < room {
                break;
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

/// The name (`Name:`, unescaped) and resident KiB (`VmRSS:`, 0 when the
/// process has no memory of its own) from `/proc/PID/status`.
fn name_and_resident_kib(status: &str) -> Option<(String, u64)> {
    let mut name = None;
    let mut kib = 0;
    for line in status.lines() {
        if let Some(escaped) = line.strip_prefix("Name:\t") {
            name = Some(unescape_name(escaped));
        } else if let Some(rss) = line.strip_prefix("VmRSS:") {
            kib = rss.trim_start().strip_suffix(" kB")?.parse().ok()?;
            break;
        }
    }
    Some((name?, kib))
}

/// `status` writes a name's newline as `\n` and its backslash as `\\`
/// (any other byte as it is), so that the name stays on its line; `comm`
/// and `stat` write it raw, and the label is the raw name.
fn unescape_name(escaped: &str) -> String {
    let mut name = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                name.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                name.push('\\');
                chars.next();
            }
            _ => name.push(c),
        }
    }
    name
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
    fn parses_status_statm_and_the_unified_line() {
        assert_eq!(resident_pages("4960 1234 800 10 0 300 0\n"), Some(1234));
        assert_eq!(resident_pages("4960\n"), None);
        let status =
            "Name:\tweb (1) \\\\x\\nb\nUmask:\t0022\nVmRSS:\t    4936 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(
            name_and_resident_kib(status),
            Some(("web (1) \\x\nb".to_string(), 4936))
        );
        let kernel_thread = "Name:\tkthreadd\nState:\tS (sleeping)\nThreads:\t1\n";
        assert_eq!(
            name_and_resident_kib(kernel_thread),
            Some(("kthreadd".to_string(), 0))
        );
        assert_eq!(name_and_resident_kib("VmRSS:\t1 kB\n"), None);
        let hybrid = "12:memory:/system.slice/a.service\n0::/system.slice/a.service\n";
        assert_eq!(v2_path(hybrid), Some("/system.slice/a.service"));
        assert_eq!(v2_path("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn sums_processes_of_one_name_and_skips_kernel_threads_and_vanished_ones() {
        let root = std::env::temp_dir().join(format!("sonde-proc-test-{}", std::process::id()));
        let process = |pid: &str, comm: &str, rss: &str, cgroup: &str| {
            let dir = root.join(pid);
            std::fs::create_dir_all(&dir).unwrap();
            let status = format!("Name:\t{comm}\nUmask:\t0022\n{rss}Threads:\t1\n");
            std::fs::write(dir.join("status"), status).unwrap();
            std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        };
        process(
            "1",
            "nginx",
            "VmRSS:\t      40 kB\n",
            "0::/system.slice/nginx.service\n",
        );
        // Longer than one read's buffer.
        let long = format!("VmRSS:\t      20 kB\n{}", "Padding:\tx\n".repeat(1000));
        process("2", "nginx", &long, "0::/system.slice/nginx.service\n");
        process("3", "kthreadd", "", "0::/\n");
        // Gone between the listing and its files.
        std::fs::create_dir_all(root.join("4")).unwrap();
        std::fs::create_dir_all(root.join("self")).unwrap();
        let mut walker = Processes::at(&root);
        let sums = walker.resident().unwrap();
        let nginx = (
            "nginx".to_string(),
            Placement::of_path("/system.slice/nginx.service"),
        );
        assert_eq!(sums.get(&nginx), Some(&(60 * 1024)));
        assert_eq!(sums.len(), 1);

        // Without memory last round: statm is asked first, and says so
        // (status is not read, whatever it says).
        let helper = |statm: &str| {
            std::fs::write(root.join("3/statm"), statm).unwrap();
            std::fs::write(
                root.join("3/status"),
                "Name:\tmodprobe\nVmRSS:\t       8 kB\n",
            )
            .unwrap();
            std::fs::write(root.join("3/cgroup"), "0::/\n").unwrap();
        };
        helper("0 0 0 0 0 0 0\n");
        assert_eq!(walker.resident().unwrap().len(), 1);
        // It has memory now (a usermode helper exec'd): read on.
        helper("100 2 0 0 0 0 0\n");
        let sums = walker.resident().unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let modprobe = ("modprobe".to_string(), Placement::default());
        assert_eq!(sums.get(&modprobe), Some(&(8 * 1024)));
        assert_eq!(sums.len(), 2);
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
