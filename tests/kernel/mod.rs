//! What the kernel collectors' tests share: whether a collector attached (or
//! why the test skips), reading values from /metrics and the query API,
//! bounded waits, programs copied under names of their own (so a test's comm
//! is its own on a shared machine), test cgroups that clean up after
//! themselves and files for O_DIRECT I/O.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{bpf_required, ExposedSample, Sonde, TempDir};

/// Config that lifts the cardinality budget: on a busy machine a test's
/// process arrives after hundreds of others, and a full metric folds a
/// newcomer into comm="other".
pub const NO_BUDGET: &str = "max_series_per_metric = 1000000\n";

/// Whether BPF collector `name` attached in this sonde; when it did not, says
/// why and tells the caller to skip (or fails, when BPF is required).
pub fn attached(sonde: &Sonde, name: &str) -> bool {
    let log = sonde.log_text();
    let marker = format!("bpf collector {name}:");
    let Some(line) = log.lines().find(|line| line.contains(&marker)) else {
        panic!("sonde did not report collector {name}:\n{log}");
    };
    if line.contains(&format!("{name}: on")) {
        return true;
    }
    assert!(!bpf_required(), "SONDE_REQUIRE_BPF=1 but: {line}");
    eprintln!("skipping: the {name} collector cannot load here: {line}");
    false
}

/// The sum of every sample of `name` whose labels include `labels`.
pub fn value(samples: &[ExposedSample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .sum()
}

/// Polls /metrics (for at most 15 s) until `done` holds; the last samples.
pub fn wait_for(sonde: &Sonde, done: impl Fn(&[ExposedSample]) -> bool) -> Vec<ExposedSample> {
    poll(|| sonde.metrics(), |samples| done(samples))
}

/// Reads (for at most 15 s) until `done` holds; the last reading.
pub fn poll<T>(read: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = read();
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The value of a PromQL instant query through sonde's query API, from its
/// first sample; None when it answers none.
pub fn query_value(sonde: &Sonde, promql: &str) -> Option<f64> {
    let encoded: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let body = sonde.get_ok(&format!("/api/v1/query?query={encoded}"));
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// Copies an executable with `cp`, in a child process: a copy written by
/// this (multithreaded) test process would leave its write descriptor in any
/// child another test thread forks meanwhile, until that child execs, and
/// running the copy then fails with "Text file busy" (ETXTBSY).
pub fn copy_executable(program: &str, to: &Path) {
    let status = Command::new("cp")
        .arg(program)
        .arg(to)
        .status()
        .unwrap_or_else(|e| panic!("cannot run cp to copy {program}: {e}"));
    assert!(
        status.success(),
        "cannot copy {program} to {}",
        to.display()
    );
}

/// A system program copied under a name unique to this test run, so the
/// comm the kernel reports (at most 15 bytes) is the test's own.
pub struct NamedProgram {
    pub path: PathBuf,
    pub comm: String,
    _dir: TempDir,
}

impl NamedProgram {
    /// Copies `program` (e.g. "/bin/true") as `<prefix><pid>`.
    pub fn new(program: &str, prefix: &str) -> NamedProgram {
        let dir = TempDir::new("prog");
        let comm: String = format!("{prefix}{}", std::process::id())
            .chars()
            .take(15)
            .collect();
        let path = dir.0.join(&comm);
        copy_executable(program, &path);
        NamedProgram {
            path,
            comm,
            _dir: dir,
        }
    }

    pub fn command(&self) -> Command {
        Command::new(&self.path)
    }
}

/// A cgroup made for a test (any hierarchy), removed on drop once its
/// processes have exited; parent directories it created go with it.
pub struct TestCgroup {
    pub path: PathBuf,
    created: Vec<PathBuf>,
}

impl TestCgroup {
    /// Creates `relative` (e.g. "system.slice/docker-<id>.scope") under `root`.
    pub fn new(root: &Path, relative: &str) -> TestCgroup {
        let mut created = Vec::new();
        let mut path = root.to_path_buf();
        for part in relative.split('/') {
            path.push(part);
            if !path.exists() {
                std::fs::create_dir(&path)
                    .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", path.display()));
                created.push(path.clone());
            }
        }
        TestCgroup { path, created }
    }

    /// A shell command line that moves itself into this cgroup, then execs
    /// `program` (so the program starts inside it).
    pub fn spawn_inside(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
            .arg(&self.path)
            .arg(program)
            .args(args);
        command
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A cgroup is removable once empty; its exited processes may take a
        // moment to leave it. Parents another test may share are tried once.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for dir in self.created.iter().rev().filter(|d| **d != self.path) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The cgroup v2 hierarchy's mount point, as sonde finds it.
pub fn cgroup_v2_root() -> Option<PathBuf> {
    sonde::collect::cgroup::v2_root()
}

/// A file for O_DIRECT I/O: in the build's scratch directory, on a block
/// device (tmpfs under /tmp may not do O_DIRECT), laid out through the page
/// cache first so direct writes overwrite allocated blocks and charge
/// nothing else to the writer.
pub struct DirectFile {
    pub path: PathBuf,
    _dir: TempDir,
}

impl DirectFile {
    pub fn new(tag: &str, bytes: u64) -> DirectFile {
        let dir = TempDir(
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("sonde-{tag}-{}", std::process::id())),
        );
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("data");
        std::fs::write(&path, vec![1u8; bytes as usize]).unwrap();
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        DirectFile { path, _dir: dir }
    }

    /// Has `dd` write, then read, `count` blocks of `block` bytes with
    /// O_DIRECT.
    pub fn write_then_read(&self, dd: &NamedProgram, block: u64, count: u64) {
        let (of, iff) = (
            format!("of={}", self.path.display()),
            format!("if={}", self.path.display()),
        );
        let (bs, count) = (format!("bs={block}"), format!("count={count}"));
        for args in [
            vec![
                "if=/dev/zero",
                &of,
                &bs,
                &count,
                "oflag=direct",
                "conv=notrunc",
            ],
            vec![&iff, "of=/dev/null", &bs, &count, "iflag=direct"],
        ] {
            let out = dd.command().args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A memory-limited cgroup: cgroup v2's memory.max where the memory
/// controller is on v2, else v1's memory.limit_in_bytes.
pub fn memory_limited_cgroup(limit: u64) -> Option<TestCgroup> {
    let name = format!("sonde-oom-test-{}", std::process::id());
    if let Some(root) = cgroup_v2_root() {
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            let subtree = root.join("cgroup.subtree_control");
            let _ = std::fs::write(&subtree, "+memory");
            let cgroup = TestCgroup::new(&root, &name);
            if std::fs::write(cgroup.path.join("memory.max"), limit.to_string()).is_ok() {
                let _ = std::fs::write(cgroup.path.join("memory.swap.max"), "0");
                return Some(cgroup);
            }
        }
    }
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.limit_in_bytes").exists() {
        let cgroup = TestCgroup::new(v1, &name);
        std::fs::write(cgroup.path.join("memory.limit_in_bytes"), limit.to_string()).ok()?;
        return Some(cgroup);
    }
    None
}

/// Forks a child named `comm` that runs `body` and exits; returns its pid.
pub fn fork_named(comm: &str, body: impl FnOnce()) -> libc::pid_t {
    let name = std::ffi::CString::new(comm).unwrap();
    // SAFETY: the child only makes raw syscalls (`body` too) and _exits,
    // which is safe after fork in a multi-threaded process.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
            body();
            libc::_exit(0);
        }
        pid
    }
}
