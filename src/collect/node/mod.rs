//! Node metrics read from /proc and /sys, under node_exporter's names and
//! labels so existing dashboards and queries work unchanged.
//!
//! One module per node_exporter collector of the same name. Each exports what
//! node_exporter 1.5 exports with its default flags as Debian packages it
//! (`prometheus-node-exporter`): the same metric names, types, label names and
//! values, units and help texts. `tests/node_exporter.rs` runs both side by
//! side and compares every family they share.
//!
//! The collectors run every interval, so they are built to be cheap: each
//! keeps its /proc and /sys files open and rereads them from offset 0 into a
//! buffer it reuses ([`ProcFile`]), parses the text in place, and reads each
//! file once per round (/proc/stat, which two collectors need, included).
//! `cargo bench --bench node_collectors` measures them beside node_exporter.
//!
//! ## Where sonde differs from node_exporter 1.5, and why
//!
//! - Only node_exporter's default flags are reproduced (Debian's defaults:
//!   its mount point exclusions add /run, /mnt and /media, and netdev skips
//!   `lo`); the exclusion patterns are not configurable.
//! - A statfs that hangs (dead NFS server) costs one round at most
//!   [`filesystem::STATFS_TIMEOUT`], then the mount reports
//!   `node_filesystem_device_error` 1 until statfs returns; node_exporter
//!   lets that scrape hang until statfs returns.
//! - Mount points are decoded of every octal escape the kernel writes
//!   (space, tab, newline, backslash); node_exporter decodes space and tab
//!   only. Mounts are de-duplicated on (device, mountpoint, fstype), where
//!   node_exporter's key also holds the mount options and can then export a
//!   series twice.
//! - A CPU missing from /proc/stat (offline) has no series; node_exporter
//!   1.5 exports zeros for offline CPUs numbered below an online one.
//! - Labels with empty values are left out (`node_disk_info` without udev
//!   data has no `model` label instead of `model=""`); Prometheus treats the
//!   two the same.
//! - Thermal throttle counters and clock source devices are found once at
//!   start; node_exporter looks for them on every scrape.

mod bench;
mod cpu;
mod diskstats;
mod filesystem;
mod loadavg;
mod meminfo;
mod netdev;
mod pressure;
mod stat;
mod time;
mod uname;
mod vmstat;

/// The kernel's CPU list format, for the programs' perf events too.
pub(crate) use cpu::parse_cpu_list;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::collect::Collector;

pub use bench::bench;

/// Every node collector, in the order their families are exported.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    let proc_stat = SharedProcStat::new();
    let mut collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(cpu::Cpu::new(proc_stat.clone())),
        Box::new(stat::Stat::new(proc_stat)),
        Box::new(meminfo::Meminfo::new()),
        Box::new(loadavg::Loadavg::new()),
        Box::new(vmstat::Vmstat::new()),
        Box::new(diskstats::Diskstats::new()),
        Box::new(filesystem::Filesystem::new()),
        Box::new(netdev::Netdev::new()),
    ];
    match pressure::Pressure::new() {
        Ok(pressure) => collectors.push(Box::new(pressure)),
        Err(why) => tracing::info!("collector pressure: not started: {why:#}"),
    }
    collectors.push(Box::new(uname::Uname));
    collectors.push(Box::new(time::Time::new()));
    collectors
}

/// A /proc or /sys text file read again every round through one open file
/// descriptor and one buffer. Reading from offset 0 makes the kernel generate
/// the text anew, so a round costs a couple of pread(2) calls: no open(2), no
/// close(2), no allocation once the buffer has grown to the file's size.
pub(crate) struct ProcFile {
    path: PathBuf,
    file: Option<File>,
    /// Zero-initialized storage; `len` bytes of it hold the last text read.
    buf: Vec<u8>,
    len: usize,
}

