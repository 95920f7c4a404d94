//! CPU of one round of reading a custom program's map (`[programs]`):
//! every key read from the kernel, its labels decoded (or found in the
//! decoder cache), label sets summed and turned into a counter family, for
//! maps of 1,000 and 10,000 keys (needs root or CAP_BPF).
//!
//!     cargo bench --bench programs [-- ROUNDS]     # default 50
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md). The map
//! is a hash of 24-byte keys (a 16-byte field decoded with `hex`, a u64
//! decoded with `uint` then `syscall`) and u64 values, every key distinct.
//! Figures are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID): the first
//! round, which decodes every key, and the median of ROUNDS rounds after
//! it, which find them in the cache; and the growth of the process's RSS
//! over them (the cache plus the round's scratch).

use libbpf_rs::MapType;
use sonde::collect::bpf::maps::filled_map;
use sonde::collect::programs::config::Label;
use sonde::collect::programs::decode::Decoder;
use sonde::collect::programs::load::MetricMap;
use sonde::collect::programs::read::{self, Errors, MetricState};
use sonde::model::Family;

const LABELS: &str = "
- {name: id, size: 16, decoders: [{name: hex}]}
- {name: syscall, size: 8, decoders: [{name: uint}, {name: syscall}]}
";

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One round: the map read, decoded and turned into a family.
fn round(
    map: &MetricMap,
    labels: &[Label],
    decoders: &[Vec<Decoder>],
    state: &mut MetricState,
) -> usize {
    let mut errors = Errors::new();
    let sets = read::values(map, labels, decoders, state, &mut errors).expect("read failed");
    let sets = read::fold(sets, state, usize::MAX, |t, v| *t += v);
    let mut family = Family::counter("ebpf_exporter_bench_total", "bench");
    read::push_counter(&mut family, labels, sets);
    family.series.len()
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let labels: Vec<Label> = serde_yaml::from_str(LABELS).unwrap();
    let decoders: Vec<Vec<Decoder>> = labels
        .iter()
        .map(|l| {
            l.decoders
                .iter()
                .map(|d| Decoder::build(d, l.size).unwrap())
                .collect()
        })
        .collect();
    println!("| keys | first round ms | later rounds ms (median) | series | RSS growth KiB |");
    println!("|---:|---:|---:|---:|---:|");
    for keys in [1_000u32, 10_000] {
        let handle = match filled_map(MapType::Hash, 24, 8, keys, keys) {
            Ok(handle) => handle,
            Err(err) => {
                eprintln!("cannot create a BPF map here ({err:#}): run as root");
                return;
            }
        };
        let map = MetricMap {
            handle,
            percpu: false,
            single_slot: false,
        };
        let mut state = MetricState::default();
        let rss = rss_kib();
        let started = sonde::bench::thread_cpu_ns();
        let series = round(&map, &labels, &decoders, &mut state);
        let first = (sonde::bench::thread_cpu_ns() - started) / 1e6;
        let later: Vec<f64> = (0..rounds)
            .map(|_| {
                let started = sonde::bench::thread_cpu_ns();
                round(&map, &labels, &decoders, &mut state);
                (sonde::bench::thread_cpu_ns() - started) / 1e6
            })
            .collect();
        println!(
            "| {keys} | {first:.2} | {:.2} | {series} | {} |",
            sonde::bench::median(&later),
            rss_kib().saturating_sub(rss)
        );
    }
}
