//! Process churn against sonde at its default interval (10 s), in one run
//! (needs root; the sonde binary cargo built):
//!
//!     cargo bench --bench churn -- capacity
//!     cargo bench --bench churn -- rss MINUTES RATE
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md).
//!
//! `capacity`: bursts of N short processes, each with a name of its own, N
//! per collection interval, growing; after each, the inserts each kernel map
//! refused (`sonde_bpf_map_full_total`). A map's half holds one interval's
//! distinct keys, so the largest burst with none refused, times the keys a
//! process makes in the map, is the churn it absorbs.
//!
//! `rss`: RATE new process names a second for MINUTES, then 7 minutes
//! without (past `forget_after`, 5 minutes, and the store closing idle
//! series); sonde's RSS and active series every minute.
//!
//! A churn process forks from this bench, takes its name, makes
//! [`SYSCALLS`] distinct syscalls once each and exits: no exec, no network.

#[path = "../tests/common/mod.rs"]
mod common;

use std::ffi::CString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, get, parse_exposition, ExposedSample, TempDir, SONDE};

const INTERVAL: Duration = Duration::from_secs(10);

/// Cheap syscalls without arguments that matter, one each per process.
const SYSCALLS: [libc::c_long; 10] = [
    libc::SYS_getppid,
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_geteuid,
    libc::SYS_getegid,
    libc::SYS_getpgrp,
    libc::SYS_sched_yield,
    libc::SYS_gettid,
    libc::SYS_getsid,
];

/// sonde with the default config but its own port and data directory.
struct Sonde {
    child: Child,
    url: String,
    _data: TempDir,
}

impl Sonde {
    fn start() -> Sonde {
        let data = TempDir::new("churn-bench");
        let port = free_port();
        let config = data.0.join("sonde.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n",
                data.0.join("store").display()
            ),
        )
        .unwrap();
        let child = Command::new(SONDE)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start sonde");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(get(&format!("{url}/-/ready")), Ok((200, _))) {
            assert!(Instant::now() < deadline, "sonde not ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        Sonde {
            child,
            url,
            _data: data,
        }
    }

    fn metrics(&self) -> Vec<ExposedSample> {
        parse_exposition(&get(&format!("{}/metrics", self.url)).unwrap().1)
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap();
        kib / 1024.0
    }
}

impl Drop for Sonde {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn value(samples: &[ExposedSample], name: &str, label: (&str, &str)) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.label(label.0) == Some(label.1))
        .map(|s| s.value)
        .sum()
}

/// Starts `count` churn processes named `{prefix}{i}` evenly over `span`,
/// reaping as it goes.
fn churn(prefix: &str, count: usize, span: Duration) {
    let names: Vec<CString> = (0..count)
        .map(|i| CString::new(format!("{prefix}{i}")).unwrap())
        .collect();
    let started = Instant::now();
    let mut alive = 0;
    for (i, name) in names.iter().enumerate() {
        let due = started + span.mul_f64(i as f64 / count as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        while alive >= 256 {
            // SAFETY: reaps any of our own children.
            unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
            alive -= 1;
        }
        // SAFETY: the child makes raw syscalls and _exits.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                libc::prctl(libc::PR_SET_NAME, name.as_ptr());
                for nr in SYSCALLS {
                    libc::syscall(nr, 0);
                }
                libc::_exit(0);
            }
        }
        alive += 1;
    }
    for _ in 0..alive {
        // SAFETY: reaps our own children.
        unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
    }
}

const MAPS: [&str; 5] = [
    "syscall_counts",
    "process_counts",
    "switches",
    "runq_latency",
    "tcp_events",
];

fn capacity() {
    let sonde = Sonde::start();
    std::thread::sleep(2 * INTERVAL);
    println!(
        "bursts of N named processes, each over one {}s interval; inserts refused per map",
        INTERVAL.as_secs()
    );
    println!("| N per interval | {} |", MAPS.join(" | "));
    println!("|---:|{}", "---:|".repeat(MAPS.len()));
    let full = |samples: &[ExposedSample]| {
        MAPS.map(|map| value(samples, "sonde_bpf_map_full_total", ("map", map)))
    };
    for (round, count) in [500, 1000, 1200, 1500, 2000, 4000, 8000, 12000]
        .into_iter()
        .enumerate()
    {
        let before = full(&sonde.metrics());
        churn(&format!("b{round}-"), count, INTERVAL);
        std::thread::sleep(2 * INTERVAL);
        let after = full(&sonde.metrics());
        let refused: Vec<String> = after
            .iter()
            .zip(before)
            .map(|(a, b)| format!("{:.0}", a - b))
            .collect();
        println!("| {count} | {} |", refused.join(" | "));
    }
}

fn rss(minutes: u64, rate: usize) {
    let sonde = Sonde::start();
    std::thread::sleep(2 * INTERVAL);
    println!("{rate} new process names a second for {minutes} min, then 7 min without");
    println!("| minute | churning | RSS MiB | active series in the store | series in /metrics |");
    println!("|---:|---|---:|---:|---:|");
    let report = |minute: u64, churning: bool| {
        let samples = sonde.metrics();
        let active = samples
            .iter()
            .find(|s| s.name == "sonde_store_active_series")
            .map_or(0.0, |s| s.value);
        println!(
            "| {minute} | {} | {:.1} | {active:.0} | {} |",
            if churning { "yes" } else { "no" },
            sonde.rss_mib(),
            samples.len()
        );
    };
    report(0, false);
    for minute in 1..=minutes {
        churn(&format!("r{minute}-"), rate * 60, Duration::from_secs(60));
        report(minute, true);
    }
    for minute in minutes + 1..=minutes + 7 {
        std::thread::sleep(Duration::from_secs(60));
        report(minute, false);
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("capacity") => capacity(),
        Some("rss") => {
            let minutes = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(60);
            let rate = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(50);
            rss(minutes, rate);
        }
        _ => eprintln!("usage: cargo bench --bench churn -- capacity | rss MINUTES RATE"),
    }
}
