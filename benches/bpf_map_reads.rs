//! Time to read a whole BPF map once, as a collector does each round: a walk
//! (next key + lookup per entry) beside BPF_MAP_LOOKUP_BATCH, and draining it
//! (BPF_MAP_LOOKUP_AND_DELETE_BATCH, what the collectors do with a settled
//! half of a double-buffered map), in one run, on maps shaped like the
//! collectors' (needs root or CAP_BPF).
//!
//!     cargo bench --bench bpf_map_reads [-- ROUNDS]     # default 50
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md). Each
//! figure is the median of ROUNDS reads.
//!
//! Then the same on this machine's live maps: two sondes side by side, one
//! reading in batches, one walking (`SONDE_BPF_REFUSE=batch`), each BPF
//! collector's round time (`sonde_collector_duration_seconds`, which
//! includes turning entries into labelled series) over ROUNDS rounds.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Instant;

use libbpf_rs::MapType;
use sonde::collect::bpf::maps::{drain_map, filled_map, read_map_with, Read};

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
    println!("| map | entries | walk ms | batch ms | walk / batch | drain ms |");
    println!("|---|---:|---:|---:|---:|---:|");
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
        // Arrays are never drained (nothing to delete); a hash is refilled
        // before each drain, outside the time.
        let drain = (map_type != MapType::PercpuArray).then(|| {
            let mut times: Vec<f64> = (0..rounds)
                .map(|_| {
                    let full = filled_map(map_type, key, value, max, filled).expect("refilling");
                    let mut drained = 0;
                    let started = Instant::now();
                    drain_map(&full, words, |_, _| drained += 1).expect("draining the map");
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    assert_eq!(drained, filled as usize);
                    ms
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        });
        let drain = drain.map_or("-".to_string(), |ms| format!("{ms:.2}"));
        println!(
            "| {what} | {filled} | {walk:.2} | {batch:.2} | {:.1} | {drain} |",
            walk / batch
        );
    }

    live(rounds);
}

/// Median round time per BPF collector of a batching and a walking sonde.
fn live(rounds: u32) {
    const COLLECTORS: [&str; 5] = ["syscalls", "block", "net", "process", "sched"];
    let batched = common::Sonde::start("");
    let walking = common::Sonde::start_with_env(
        common::TempDir::new("data"),
        "",
        &[("SONDE_BPF_REFUSE", "batch")],
    );
    let mut times: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
    for _ in 0..rounds {
        batched.wait_rounds(1);
        for (way, sonde) in [("batch", &batched), ("walk", &walking)] {
            for sample in sonde.metrics() {
                let collector = sample.label("collector").unwrap_or("");
                if sample.name == "sonde_collector_duration_seconds" {
                    if let Some(name) = COLLECTORS.iter().find(|c| **c == collector) {
                        times
                            .entry((name, way))
                            .or_default()
                            .push(sample.value * 1e3);
                    }
                }
            }
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!("\nlive maps, {rounds} rounds: median ms per collector round");
    println!("| collector | walk ms | batch ms |");
    println!("|---|---:|---:|");
    for name in COLLECTORS {
        let walk = median(times.entry((name, "walk")).or_default());
        let batch = median(times.entry((name, "batch")).or_default());
        println!("| {name} | {walk:.2} | {batch:.2} |");
    }
}
