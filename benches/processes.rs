//! What the per-process CPU and memory metrics cost, on this machine (needs
//! root; the sonde binary cargo built):
//!
//!     cargo bench --bench processes -- switches [ROUND_TRIPS [ROUNDS [BASELINE_SONDE]]]
//!     cargo bench --bench processes -- walk [SLEEPERS]
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md).
//!
//! `switches`: two processes pinned to CPU 0 pass a byte back and forth over
//! two pipes, ROUND_TRIPS times (two context switches and two wakeups
//! each); the CPU time they take without sonde and with sonde running only
//! its sched collector (and, given BASELINE_SONDE, another sonde binary the
//! same way: a build without the CPU accounting), in ROUNDS alternating rounds;
//! medians, the ns each configuration adds per switch, and the kernel's own
//! ns per run of the switch and wakeup programs and of the iterator that
//! moves counts (its run-time statistics are on, as by default, and their
//! clock reads are in both figures).
//!
//! `walk`: the CPU time of the processes collector's /proc walk, median of
//! 20, over the machine's processes and again with SLEEPERS (default 2,000)
//! more forked from this bench, asleep.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Sonde, TempDir, SONDE};
use sonde::collect::processes::Processes;

/// Every BPF collector off but sched.
const SCHED_ONLY: &str =
    "[collect.bpf]\nsyscalls = false\nblock = false\nnet = false\nprocess = false\n";

/// The sched programs whose ns per run are shown (the iterator runs once
/// per thread each round).
const PROGRAMS: [&str; 3] = ["btf_switch", "btf_wakeup", "flush_switches"];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    match args.first().map(String::as_str) {
        Some("switches") => switches(
            number(1, 200_000),
            number(2, 5),
            args.get(3).map(PathBuf::from),
        ),
        Some("walk") => walk(number(1, 2_000)),
        _ => eprintln!(
            "usage: processes switches [ROUND_TRIPS [ROUNDS [BASELINE_SONDE]]] | walk [SLEEPERS]"
        ),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn switches(round_trips: usize, rounds: usize, baseline: Option<PathBuf>) {
    let mut configs: Vec<(String, Option<PathBuf>)> = vec![
        ("no sonde".into(), None),
        ("sonde, sched only".into(), Some(PathBuf::from(SONDE))),
    ];
    if let Some(baseline) = baseline {
        configs.push((
            format!("{}, sched only", baseline.display()),
            Some(baseline),
        ));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut per_run: Vec<[Vec<f64>; 3]> = vec![Default::default(); configs.len()];
    for _ in 0..rounds {
        for (i, (_, program)) in configs.iter().enumerate() {
            let sonde = program
                .as_deref()
                .map(|p| Sonde::start_program(p, TempDir::new("switch-bench"), SCHED_ONLY, &[]));
            if sonde.is_some() {
                std::thread::sleep(Duration::from_secs(1));
            }
            times[i].push(ping_pong(round_trips));
            if let Some(sonde) = sonde {
                sonde.wait_rounds(1);
                let samples = sonde.metrics();
                for (program, ns) in PROGRAMS.iter().zip(&mut per_run[i]) {
                    let of = |name: &str| {
                        samples
                            .iter()
                            .find(|s| s.name == name && s.label("program") == Some(program))
                            .map_or(f64::NAN, |s| s.value)
                    };
                    ns.push(
                        of("sonde_bpf_program_run_seconds_total") * 1e9
                            / of("sonde_bpf_program_runs_total"),
                    );
                }
                sonde.stop();
            }
        }
    }
    let switches = 2.0 * round_trips as f64;
    let bare = median(times[0].clone());
    println!("{round_trips} round trips over pipes on CPU 0, medians of {rounds}:");
    for (((name, _), times), per_run) in configs.iter().zip(times).zip(per_run) {
        let took = median(times);
        print!(
            "{name:<40} {took:8.3} CPU s  {:7.1} ns/switch  +{:6.1} ns/switch",
            took * 1e9 / switches,
            (took - bare) * 1e9 / switches
        );
        for (program, ns) in PROGRAMS.iter().zip(per_run) {
            if !ns.is_empty() {
                print!("  {program} {:5.1} ns/run", median(ns));
            }
        }
        println!();
    }
}

/// User and system seconds of a rusage.
fn seconds(usage: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU seconds (user and system, both processes) two processes pinned to
/// CPU 0 take to pass a byte back and forth `round_trips` times. CPU time,
/// not wall time: other work on the machine delays the two but does not
/// add to what they spend, and what BPF programs spend on a switch is
/// charged to the task switched out.
fn ping_pong(round_trips: usize) -> f64 {
    let (mut there, mut back) = ([0; 2], [0; 2]);
    // SAFETY: plain syscalls on this process; the child only reads, writes
    // and _exits.
    unsafe {
        let mut cpu0: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut cpu0);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&cpu0), &cpu0),
            0
        );
        assert_eq!(libc::pipe(there.as_mut_ptr()), 0);
        assert_eq!(libc::pipe(back.as_mut_ptr()), 0);
        let byte = [0u8; 1];
        let mut got = [0u8; 1];
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            for _ in 0..round_trips {
                libc::read(there[0], got.as_mut_ptr().cast(), 1);
                libc::write(back[1], byte.as_ptr().cast(), 1);
            }
            libc::_exit(0);
        }
        let before = sonde::bench::thread_cpu_ns() / 1e9;
        for _ in 0..round_trips {
            libc::write(there[1], byte.as_ptr().cast(), 1);
            libc::read(back[0], got.as_mut_ptr().cast(), 1);
        }
        let mine = (sonde::bench::thread_cpu_ns() / 1e9) - before;
        let mut usage: libc::rusage = std::mem::zeroed();
        let mut status = 0;
        libc::wait4(pid, &mut status, 0, &mut usage);
        for fd in there.into_iter().chain(back) {
            libc::close(fd);
        }
        mine + seconds(&usage)
    }
}

fn walk(sleepers: usize) {
    let measure = |what: &str| {
        let mut walker = Processes::new();
        let processes = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count();
        let took: Vec<f64> = (0..20)
            .map(|_| {
                let started = sonde::bench::thread_cpu_ns() / 1e9;
                walker.resident().unwrap();
                (sonde::bench::thread_cpu_ns() / 1e9) - started
            })
            .collect();
        let took = median(took);
        println!(
            "{what:<28} {processes:6} processes  {:8.2} CPU ms a round  {:5.1} us a process",
            took * 1e3,
            took * 1e6 / processes as f64
        );
    };
    measure("this machine");
    let children: Vec<libc::pid_t> = (0..sleepers)
        .map(|_| {
            // SAFETY: the child only sleeps until killed.
            unsafe {
                let pid = libc::fork();
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    loop {
                        libc::pause();
                    }
                }
                pid
            }
        })
        .collect();
    measure(&format!("with {sleepers} sleepers"));
    for pid in children {
        // SAFETY: our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}