impl ProcFile {
    pub fn new(path: impl Into<PathBuf>) -> ProcFile {
        ProcFile {
            path: path.into(),
            file: None,
            buf: Vec::new(),
            len: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file again and returns its text.
    pub fn read(&mut self) -> anyhow::Result<&str> {
        self.read_bytes()?;
        self.text()
    }

    /// Reads the whole file again and returns its bytes (for files whose
    /// text may not be UTF-8, such as mount tables).
    pub fn read_bytes(&mut self) -> anyhow::Result<&[u8]> {
        if self.fill().is_err() {
            // The kept descriptor may point at a file that went away (a
            // removed device's sysfs node): open the path afresh once.
            self.file = None;
            self.fill()
                .with_context(|| format!("cannot read {}", self.path.display()))?;
        }
        Ok(&self.buf[..self.len])
    }

    /// The text the last [`ProcFile::read`] returned.
    pub fn text(&self) -> anyhow::Result<&str> {
        std::str::from_utf8(&self.buf[..self.len])
            .with_context(|| format!("{} is not UTF-8 text", self.path.display()))
    }

    fn fill(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        let file = self.file.as_ref().expect("opened above");
        self.len = 0;
        loop {
            if self.len == self.buf.len() {
                let grown = (self.buf.len() * 2).max(4096);
                self.buf.resize(grown, 0);
            }
            let read = file.read_at(&mut self.buf[self.len..], self.len as u64)?;
            if read == 0 {
                return Ok(());
            }
            self.len += read;
        }
    }
}

/// /proc/stat feeds two collectors, cpu and stat. Whichever runs first in a
/// round reads the file and the other reuses that text, so the kernel formats
/// it (its `intr` line alone has a number per interrupt line) once per round.
#[derive(Clone)]
pub(crate) struct SharedProcStat(Arc<Mutex<SharedRead>>);

struct SharedRead {
    file: ProcFile,
    /// When the text in `file` was read, until the second collector takes it.
    unclaimed_since: Option<Instant>,
}

/// Both users of /proc/stat run one after the other in the same round, well
/// within this; a reading older than it belongs to an earlier round (rounds
/// are at least a second apart).
const SAME_ROUND: Duration = Duration::from_millis(100);

impl SharedProcStat {
    pub fn new() -> SharedProcStat {
        SharedProcStat::at("/proc/stat")
    }

    fn at(path: impl Into<PathBuf>) -> SharedProcStat {
        SharedProcStat(Arc::new(Mutex::new(SharedRead {
            file: ProcFile::new(path),
            unclaimed_since: None,
        })))
    }

    /// Runs `parse` on the text of /proc/stat: the text the other collector
    /// read in this round, or a fresh reading.
    pub fn with<T>(&self, parse: impl FnOnce(&str) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let reuse = shared
            .unclaimed_since
            .take()
            .is_some_and(|read_at| read_at.elapsed() < SAME_ROUND);
        if !reuse {
            shared.file.read_bytes()?;
            shared.unclaimed_since = Some(Instant::now());
        }
        parse(shared.file.text()?)
    }
}

/// Parses one number of a /proc file, naming the field when it is not one.
pub(crate) fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .with_context(|| format!("{what}: expected a number, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereading_through_the_kept_descriptor_sees_new_text() {
        let mut uptime = ProcFile::new("/proc/uptime");
        let first = uptime.read().unwrap().to_string();
        std::thread::sleep(Duration::from_millis(30));
        let second = uptime.read().unwrap().to_string();
        assert_ne!(first, second, "/proc/uptime did not change");
        assert!(second.ends_with('\n'));
    }

    #[test]
    fn files_larger_than_the_first_buffer_are_read_whole() {
        let dir = std::env::temp_dir().join(format!("sonde-procfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let text = "x".repeat(10_000) + "\n";
        std::fs::write(&path, &text).unwrap();
        let mut file = ProcFile::new(&path);
        assert_eq!(file.read().unwrap(), text);
        assert_eq!(file.read().unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_error_names_it() {
        let mut file = ProcFile::new("/proc/no-such-file");
        let err = format!("{:#}", file.read().unwrap_err());
        assert!(err.contains("/proc/no-such-file"), "{err}");
    }

    #[test]
    fn proc_stat_is_read_once_for_both_collectors_of_a_round() {
        let dir = std::env::temp_dir().join(format!("sonde-shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stat");
        std::fs::write(&path, "first\n").unwrap();
        let shared = SharedProcStat::at(&path);
        let other = shared.clone();
        assert_eq!(shared.with(|t| Ok(t.to_string())).unwrap(), "first\n");
        std::fs::write(&path, "second\n").unwrap();
        // The second collector of the round reuses the first one's reading...
        assert_eq!(other.with(|t| Ok(t.to_string())).unwrap(), "first\n");
        // ...and the next round reads again.
        assert_eq!(shared.with(|t| Ok(t.to_string())).unwrap(), "second\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
