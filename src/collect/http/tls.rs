//! HTTPS: which files the http collector's TLS uprobes are attached to
//! (libssl files, and Go executables: [`super::go_tls`]), and attaching
//! them (`bpf/http.bpf.c` explains what the probes do with the plaintext).
//!
//! A uprobe is set on a file (its inode), so one attachment covers every
//! process that maps that file, including processes started later. So
//! sonde attaches once per distinct file: at start, to the libssl files in
//! the usual library directories, and those mapped by running processes
//! and their executables (a container's own files are other inodes,
//! reached through `/proc/PID/root`); later, to those of processes the BPF
//! program reports (MAPPED: an mmap that made a file executable, or an
//! exec), reading only those processes' maps, never all of /proc again.
//!
//! Covered: OpenSSL linked dynamically (`libssl.so.3`, and `libssl.so.1.1`
//! whose four functions are the same), and Go's crypto/tls (Go 1.18+).
//! Not: TLS linked statically into a C executable, BoringSSL/GnuTLS/NSS,
//! rustls, HTTP/2.
//!
//! Invariants:
//! - A file is attached at most once ([`TlsFiles::seen`] holds its device
//!   and inode whether attaching worked or not: a file the kernel refused
//!   is not retried every round).
//! - [`TlsFiles::failures`] keeps the last reason per file for `sonde
//!   doctor` and the log; the collector runs on without TLS for that file.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use libbpf_rs::{Link, ProgramMut, UprobeMultiOpts, UprobeOpts};

use super::elf::Elf;
use super::go_tls::{self, Point};
use crate::collect::bpf::with_libbpf_log;

/// The attach cookie of each function: SSL_OP_* in bpf/http.bpf.c.
const WRITE: u64 = 1;
const EX: u64 = 2;
const FUNCTIONS: [(&str, u64); 4] = [
    ("SSL_read", 0),
    ("SSL_write", WRITE),
    ("SSL_read_ex", EX),
    ("SSL_write_ex", WRITE | EX),
];
/// OpenSSL before 1.1.1 has no `_ex` forms: the first two alone.
const WITHOUT_EX: usize = 2;

/// Where libssl lives on the host, searched at start even when no process
/// maps it yet, so that the first TLS process to start is seen from its
/// first call.
const LIBRARY_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// How the probes attach: uprobe.multi links (one per file, no
/// CAP_SYS_ADMIN), or perf-event uprobes (one per function and file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Multi,
    Perf,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Multi => "uprobe.multi",
            Hook::Perf => "uprobe",
        }
    }

    /// The programs of this hook in bpf/http.bpf.c: OpenSSL's entry and
    /// return, and Go's (every point).
    pub fn programs(self) -> [&'static str; 3] {
        match self {
            Hook::Multi => ["ssl_enter_multi", "ssl_return_multi", "go_tls_multi"],
            Hook::Perf => ["ssl_enter_perf", "ssl_return_perf", "go_tls_perf"],
        }
    }
}

/// Whether a mapped file's name is libssl's (`libssl.so.3`, `libssl.so.1.1`).
pub fn is_libssl(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("libssl.so"))
}

