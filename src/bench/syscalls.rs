//! `sonde bench syscalls`: nanoseconds the syscalls collector adds to each
//! syscall, beside bpftrace doing the same work (a count per process name and
//! syscall, and a latency histogram per syscall).
//!
//! Each round runs the same getppid loop six times on this thread: with
//! nothing attached, with an empty raw_tp program on sys_enter and sys_exit
//! (the yardstick: what any syscall collector pays before doing anything),
//! with sonde's collector attached (loaded through the same code as
//! `sonde run`, timing one call in `syscall_latency_sample` as by default),
//! with it timing every call (`syscall_latency_sample = 1`), with it
//! counting only (`syscall_latency = false`), and with bpftrace attached.
//! Time is the thread's CPU
//! time, which includes the kernel's time in the syscall and its probes but
//! not the time other processes hold the CPU, so a busy machine blurs the
//! figures less. The figures are medians over the rounds.
//!
//! `sonde bench empty-exit` holds the empty sys_exit program alone while
//! another benchmark runs a workload under it (benches/http_wrk.sh: the
//! floor of the http collector's cost).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::median;
use crate::collect::bpf::{capture_libbpf_log, syscalls};
use crate::doctor::{attach_empty, EmptyPrograms};

/// The bpftrace program doing what the syscalls collector does.
pub const BPFTRACE_SCRIPT: &str = "tracepoint:raw_syscalls:sys_enter { @calls[comm, args->id] = count(); @start[tid] = nsecs; } \
tracepoint:raw_syscalls:sys_exit /@start[tid]/ { @latency[args->id] = hist(nsecs - @start[tid]); delete(@start[tid]); }";

/// CPU nanoseconds per getppid call over `calls` calls.
fn getppid_loop(calls: u64) -> f64 {
    let started = super::thread_cpu_ns();
    for _ in 0..calls {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    (super::thread_cpu_ns() - started) / calls as f64
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

/// `sonde bench empty-exit`: holds an empty program on sys_exit for
/// `seconds`, saying "attached" once it is, so that a benchmark can measure
/// a workload under the floor every capture at syscall exits pays: the
/// kernel's slow syscall-exit path for every task, and a program run per
/// exit (benches/http_wrk.sh). With `sockets`, empty programs on the
/// socket length tracepoints instead: the floor of a capture at socket I/O.
pub fn hold_empty_exit(seconds: u64, sockets: bool) -> anyhow::Result<()> {
    capture_libbpf_log();
    let at = if sockets {
        EmptyPrograms::SocketLengths
    } else {
        EmptyPrograms::SyscallExit
    };
    let links = attach_empty(at).context("cannot attach the empty programs")?;
    println!("attached");
    std::thread::sleep(Duration::from_secs(seconds));
    drop(links);
    Ok(())
}

/// Runs the benchmark and prints a table of rounds and the medians.
pub fn run(calls: u64, rounds: u32, with_bpftrace: bool) -> anyhow::Result<()> {
    capture_libbpf_log();
    println!(
        "getppid x {calls} per measurement, {rounds} rounds; CPU ns per call (thread CPU time)"
    );
    // Run-time statistics add two scheduler-clock reads to every BPF program
    // run, inflating every column but "detached"; a running sonde turns them on.
    if let Ok(state) = crate::collect::bpf::stats::describe_sysctl() {
        println!("kernel.bpf_stats_enabled = {state}; 1 inflates the attached figures");
    }
    println!("ns added per syscall by:");
    println!(
        "round  detached  empty pair  sonde  sonde every call timed  sonde counts only  bpftrace"
    );
    let mut detached_all = Vec::new();
    let (mut empty_added, mut sonde_added, mut counts_added) = (Vec::new(), Vec::new(), Vec::new());
    let (mut every_added, mut bpftrace_added) = (Vec::new(), Vec::new());
    let sample = crate::config::DEFAULT_SYSCALL_LATENCY_SAMPLE;
    let started = Instant::now();
    let forget_after = crate::config::CollectConfig::default().forget_after;
    for round in 1..=rounds {
        let detached = getppid_loop(calls);

        let links =
            attach_empty(EmptyPrograms::SyscallPair).context("cannot attach the empty programs")?;
        let empty = getppid_loop(calls) - detached;
        drop(links);

        let added = |latency: Option<u32>| -> anyhow::Result<f64> {
            let loaded = syscalls::load(latency, forget_after)
                .context("cannot attach the syscalls collector")?;
            let ns = getppid_loop(calls) - detached;
            drop(loaded);
            Ok(ns)
        };
        let sonde = added(Some(sample))?;
        let every = added(Some(1))?;
        let counts = added(None)?;

        let bpftrace = if with_bpftrace {
            let mut child = start_bpftrace()?;
            let ns = getppid_loop(calls);
            let _ = child.kill();
            let _ = child.wait();
            bpftrace_added.push(ns - detached);
            format!("{:8.1}", ns - detached)
        } else {
            "       -".to_string()
        };
        println!(
            "{round:5}  {detached:8.1}  {empty:10.1}  {sonde:5.1}  {every:22.1}  {counts:17.1}  {bpftrace}"
        );
        detached_all.push(detached);
        empty_added.push(empty);
        sonde_added.push(sonde);
        every_added.push(every);
        counts_added.push(counts);
    }
    println!(
        "median {:8.1}  {:10.1}  {:5.1}  {:22.1}  {:17.1}  {:>8}",
        median(&detached_all),
        median(&empty_added),
        median(&sonde_added),
        median(&every_added),
        median(&counts_added),
        optional(&bpftrace_added)
    );
    println!("sonde times one call in {sample} per thread (syscall_latency_sample)");
    if with_bpftrace && median(&bpftrace_added) > 0.0 {
        println!(
            "sonde adds {:.2}x what bpftrace adds per syscall",
            median(&sonde_added) / median(&bpftrace_added)
        );
    }
    for (what, added) in [
        ("sonde", &sonde_added),
        ("sonde timing every call", &every_added),
        ("sonde counting only", &counts_added),
    ] {
        println!(
            "{what}: {:.1} ns per syscall beyond the empty pair ({:.2}x the pair)",
            median(added) - median(&empty_added),
            median(added) / median(&empty_added)
        );
    }
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
