//! Time to read a whole BPF map once, as a collector does each round: a walk
//! (next key + lookup per entry) beside BPF_MAP_LOOKUP_BATCH, in one run, on
//! maps shaped like the collectors' (needs root or CAP_BPF).
//!
//!     cargo bench --bench bpf_map_reads [-- ROUNDS]     # default 50
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md). Each
//! figure is the median of ROUNDS reads.

use std::time::Instant;

use libbpf_rs::MapType;
use sonde::collect::bpf::maps::{filled_map, read_map_with, Read};

/// (what it stands for, type, key bytes, value bytes, max entries, filled)
const SHAPES: [(&str, MapType, u32, u32, u32, u32); 4] = [
    (
        "per-process counters (net_bytes)",
        MapType::PercpuHash,
        32,
        8,
        8192,
        4000,
    ),
    (
        "per-process counters (syscall_counts)",
        MapType::Hash,
        32,
        8,
        16384,
        4000,
    ),
    (
        "histograms (block_latency)",
        MapType::PercpuHash,
        8,
        216,
        1024,
        200,
    ),
    (
        "syscall_latency array",
        MapType::PercpuArray,
        4,
        216,
        512,
        512,
    ),
];

fn median_ms(rounds: u32, mut read: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            read();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let rounds: u32 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(50)
        .max(1);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    println!("{rounds} reads each, {cpus} CPUs; median ms per whole-map read");
    println!("| map | entries | walk ms | batch ms | walk / batch |");
    println!("|---|---:|---:|---:|---:|");
    for (what, map_type, key, value, max, filled) in SHAPES {
        let map = filled_map(map_type, key, value, max, filled)
            .unwrap_or_else(|err| panic!("cannot make a BPF map (root or CAP_BPF?): {err:#}"));
        let words = (value / 8) as usize;
        let read = |how| {
            let entries = read_map_with(&map, words, how).expect("reading the map");
            assert_eq!(entries.len(), filled as usize);
        };
        let walk = median_ms(rounds, || read(Read::Walk));
        let batch = median_ms(rounds, || read(Read::Batched));
        println!(
            "| {what} | {filled} | {walk:.2} | {batch:.2} | {:.1} |",
            walk / batch
        );
    }
}
