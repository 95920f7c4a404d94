//! CPU cost of collecting node metrics, sonde beside node_exporter 1.5 in one
//! run, for the eleven collectors both have.
//!
//!     cargo bench --bench node_collectors [-- ROUNDS]     # default 600
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md).
//!
//! sonde: its node collectors run ROUNDS times in this process; each one's
//! process CPU time per round (so the statfs helper thread counts).
//! node_exporter: started with only the same eleven collectors and scraped
//! ROUNDS times, ten scrapes a second (it collects on each scrape); its CPU
//! time (utime + stime from /proc) per scrape. That includes serving and
//! encoding the scrape, which is part of what node_exporter spends to collect.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

const COLLECTORS: [&str; 11] = [
    "cpu",
    "stat",
    "meminfo",
    "loadavg",
    "vmstat",
    "diskstats",
    "filesystem",
    "netdev",
    "pressure",
    "uname",
    "time",
];

fn main() {
    let rounds: u32 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(600);

    let flags: Vec<String> = std::iter::once("--collector.disable-defaults".to_string())
        .chain(COLLECTORS.iter().map(|c| format!("--collector.{c}")))
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node_exporter = common::NodeExporter::start_with(&flags);
    node_exporter.scrape(); // warm up
    let cpu_seconds = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", node_exporter.pid())).unwrap();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: f64 =
            (fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()) as f64;
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    };
    let started = cpu_seconds();
    for _ in 0..rounds {
        node_exporter.scrape();
        std::thread::sleep(Duration::from_millis(100));
    }
    let node_exporter_us = (cpu_seconds() - started) / f64::from(rounds) * 1e6;

    let costs = sonde::collect::node::bench(rounds).expect("node collectors failed");
    println!("{:<12} {:>12}", "collector", "cpu_us/round");
    for (name, spent) in &costs {
        println!("{name:<12} {:>12.1}", spent.as_secs_f64() * 1e6);
    }
    let sonde_us: f64 = costs
        .iter()
        .map(|(_, spent)| spent.as_secs_f64() * 1e6)
        .sum();
    println!("{:<12} {sonde_us:>12.1}", "sonde total");
    println!(
        "{:<12} {node_exporter_us:>12.1}  ({rounds} scrapes, same 11 collectors)",
        "node_exporter"
    );
    println!(
        "ratio node_exporter / sonde: {:.1}",
        node_exporter_us / sonde_us
    );
}
