//! node_exporter's filesystem collector: size, free and available bytes,
//! inodes, read-only flag and a statfs error flag for each mounted
//! filesystem, labeled `device`, `mountpoint`, `fstype` as /proc/1/mounts
//! names them.
//!
//! Mounts are skipped as Debian's node_exporter 1.5 skips them by default:
//! mount points under /dev, /proc, /run, /sys, /mnt, /media and container
//! storage, and pseudo filesystem types (the two patterns below).
//!
//! ## A hung statfs cannot stall collection
//!
//! statfs(2) on a network filesystem whose server is gone blocks, with NFS
//! hard mounts forever, and a thread blocked in it cannot be interrupted
//! (FUSE filesystems whose daemon hangs do the same, and so may the path
//! walk to any mount point below such a mount). Local filesystems answer
//! statfs from counters in memory, so on a machine whose mount table has only
//! the types in [`LOCAL`] (most servers) the collection thread calls statfs
//! directly. Otherwise every statfs runs on a helper thread, and the collection thread waits for each
//! answer at most [`STATFS_TIMEOUT`]. When the time is up the mount is
//! reported with `node_filesystem_device_error` 1 and no sizes (as
//! node_exporter reports a mount it deems stuck), the blocked helper is
//! abandoned, and a fresh helper takes later calls. The mount point counts as
//! stuck, reported without calling statfs again, until the abandoned call
//! returns; the abandoned helper then clears the mark and exits. So a stale
//! mount costs one round at most one timeout, later rounds nothing, and there
//! is at most one blocked thread per stuck mount point. node_exporter 1.5
//! instead lets the scrape that meets the stale mount hang until statfs
//! returns, and skips the mount in later scrapes after 5 s.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use regex::Regex;

use super::ProcFile;
use crate::collect::Collector;
use crate::model::Family;

const MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
const FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// How long one statfs may take before its mount counts as stuck. A local
/// filesystem answers in microseconds and a reachable NFS server in
/// milliseconds; a second means the server is gone, and the collection
/// interval may itself be as short as a second.
pub const STATFS_TIMEOUT: Duration = Duration::from_secs(1);

/// Filesystem types that neither statfs nor a path walk through them can
/// block on (no server, no user-space daemon, no automounting; disk
/// filesystems answer statfs from in-memory counters without I/O). When the
/// mount table holds nothing else, statfs is called on the collection thread,
/// saving the hand-off to the helper thread (two thread wake-ups) per mount.
const LOCAL: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "f2fs",
    "vfat",
    "exfat",
    "tmpfs",
    "ramfs",
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "squashfs",
    "overlay",
    "iso9660",
];

/// What statfs(2) says of a filesystem, in node_exporter's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

pub struct Filesystem {
    mounts: ProcFile,
    exclude_mount_points: Regex,
    exclude_fs_types: Regex,
    statfs: StatfsRunner,
}

impl Filesystem {
    pub fn new() -> Filesystem {
        // PID 1's mount table is the host's even when sonde runs in its own
        // mount namespace; with hidepid it is hidden, so fall back to ours.
        let mut mounts = ProcFile::new("/proc/1/mounts");
        if mounts.read_bytes().is_err() {
            mounts = ProcFile::new("/proc/mounts");
        }
        Filesystem {
            mounts,
            exclude_mount_points: Regex::new(MOUNT_POINTS_EXCLUDE).expect("valid pattern"),
            exclude_fs_types: Regex::new(FS_TYPES_EXCLUDE).expect("valid pattern"),
            statfs: StatfsRunner::new(statfs, STATFS_TIMEOUT),
        }
    }
}

impl Collector for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut device_error = Family::gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        );
        let mut size = Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
        let mut free = Family::gauge(
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
        );
        let mut avail = Family::gauge(
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
        );
        let mut files = Family::gauge("node_filesystem_files", "Filesystem total file nodes.");
        let mut files_free = Family::gauge(
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
        );
        let mut readonly =
            Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");

        let Filesystem {
            mounts,
            exclude_mount_points,
            exclude_fs_types,
            statfs,
        } = self;
        let table = parse_mounts(mounts.read_bytes()?).collect::<anyhow::Result<Vec<Mount>>>()?;
        let may_block = !table.iter().all(|m| LOCAL.contains(&m.fs_type.as_str()));
        let mut seen = HashSet::new();
        for mount in &table {
            let key = (&mount.device, &mount.mount_point, &mount.fs_type);
            // A filesystem mounted twice at the same place is one series.
            if exclude_mount_points.is_match(&mount.mount_point)
                || exclude_fs_types.is_match(&mount.fs_type)
                || !seen.insert(key)
            {
                continue;
            }
            let labels = [
                ("device", mount.device.as_str()),
                ("mountpoint", mount.mount_point.as_str()),
                ("fstype", mount.fs_type.as_str()),
            ];
            let usage = match statfs.statfs(&mount.path, may_block) {
                Outcome::Usage(usage) => usage,
                Outcome::Failed(err) => {
                    tracing::debug!("statfs {}: {err}", mount.mount_point);
                    device_error.push(&labels, 1.0);
                    continue;
                }
                Outcome::Stuck => {
                    device_error.push(&labels, 1.0);
                    continue;
                }
            };
            device_error.push(&labels, 0.0);
            size.push(&labels, usage.size);
            free.push(&labels, usage.free);
            avail.push(&labels, usage.avail);
            files.push(&labels, usage.files);
            files_free.push(&labels, usage.files_free);
            readonly.push(&labels, f64::from(u8::from(mount.read_only)));
        }
        out.extend([device_error, size, free, avail, files, files_free, readonly]);
        Ok(())
    }
}

