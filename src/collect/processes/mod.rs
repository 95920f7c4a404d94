//! Resident memory per process name and place: one walk of /proc a round
//! gives `sonde_process_resident_memory_bytes{comm, unit, container}`, the
//! resident pages of every process summed per label set (the cardinality
//! budget then folds the smallest into `comm="other"`).
//!
//! A round reads two small files per process: `status` (the name and
//! `VmRSS`) and `cgroup` (the cgroup v2 path, whose [`Placement`] names the
//! unit or container). A kernel thread (`Kthread:\t1` in `status`, on
//! kernels that print it) never has memory of its own: while its /proc
//! entry is the one seen (the same inode, which the listing gives; a PID
//! reused gets a new entry) it costs no system call at all. That was 3 of
//! every 4 PIDs on an idle host here, ~190 system calls a round. Another
//! process that had no memory of its own last round (a zombie, a kernel
//! thread on a kernel that does not say so) is asked `statm` first, the
//! cheapest file that says so, and read on only if it has memory now (a
//! usermode helper that has exec'd since).
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
use std::os::unix::fs::DirEntryExt;
use std::path::PathBuf;

use anyhow::Context;

use crate::collect::cgroup::Placement;
use crate::collect::{Collector, FastMap};
use crate::model::Family;

pub const NAME: &str = "processes";

/// The walker of one /proc (a made-up one in tests).
pub struct Processes {
    proc: PathBuf,
    /// Zero-initialized storage reused for every file read.
    buf: Vec<u8>,
    /// The processes without memory of their own in the last walk, and in
    /// this one, by PID and the inode of their /proc entry.
    no_memory: [FastMap<(u32, u64), Memoryless>; 2],
}

/// Why a process had no memory of its own.
#[derive(Clone, Copy)]
enum Memoryless {
    /// For good: it is not read again while its /proc entry lasts.
    KernelThread,
    /// For now: `statm` is asked first.
    ForNow,
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
            if let Some((who, bytes)) = self.process(pid, entry.ino()) {
                *sums.entry(who).or_insert(0) += bytes;
            }
        }
        let [last, this] = &mut self.no_memory;
        std::mem::swap(last, this);
        this.clear();
        Ok(sums)
    }

    /// One process's name, place and resident bytes; None when it is gone,
    /// unreadable or without memory of its own (a kernel thread).
    fn process(&mut self, pid: &str, inode: u64) -> Option<((String, Placement), u64)> {
        let key = (pid.parse().ok()?, inode);
        let last = self.no_memory[0].get(&key).copied();
        if let Some(Memoryless::KernelThread) = last {
            self.no_memory[1].insert(key, Memoryless::KernelThread);
            return None;
        }
        let dir = self.proc.join(pid);
        if let Some(Memoryless::ForNow) = last {
            if resident_pages(self.read(dir.join("statm"))?)? == 0 {
                self.no_memory[1].insert(key, Memoryless::ForNow);
                return None;
            }
        }
        let status = parse_status(self.read(dir.join("status"))?)?;
        if status.resident_kib == 0 {
            let why = if status.kernel_thread {
                Memoryless::KernelThread
            } else {
                Memoryless::ForNow
            };
            self.no_memory[1].insert(key, why);
            return None;
        }
        let placement = v2_path(self.read(dir.join("cgroup"))?)
            .map_or_else(Placement::default, Placement::of_path);
        Some(((status.name, placement), status.resident_kib * 1024))
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

/// What a walk needs of `/proc/PID/status`.
#[derive(Debug, PartialEq)]
struct Status {
    /// `Name:`, unescaped.
    name: String,
    /// `VmRSS:`, 0 when the process has no memory of its own.
    resident_kib: u64,
    /// `Kthread:\t1`, a line printed before the memory lines.
    kernel_thread: bool,
}

fn parse_status(status: &str) -> Option<Status> {
    let mut name = None;
    let mut resident_kib = 0;
    let mut kernel_thread = false;
    for line in status.lines() {
        if let Some(escaped) = line.strip_prefix("Name:\t") {
            name = Some(unescape_name(escaped));
        } else if let Some(flag) = line.strip_prefix("Kthread:\t") {
            kernel_thread = flag == "1";
        } else if let Some(rss) = line.strip_prefix("VmRSS:") {
            resident_kib = rss.trim_start().strip_suffix(" kB")?.parse().ok()?;
            break;
        }
    }
    Some(Status {
        name: name?,
        resident_kib,
        kernel_thread,
    })
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
        let parsed = |name: &str, resident_kib, kernel_thread| Status {
            name: name.to_string(),
            resident_kib,
            kernel_thread,
        };
        assert_eq!(
            parse_status(status),
            Some(parsed("web (1) \\x\nb", 4936, false))
        );
        let kernel_thread = "Name:\tkthreadd\nState:\tS (sleeping)\nKthread:\t1\nThreads:\t1\n";
        assert_eq!(
            parse_status(kernel_thread),
            Some(parsed("kthreadd", 0, true))
        );
        let user = "Name:\tsh\nKthread:\t0\nVmRSS:\t       8 kB\n";
        assert_eq!(parse_status(user), Some(parsed("sh", 8, false)));
        assert_eq!(parse_status("VmRSS:\t1 kB\n"), None);
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
        process("3", "zombie", "", "0::/\n");
        process("5", "kworker/0:1", "Kthread:\t1\n", "0::/\n");
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
        // A kernel thread is not read again while its entry is the one
        // seen: what its files say now is not counted.
        std::fs::write(root.join("5/status"), "Name:\tx\nVmRSS:\t 4 kB\n").unwrap();
        std::fs::write(root.join("5/statm"), "100 1 0 0 0 0 0\n").unwrap();
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
