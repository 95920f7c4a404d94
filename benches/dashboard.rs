//! What the dashboard costs with a full day of data: builds a store holding
//! 24 hours of a busy machine at a 10 s interval (every series the charts
//! read, 600 of them syscall counters, with a sonde restart halfway), serves
//! it, and times `GET /` for each range.
//!
//!     cargo bench --bench dashboard                           # the figures
//!     cargo bench --bench dashboard -- --serve 127.0.0.1:9978 # look at it
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::IntoFuture;

use sonde::model::{Labels, Sample, METRIC_NAME};
use sonde::serve::dashboard::charts::{self, CHARTS};
use sonde::serve::dashboard::{self, Preset, Range};
use sonde::serve::{router, Shared};
use sonde::store::Store;

const INTERVAL_MS: i64 = 10_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
const COMMS: usize = 40;
const SYSCALLS: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "fstat",
    "mmap",
    "futex",
    "epoll_wait",
    "recvfrom",
    "sendto",
    "poll",
    "clock_nanosleep",
    "ioctl",
    "newfstatat",
    "getpid",
];
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench` to every bench binary.
    let serve_at =
        match args.iter().position(|a| a == "--serve") {
            Some(i) => Some(args.get(i + 1).cloned().ok_or_else(|| {
                anyhow::anyhow!("--serve needs an address, such as 127.0.0.1:9978")
            })?),
            None => None,
        };

    let dir = common::TempDir::new("bench-dashboard");
    let end_ms = sonde::collect::now_ms();
    let started = Instant::now();
    let mut store = Store::open(&dir.0)?;
    let (series, samples) = fill(&mut store, end_ms)?;
    println!(
        "stored {samples} samples of {series} series (24 h at 10 s) in {:.1} s; database {} MiB",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(dir.0.join("sonde.db"))?.len() >> 20
    );

    let shared = Arc::new(Shared::new(store));
    let runtime = tokio::runtime::Runtime::new()?;
    let listen = serve_at.as_deref().unwrap_or("127.0.0.1:0");
    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    runtime.spawn(axum::serve(listener, router(shared.clone())).into_future());

    if serve_at.is_some() {
        println!(
            "serving {base}/ (data in {}); Ctrl-C to stop",
            dir.0.display()
        );
        runtime.block_on(tokio::signal::ctrl_c())?;
        return Ok(());
    }
    println!("GET /?range=…, median and slowest of {RUNS}; then the part of it that reads");
    println!("and evaluates (no drawing), and the samples read from the store");
    println!("range   GET median   GET max   evaluate   samples read   HTML");
    for preset in Preset::ALL {
        let range = Range::last(preset, sonde::collect::now_ms());
        let url = format!("{base}/?range={}", preset.name());
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let (status, body) = common::get(&url).map_err(anyhow::Error::msg)?;
            times.push(started.elapsed());
            anyhow::ensure!(status == 200, "GET {url}: {status}\n{body}");
            size = body.len();
        }
        times.sort();
        let started = Instant::now();
        dashboard::evaluate(&shared.store, &range)?;
        let evaluated = started.elapsed();
        println!(
            "{:<6} {:>8.0} ms {:>6.0} ms {:>7.0} ms {:>14} {:>4} KiB",
            preset.name(),
            ms(times[RUNS / 2]),
            ms(times[RUNS - 1]),
            ms(evaluated),
            samples_read(&shared.store, range)?,
            size >> 10
        );
    }
    Ok(())
}

/// How many samples the charts' selections return over `range`, read
/// margin included.
fn samples_read(store: &Mutex<Store>, range: Range) -> anyhow::Result<usize> {
    let grid = range.grid();
    let (start, end) = (charts::read_start_ms(&grid), grid.end_ms());
    let store = store.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut total = 0;
    for line in CHARTS.iter().flat_map(|chart| chart.lines) {
        for select in line.expr.selects() {
            let selected = store.select_step(&select.matchers()?, start, end, range.step_ms())?;
            total += selected.iter().map(|s| s.samples.len()).sum::<usize>();
        }
    }
    Ok(total)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A small deterministic noise source (an LCG), so every run stores the same day.
struct Noise(u64);

impl Noise {
    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Fills `store` with a day ending at `end_ms`: returns (series, samples).
/// Daily rhythms (busy afternoons), noise, bursts of disk and network I/O,
/// and a sonde restart 12 hours ago: two minutes without samples, after
/// which the syscall counters start again from zero.
fn fill(store: &mut Store, end_ms: i64) -> anyhow::Result<(usize, usize)> {
    let gib = 1024.0 * 1024.0 * 1024.0;
    let mut noise = Noise(42);
    let start_ms = end_ms - DAY_MS;
    let restart_ms = end_ms - DAY_MS / 2;
    let modes = [
        ("user", 0.22),
        ("system", 0.08),
        ("iowait", 0.02),
        ("softirq", 0.01),
        ("irq", 0.003),
        ("nice", 0.005),
        ("steal", 0.002),
    ];
    let mut counters: Vec<(Labels, f64)> = Vec::new();
    let label = |pairs: &[(&str, &str)]| Labels::new(pairs.iter().copied());
    for cpu in ["0", "1"] {
        for mode in modes.iter().map(|m| m.0).chain(["idle"]) {
            counters.push((
                label(&[
                    (METRIC_NAME, "node_cpu_seconds_total"),
                    ("cpu", cpu),
                    ("mode", mode),
                ]),
                1e4,
            ));
        }
    }
    for (name, device) in [
        ("node_disk_read_bytes_total", "sda"),
        ("node_disk_written_bytes_total", "sda"),
        ("node_disk_read_bytes_total", "nvme0n1"),
        ("node_disk_written_bytes_total", "nvme0n1"),
        ("node_network_receive_bytes_total", "eth0"),
        ("node_network_transmit_bytes_total", "eth0"),
        ("node_network_receive_bytes_total", "lo"),
        ("node_network_transmit_bytes_total", "lo"),
    ] {
        counters.push((label(&[(METRIC_NAME, name), ("device", device)]), 1e9));
    }
    let node_counters = counters.len();
    let comms: Vec<String> = (0..COMMS)
        .map(|i| match i {
            0 => "postgres".to_string(),
            1 => "nginx".to_string(),
            2 => "sonde".to_string(),
            3 => "systemd-journal".to_string(),
            4 => "sshd".to_string(),
            i => format!("worker-{i}"),
        })
        .collect();
    for comm in &comms {
        for syscall in SYSCALLS {
            counters.push((
                label(&[
                    (METRIC_NAME, "sonde_syscalls_total"),
                    ("comm", comm),
                    ("syscall", syscall),
                ]),
                0.0,
            ));
        }
    }
    let gauges: Vec<Labels> = [
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemFree_bytes",
        "node_memory_Cached_bytes",
        "node_memory_Buffers_bytes",
        "node_load1",
        "node_load5",
        "node_load15",
    ]
    .iter()
    .map(|name| label(&[(METRIC_NAME, name)]))
    .collect();

    let mut load = [0.5f64; 3];
    let mut stored = 0;
    let mut batch = Vec::new();
    let mut ts = start_ms;
    while ts <= end_ms {
        if (restart_ms..restart_ms + 120_000).contains(&ts) {
            ts += INTERVAL_MS;
            continue;
        }
        let hours = (ts - start_ms) as f64 / 3.6e6;
        // Busy in the afternoon, quiet at night: 0.3 to 1.0.
        let rhythm = 0.65 + 0.35 * (std::f64::consts::TAU * (hours - 9.0) / 24.0).sin();
        let dt = INTERVAL_MS as f64 / 1000.0;
        let burst = if noise.next() < 0.03 { 20.0 } else { 1.0 };
        for (i, (labels, value)) in counters.iter_mut().enumerate() {
            let per_second = if i < 16 {
                // CPU seconds per second, per CPU: the modes add up to 1.
                let mode = labels.get("mode").unwrap_or("idle");
                let busy: f64 = modes.iter().map(|m| m.1).sum::<f64>() * rhythm;
                match modes.iter().find(|m| m.0 == mode) {
                    Some(m) => m.1 * rhythm * (0.8 + 0.4 * noise.next()),
                    None => (1.0 - busy).max(0.0),
                }
            } else if i < node_counters {
                let base = match labels.get("device") {
                    Some("lo") => 20e3,
                    Some("eth0") => 400e3,
                    _ => 150e3,
                };
                base * rhythm * burst * (0.5 + noise.next())
            } else {
                let rank = (i - node_counters) / SYSCALLS.len();
                2000.0 / (1.0 + rank as f64) * rhythm * (0.7 + 0.6 * noise.next())
            };
            *value += per_second * dt;
            if i >= node_counters && ts >= restart_ms && ts < restart_ms + 120_000 + INTERVAL_MS {
                *value = 0.0;
            }
            batch.push(Sample {
                labels: labels.clone(),
                timestamp_ms: ts,
                value: value.round(),
            });
        }
        let running = 2.0 * rhythm * (0.6 + 0.8 * noise.next());
        for (average, minutes) in load.iter_mut().zip([1.0, 5.0, 15.0]) {
            *average += (running - *average) * (dt / 60.0 / minutes);
        }
        let used = gib * (1.2 + 0.6 * rhythm + 0.1 * noise.next());
        let cached = gib * 1.5;
        let values = [
            4.0 * gib,
            4.0 * gib - used,
            4.0 * gib - used - cached + gib * 0.9,
            cached,
            gib * 0.12,
            load[0],
            load[1],
            load[2],
        ];
        for (labels, value) in gauges.iter().zip(values) {
            batch.push(Sample {
                labels: labels.clone(),
                timestamp_ms: ts,
                value,
            });
        }
        if batch.len() > 50_000 {
            store.append(&batch)?;
            stored += batch.len();
            batch.clear();
        }
        ts += INTERVAL_MS;
    }
    store.append(&batch)?;
    stored += batch.len();
    Ok((counters.len() + gauges.len(), stored))
}