/// One line of a mount table, with label values as node_exporter shows them.
#[derive(Debug, PartialEq)]
pub struct Mount {
    /// The mount source as the table writes it.
    pub device: String,
    /// The mount point with the table's octal escapes (`\040` for a space)
    /// decoded.
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
    /// The mount point as a path, for statfs (byte-exact even when not UTF-8).
    pub path: PathBuf,
}

/// Parses /proc/<pid>/mounts; a line with fewer than four fields is an error.
pub fn parse_mounts(table: &[u8]) -> impl Iterator<Item = anyhow::Result<Mount>> + '_ {
    table
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
            let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                anyhow::bail!(
                    "malformed mount table line: {:?}",
                    String::from_utf8_lossy(line)
                );
            };
            let decoded = unescape(mount_point);
            Ok(Mount {
                device: String::from_utf8_lossy(device).into_owned(),
                mount_point: String::from_utf8_lossy(&decoded).into_owned(),
                fs_type: String::from_utf8_lossy(fs_type).into_owned(),
                read_only: options.split(|&b| b == b',').any(|o| o == b"ro"),
                path: PathBuf::from(OsStr::from_bytes(&decoded)),
            })
        })
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).filter(|d| {
            field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// statfs(2), with sizes in bytes from the fundamental block size as
/// node_exporter computes them (f_bsize).
fn statfs(path: &Path) -> io::Result<Usage> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount point contains NUL"))?;
    // SAFETY: `path` is a valid C string and `buf` plain data statfs fills.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = buf.f_bsize as f64;
    Ok(Usage {
        size: buf.f_blocks as f64 * block,
        free: buf.f_bfree as f64 * block,
        avail: buf.f_bavail as f64 * block,
        files: buf.f_files as f64,
        files_free: buf.f_ffree as f64,
    })
}

/// What became of one statfs call.
#[derive(Debug)]
pub enum Outcome {
    Usage(Usage),
    Failed(io::Error),
    /// No answer within the timeout now, or still none since an earlier round.
    Stuck,
}

type StatfsFn = fn(&Path) -> io::Result<Usage>;

/// Runs statfs calls on a helper thread with a timeout (see the module doc).
struct StatfsRunner {
    call: StatfsFn,
    timeout: Duration,
    worker: Option<Worker>,
    /// Mount points whose statfs has not returned, each on an abandoned
    /// helper (the live helper is idle whenever the collector looks).
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

struct Worker {
    requests: Sender<PathBuf>,
    answers: Receiver<io::Result<Usage>>,
}

impl StatfsRunner {
    fn new(call: StatfsFn, timeout: Duration) -> StatfsRunner {
        StatfsRunner {
            call,
            timeout,
            worker: None,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Calls statfs: on this thread when `may_block` is false, else on the
    /// helper thread with the timeout.
    fn statfs(&mut self, path: &Path, may_block: bool) -> Outcome {
        if !may_block {
            return match (self.call)(path) {
                Ok(usage) => Outcome::Usage(usage),
                Err(err) => Outcome::Failed(err),
            };
        }
        if lock(&self.in_flight).contains(path) {
            return Outcome::Stuck;
        }
        let worker = match self.worker.take() {
            Some(worker) => worker,
            None => match self.spawn() {
                Ok(worker) => worker,
                Err(err) => return Outcome::Failed(err),
            },
        };
        if worker.requests.send(path.to_owned()).is_err() {
            return Outcome::Failed(io::Error::other("the statfs thread ended"));
        }
        match worker.answers.recv_timeout(self.timeout) {
            Ok(answer) => {
                self.worker = Some(worker);
                match answer {
                    Ok(usage) => Outcome::Usage(usage),
                    Err(err) => Outcome::Failed(err),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    "statfs {} has not returned after {:?}: reporting node_filesystem_device_error 1 \
                     for it until it does (a network filesystem whose server is unreachable?)",
                    path.display(),
                    self.timeout
                );
                Outcome::Stuck
            }
            Err(RecvTimeoutError::Disconnected) => {
                Outcome::Failed(io::Error::other("the statfs thread ended"))
            }
        }
    }

    fn spawn(&self) -> io::Result<Worker> {
        let (requests, incoming) = mpsc::channel::<PathBuf>();
        let (outgoing, answers) = mpsc::channel();
        let in_flight = self.in_flight.clone();
        let call = self.call;
        std::thread::Builder::new()
            .name("statfs".into())
            .stack_size(64 << 10)
            .spawn(move || {
                for path in incoming {
                    lock(&in_flight).insert(path.clone());
                    let answer = call(&path);
                    let was_stuck = !lock(&in_flight).remove(&path);
                    if outgoing.send(answer).is_err() {
                        if !was_stuck {
                            tracing::info!(
                                "statfs {} returned: collecting it again",
                                path.display()
                            );
                        }
                        return; // abandoned after a timeout
                    }
                }
            })?;
        Ok(Worker { requests, answers })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    #[test]
    fn mount_lines_become_labels() {
        let table = b"/dev/vda / ext4 rw,relatime,discard 0 0\n\
                      server:/export /srv/my\\040share nfs4 ro,vers=4.2 0 0\n";
        let mounts: Vec<Mount> = parse_mounts(table).map(Result::unwrap).collect();
        assert_eq!(mounts[0].device, "/dev/vda");
        assert_eq!(mounts[0].mount_point, "/");
        assert!(!mounts[0].read_only);
        assert_eq!(mounts[1].mount_point, "/srv/my share");
        assert_eq!(mounts[1].path, Path::new("/srv/my share"));
        assert_eq!(mounts[1].fs_type, "nfs4");
        assert!(mounts[1].read_only);
        assert!(parse_mounts(b"proc /proc\n").next().unwrap().is_err());
    }

    #[test]
    fn octal_escapes_decode() {
        assert_eq!(unescape(br"/a\011b\134c\012"), b"/a\tb\\c\n");
        assert_eq!(unescape(br"/plain\9"), br"/plain\9");
    }

    #[test]
    fn default_exclusions_match_debians_node_exporter() {
        let mount_points = Regex::new(MOUNT_POINTS_EXCLUDE).unwrap();
        for skipped in [
            "/dev",
            "/dev/shm",
            "/run",
            "/run/user/0",
            "/sys/fs/cgroup",
            "/mnt/x",
            "/var/lib/docker/overlay2/a",
        ] {
            assert!(mount_points.is_match(skipped), "{skipped}");
        }
        for kept in ["/", "/home", "/boot/efi", "/var/lib/docker", "/devices"] {
            assert!(!mount_points.is_match(kept), "{kept}");
        }
        let fs_types = Regex::new(FS_TYPES_EXCLUDE).unwrap();
        assert!(fs_types.is_match("cgroup2") && fs_types.is_match("overlay"));
        assert!(!fs_types.is_match("ext4") && !fs_types.is_match("tmpfs"));
    }

    #[test]
    fn statfs_of_this_root_agrees_with_the_kernel() {
        let usage = statfs(Path::new("/")).unwrap();
        assert!(usage.size > 0.0 && usage.avail <= usage.free && usage.free <= usage.size);
        assert!(statfs(Path::new("/no/such/dir")).is_err());
    }

    static HANG_ONCE: AtomicBool = AtomicBool::new(true);

    fn fake_statfs(path: &Path) -> io::Result<Usage> {
        if path == Path::new("/hang") && HANG_ONCE.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(600));
        }
        Ok(Usage {
            size: 1.0,
            free: 1.0,
            avail: 1.0,
            files: 1.0,
            files_free: 1.0,
        })
    }

    #[test]
    fn a_hung_statfs_is_stuck_until_it_returns_and_others_go_on() {
        let mut runner = StatfsRunner::new(fake_statfs, Duration::from_millis(100));
        let started = Instant::now();
        assert!(matches!(
            runner.statfs(Path::new("/hang"), true),
            Outcome::Stuck
        ));
        assert!(started.elapsed() < Duration::from_millis(500));
        // Later rounds do not wait for it again...
        let again = Instant::now();
        assert!(matches!(
            runner.statfs(Path::new("/hang"), true),
            Outcome::Stuck
        ));
        assert!(again.elapsed() < Duration::from_millis(50));
        // ...and other mounts are served by a fresh helper.
        assert!(matches!(
            runner.statfs(Path::new("/ok"), true),
            Outcome::Usage(_)
        ));
        // Once the hung call returns, the mount is collected again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&runner.in_flight).contains(Path::new("/hang")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(matches!(
            runner.statfs(Path::new("/hang"), true),
            Outcome::Usage(_)
        ));
    }
}