/// The libssl files in the text of a /proc/PID/maps.
pub fn libssl_in_maps(maps: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(PathBuf::from)
        .filter(|path| path.is_absolute() && is_libssl(path))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Attaches the entry and return programs to libssl `file` as `hook` does:
/// the four functions, or the two where the file has no `_ex` forms. The
/// functions' offsets are read here, so the cookie of each is known.
fn attach_libssl([enter, ret, _]: Programs, hook: Hook, file: &Path) -> anyhow::Result<Vec<Link>> {
    let elf = Elf::open(file)?.with_context(|| format!("{} is no ELF file", file.display()))?;
    let mut points = Vec::new();
    for (i, (name, op)) in FUNCTIONS.iter().enumerate() {
        match elf.exported_function(name)? {
            Some(offset) => points.push((offset, *op)),
            None if i >= WITHOUT_EX => {} // OpenSSL before 1.1.1
            None => bail!("{} exports no {name}: not OpenSSL's libssl", file.display()),
        }
    }
    let mut links = attach_points(enter, hook, false, file, &points)?;
    links.extend(attach_points(ret, hook, true, file, &points)?);
    Ok(links)
}

/// The programs of a hook, as [`Hook::programs`] names them.
pub type Programs<'a, 'p> = [&'a ProgramMut<'p>; 3];

/// Attaches `program` to each of `points` (file offset, cookie) of `file`,
/// at their returns when `retprobe`.
fn attach_points(
    program: &ProgramMut,
    hook: Hook,
    retprobe: bool,
    file: &Path,
    points: &[Point],
) -> anyhow::Result<Vec<Link>> {
    match hook {
        Hook::Multi => {
            let opts = UprobeMultiOpts {
                offsets: points.iter().map(|(offset, _)| *offset).collect(),
                cookies: points.iter().map(|(_, op)| *op).collect(),
                retprobe,
                ..Default::default()
            };
            let link =
                with_libbpf_log(|| program.attach_uprobe_multi_with_opts(-1, file, "", opts))
                    .with_context(|| format!("uprobe.multi on {}", file.display()))?;
            Ok(vec![link])
        }
        Hook::Perf => points
            .iter()
            .map(|&(offset, op)| {
                let opts = UprobeOpts {
                    cookie: op,
                    retprobe,
                    ..Default::default()
                };
                with_libbpf_log(|| program.attach_uprobe_with_opts(-1, file, offset, opts))
                    .with_context(|| format!("uprobe at {offset:#x} in {}", file.display()))
            })
            .collect(),
    }
}

/// The files attached so far (libssl files and Go executables) and why
/// others could not be.
#[derive(Default)]
pub struct TlsFiles {
    /// (device, inode) of every file tried, Go or not.
    seen: HashSet<(u64, u64)>,
    /// Each attached file, as first reached.
    pub attached: Vec<PathBuf>,
    /// Each file that could not be attached, and why.
    pub failures: Vec<(PathBuf, String)>,
    /// How many of `attached` are Go executables.
    pub go_programs: usize,
    links: Vec<Link>,
}

impl TlsFiles {
    /// The files to try at start: the host's library directories, then what
    /// every running process maps (through its root, so a container's
    /// files are reached).
    pub fn at_start() -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = LIBRARY_DIRS
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| is_libssl(path))
            .collect();
        let tgids = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok());
        for tgid in tgids {
            files.extend(Self::mapped_by(tgid));
        }
        files
    }

    /// The libssl files process `tgid` maps and its executable (which may
    /// be Go's), as paths through its root.
    pub fn mapped_by(tgid: u32) -> Vec<PathBuf> {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{tgid}/maps")) else {
            return Vec::new(); // gone, or not ours to read
        };
        let executable = std::fs::read_link(format!("/proc/{tgid}/exe")).ok();
        libssl_in_maps(&maps)
            .into_iter()
            .chain(executable)
            .map(|path| {
                let inside = path.strip_prefix("/").unwrap_or(&path);
                Path::new(&format!("/proc/{tgid}/root")).join(inside)
            })
            .collect()
    }

    /// Attaches to each of `files` not tried yet; returns how many were.
    pub fn attach(&mut self, programs: Programs, hook: Hook, files: Vec<PathBuf>) -> usize {
        let mut attached = 0;
        for file in files {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue; // gone between listing and now
            };
            if !self.seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            let go = !is_libssl(&file);
            let attached_file = if go {
                go_tls::probe_points(&file).and_then(|points| {
                    points
                        .map(|points| attach_points(programs[2], hook, false, &file, &points))
                        .transpose()
                })
            } else {
                attach_libssl(programs, hook, &file).map(Some)
            };
            match attached_file {
                Ok(None) => {} // neither libssl nor a Go program with TLS
                Ok(Some(links)) => {
                    tracing::info!("http: TLS probes on {}", file.display());
                    self.links.extend(links);
                    self.attached.push(file);
                    self.go_programs += usize::from(go);
                    attached += 1;
                }
                Err(err) => {
                    tracing::warn!("http: no TLS probes on {}: {err:#}", file.display());
                    self.failures.push((file, format!("{err:#}")));
                }
            }
        }
        attached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libssl_in_maps() {
        let maps = "\
7f0000000000-7f0000001000 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000001000-7f0000002000 r-xp 00001000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000002000-7f0000003000 r-xp 00001000 08:01 124 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f0000003000-7f0000004000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
7f0000004000-7f0000005000 r-xp 00001000 08:01 125 /opt/app/lib/libssl.so.1.1 (deleted)
";
        assert_eq!(
            libssl_in_maps(maps),
            [
                PathBuf::from("/opt/app/lib/libssl.so.1.1"),
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
            ]
        );
        assert!(!is_libssl(Path::new("/usr/lib/libssl3.so")));
        assert!(libssl_in_maps("garbage\n\n").is_empty());
    }
}
