//! CPU cost of one round of the containers collector with 0, 10 and 100
//! Podman containers running (each a busybox `sleep`), beside the machine's
//! own cgroups.
//!
//!     cargo bench --bench containers [-- ROUNDS]     # default 200
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md).
//!
//! The collector runs ROUNDS times in this process for each count; the
//! figure is this thread's CPU time per round (clock_gettime
//! CLOCK_THREAD_CPUTIME_ID), with the series it produced. cAdvisor, the
//! peer, has no Debian package to run beside it.

#[path = "../tests/common/mod.rs"]
mod common;

use common::podman::{Container, Podman};
use sonde::collect::containers::{Containers, DEFAULT_MAX_CGROUPS};
use sonde::collect::Collector;

/// (CPU µs per round, series per round) over `rounds` rounds.
fn measure(rounds: u32) -> (f64, usize) {
    let mut collector = Containers::new(DEFAULT_MAX_CGROUPS);
    let mut families = Vec::new();
    collector.collect(&mut families).expect("collect failed"); // warm the caches
    let series = families.iter().map(|f| f.series.len()).sum();
    let started = sonde::bench::thread_cpu_ns();
    for _ in 0..rounds {
        families.clear();
        collector.collect(&mut families).expect("collect failed");
    }
    (
        (sonde::bench::thread_cpu_ns() - started) / 1e3 / f64::from(rounds),
        series,
    )
}

fn main() {
    let rounds: u32 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(200);
    let podman = Podman::new(&[]).expect("podman is needed: make test-deps");
    let mut running: Vec<Container> = Vec::new();
    println!(
        "{:>10} {:>14} {:>8}",
        "containers", "cpu_us/round", "series"
    );
    for count in [0, 10, 100] {
        while running.len() < count {
            let name = format!("sonde-bench-{}", running.len());
            running.push(Container::start(&podman, &name, &[], &["sleep", "3600"]));
        }
        let (cpu_us, series) = measure(rounds);
        println!("{count:>10} {cpu_us:>14.0} {series:>8}");
    }
}
