//! `sonde bench syscalls`: nanoseconds the syscalls collector adds to each
//! syscall, beside bpftrace doing the same work (a count per process name and
//! syscall, and a latency histogram per syscall).
//!
//! Each round runs the same getppid loop four times on this thread: with
//! nothing attached, with an empty raw_tp program on sys_enter and sys_exit
//! (the yardstick: what any syscall collector pays before doing anything),
//! with sonde's collector attached (loaded through the same code as
//! `sonde run`), and with bpftrace attached. Time is the thread's CPU
//! time, which includes the kernel's time in the syscall and its probes but
//! not the time other processes hold the CPU, so a busy machine blurs the
//! figures less. The figures are medians over the rounds.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::median;
use crate::collect::bpf::{capture_libbpf_log, syscalls};
use crate::doctor::attach_empty_syscall_pair;

/// The bpftrace program doing what the syscalls collector does.
pub const BPFTRACE_SCRIPT: &str = "tracepoint:raw_syscalls:sys_enter { @calls[comm, args->id] = count(); @start[tid] = nsecs; } \
tracepoint:raw_syscalls:sys_exit /@start[tid]/ { @latency[args->id] = hist(nsecs - @start[tid]); delete(@start[tid]); }";

/// Thread CPU time in nanoseconds.
fn thread_cpu_ns() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 * 1e9 + now.tv_nsec as f64
}

/// CPU nanoseconds per getppid call over `calls` calls.
fn getppid_loop(calls: u64) -> f64 {
    let started = thread_cpu_ns();
    for _ in 0..calls {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    (thread_cpu_ns() - started) / calls as f64
}

/// Starts bpftrace with [`BPFTRACE_SCRIPT`] and returns once its probes are
/// attached (it says "Attaching N probes..."); its later output is drained.
fn start_bpftrace() -> anyhow::Result<Child> {
    let mut child = Command::new("bpftrace")
        .args(["-e", BPFTRACE_SCRIPT])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start bpftrace (Debian package bpftrace)")?;
    let stdout = child.stdout.take().context("bpftrace has no stdout")?;
    let (attached_tx, attached_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("Attaching") {
                let _ = attached_tx.send(());
            }
        }
    });
    if attached_rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("bpftrace did not attach within 120 s");
    }
    // "Attaching" is printed just before the links are made.
    std::thread::sleep(Duration::from_millis(500));
    Ok(child)
}

/// Runs the benchmark and prints a table of rounds and the medians.
pub fn run(calls: u64, rounds: u32, with_bpftrace: bool) -> anyhow::Result<()> {
    capture_libbpf_log();
    println!(
        "getppid x {calls} per measurement, {rounds} rounds; CPU ns per call (thread CPU time)"
    );
    println!("round  detached  sonde   bpftrace  empty pair added  sonde added  bpftrace added");
    let (mut sonde_added, mut bpftrace_added) = (Vec::new(), Vec::new());
    let mut empty_added = Vec::new();
    let (mut detached_all, mut sonde_all, mut bpftrace_all) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for round in 1..=rounds {
        let detached = getppid_loop(calls);

        let links = attach_empty_syscall_pair().context("cannot attach the empty programs")?;
        let empty = getppid_loop(calls) - detached;
        drop(links);
        empty_added.push(empty);

        let loaded = syscalls::load().context("cannot attach the syscalls collector")?;
        let sonde = getppid_loop(calls);
        drop(loaded);

        let bpftrace = if with_bpftrace {
            let mut child = start_bpftrace()?;
            let ns = getppid_loop(calls);
            let _ = child.kill();
            let _ = child.wait();
            Some(ns)
        } else {
            None
        };

        sonde_added.push(sonde - detached);
        detached_all.push(detached);
        sonde_all.push(sonde);
        let bpftrace_text = match bpftrace {
            Some(ns) => {
                bpftrace_added.push(ns - detached);
                bpftrace_all.push(ns);
                (format!("{ns:8.1}"), format!("{:14.1}", ns - detached))
            }
            None => ("       -".to_string(), "             -".to_string()),
        };
        println!(
            "{round:5}  {detached:8.1}  {sonde:6.1}  {}  {empty:16.1}  {:11.1}  {}",
            bpftrace_text.0,
            sonde - detached,
            bpftrace_text.1
        );
    }
    println!(
        "median {:8.1}  {:6.1}  {:>8}  {:16.1}  {:11.1}  {:>14}",
        median(&detached_all),
        median(&sonde_all),
        optional(&bpftrace_all),
        median(&empty_added),
        median(&sonde_added),
        optional(&bpftrace_added)
    );
    if with_bpftrace && median(&bpftrace_added) > 0.0 {
        println!(
            "sonde adds {:.2}x what bpftrace adds per syscall",
            median(&sonde_added) / median(&bpftrace_added)
        );
    }
    println!(
        "sonde's work beyond the empty pair: {:.1} ns per syscall",
        median(&sonde_added) - median(&empty_added)
    );
    println!("took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn optional(values: &[f64]) -> String {
    if values.is_empty() {
        "-".to_string()
    } else {
        format!("{:.1}", median(values))
    }
}
