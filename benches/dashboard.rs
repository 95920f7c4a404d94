//! What the dashboard costs with a week of data: builds a store holding
//! seven days of a busy machine at a 30 s interval (every series the views
//! read: the Overview's, 600 of them syscall counters, with a sonde restart
//! halfway; the Kernel view's latency histograms, errors, TCP and process
//! events; per-process CPU, memory, disk and network; sonde's own
//! collector and BPF figures), serves it, and times `GET` of every view for
//! 15m, 1h, 24h and 7d, with the size of what it sends.
//!
//!     cargo bench --bench dashboard                           # the figures
//!     cargo bench --bench dashboard -- --serve 127.0.0.1:9978 # look at it
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::IntoFuture;

use sonde::model::{Labels, Sample, METRIC_NAME};
use sonde::serve::{router, Shared};
use sonde::store::Store;

const INTERVAL_MS: i64 = 30_000;
const DAYS: i64 = 7;
const DAY_MS: i64 = 24 * 3600 * 1000;
const COMMS: usize = 40;
/// Processes with per-process CPU, memory, disk and network series.
const BUSY_COMMS: usize = 20;
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
const RUNS: usize = 3;
const RANGES: [&str; 4] = ["15m", "1h", "24h", "7d"];
/// Every view drawn over a range, by name, and its path.
const VIEWS: &[(&str, &str)] = &[
    ("overview", "/"),
    ("kernel", "/kernel"),
    ("kernel syscall", "/kernel?syscall=read"),
    ("who", "/who"),
    ("who process", "/who/process?comm=postgres&unit=&container="),
    ("status", "/status"),
    (
        "graph",
        "/graph?g0.expr=sum%20by%20(mode)(rate(node_cpu_seconds_total%5B5m%5D))",
    ),
];
/// Upper bounds of the log2 latency buckets, 1 µs to 32 s, as sonde's.
const BUCKETS: usize = 26;

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
        "stored {samples} samples of {series} series ({DAYS} days at {} s) in {:.1} s; database {} MiB",
        INTERVAL_MS / 1000,
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
    println!("GET of each view, median and slowest of {RUNS}, and the HTML's size");
    println!("view             range   median      max     HTML");
    for (view, path) in VIEWS {
        for range in RANGES {
            let url = if path.starts_with("/graph") {
                format!("{base}{path}&g0.range_input={range}")
            } else if path.contains('?') {
                format!("{base}{path}&range={range}")
            } else {
                format!("{base}{path}?range={range}")
            };
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
            println!(
                "{view:<16} {range:<5} {:>6.0} ms {:>6.0} ms {:>5} KiB",
                ms(times[RUNS / 2]),
                ms(times[RUNS - 1]),
                size >> 10
            );
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A small deterministic noise source (an LCG), so every run stores the same week.
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

/// How one of the Kernel, Who and Status views' series moves.
enum Extra {
    /// A counter growing `per_second` times the day's rhythm, times `share`
    /// (a histogram bucket's part of all events).
    Counter { per_second: f64, share: f64 },
    /// A gauge around `value`.
    Gauge { value: f64 },
}

/// The series of the Kernel, Who and Status views, with how each moves.
fn extras(comms: &[String]) -> Vec<(Labels, Extra)> {
    let label = |pairs: &[(&str, &str)]| Labels::new(pairs.iter().copied());
    let mut extras = Vec::new();
    let mut histogram = |metric: &str, pairs: &[(&str, &str)], per_second: f64, center: f64| {
        let bounds: Vec<String> = (0..BUCKETS)
            .map(|i| format!("{}", 1e-6 * f64::from(1u32 << i)))
            .chain(["+Inf".to_string()])
            .collect();
        for (i, le) in bounds.iter().enumerate() {
            // A logistic cumulative share around bucket `center`.
            let share = if le == "+Inf" {
                1.0
            } else {
                1.0 / (1.0 + (-(i as f64 - center) / 1.5).exp())
            };
            let mut all = pairs.to_vec();
            let bucket = format!("{metric}_bucket");
            all.extend([(METRIC_NAME, bucket.as_str()), ("le", le.as_str())]);
            extras.push((label(&all), Extra::Counter { per_second, share }));
        }
        let count = format!("{metric}_count");
        let mut all = pairs.to_vec();
        all.push((METRIC_NAME, count.as_str()));
        extras.push((
            label(&all),
            Extra::Counter {
                per_second,
                share: 1.0,
            },
        ));
    };
    for (rank, syscall) in SYSCALLS.iter().enumerate() {
        let per_second = 20_000.0 / (1.0 + rank as f64);
        histogram(
            "sonde_syscall_duration_seconds",
            &[("syscall", syscall)],
            per_second,
            2.0 + rank as f64 % 5.0,
        );
    }
    for device in ["sda", "nvme0n1"] {
        for (op, center) in [("read", 8.0), ("write", 10.0), ("flush", 12.0)] {
            histogram(
                "sonde_block_io_duration_seconds",
                &[("device", device), ("op", op)],
                100.0,
                center,
            );
        }
    }
    histogram("sonde_runqueue_latency_seconds", &[], 3000.0, 4.0);
    histogram("sonde_tcp_connect_duration_seconds", &[], 2.0, 7.0);
    // Each (syscall, errno) pair fails in four processes.
    for (i, syscall) in SYSCALLS[..10].iter().enumerate() {
        for errno in ["ENOENT", "EAGAIN"] {
            for comm in comms.iter().skip(i).take(4) {
                let pairs = [
                    (METRIC_NAME, "sonde_syscall_errors_total"),
                    ("comm", comm.as_str()),
                    ("syscall", syscall),
                    ("errno", errno),
                ];
                extras.push((
                    label(&pairs),
                    Extra::Counter {
                        per_second: 1.25,
                        share: 1.0,
                    },
                ));
            }
        }
    }
    for comm in &comms[..5] {
        for (metric, per_second) in [
            ("sonde_tcp_retransmits_total", 0.2),
            ("sonde_tcp_resets_total", 0.05),
            ("sonde_process_execs_total", 0.5),
        ] {
            let pairs = [(METRIC_NAME, metric), ("comm", comm.as_str())];
            extras.push((
                label(&pairs),
                Extra::Counter {
                    per_second,
                    share: 1.0,
                },
            ));
        }
        let connects = [
            (METRIC_NAME, "sonde_tcp_connects_total"),
            ("comm", comm.as_str()),
            ("result", "ok"),
        ];
        extras.push((
            label(&connects),
            Extra::Counter {
                per_second: 1.0,
                share: 1.0,
            },
        ));
        for (reason, per_second) in [("0", 0.4), ("non-zero", 0.05), ("SIGKILL", 0.01)] {
            let pairs = [
                (METRIC_NAME, "sonde_process_exits_total"),
                ("comm", comm.as_str()),
                ("reason", reason),
            ];
            extras.push((
                label(&pairs),
                Extra::Counter {
                    per_second,
                    share: 1.0,
                },
            ));
        }
    }
    let oom = [(METRIC_NAME, "sonde_oom_kills_total"), ("comm", "worker-7")];
    extras.push((
        label(&oom),
        Extra::Counter {
            per_second: 1e-4,
            share: 1.0,
        },
    ));
    for (rank, comm) in comms[..BUSY_COMMS].iter().enumerate() {
        let weight = 1.0 / (1.0 + rank as f64);
        let comm = comm.as_str();
        for (mode, share) in [("user", 0.7), ("system", 0.3)] {
            let pairs = [
                (METRIC_NAME, "sonde_process_cpu_seconds_total"),
                ("comm", comm),
                ("mode", mode),
            ];
            extras.push((
                label(&pairs),
                Extra::Counter {
                    per_second: 0.5 * weight,
                    share,
                },
            ));
        }
        let memory = [
            (METRIC_NAME, "sonde_process_resident_memory_bytes"),
            ("comm", comm),
        ];
        extras.push((
            label(&memory),
            Extra::Gauge {
                value: 4e8 * weight,
            },
        ));
        for (metric, key, values) in [
            ("sonde_block_io_bytes_total", "op", ["read", "write"]),
            (
                "sonde_net_bytes_total",
                "direction",
                ["receive", "transmit"],
            ),
        ] {
            for value in values {
                let pairs = [(METRIC_NAME, metric), ("comm", comm), (key, value)];
                extras.push((
                    label(&pairs),
                    Extra::Counter {
                        per_second: 2e5 * weight,
                        share: 1.0,
                    },
                ));
            }
        }
    }
    for collector in [
        "cpu",
        "meminfo",
        "diskstats",
        "netdev",
        "filesystem",
        "syscalls",
        "block",
        "net",
        "sched",
        "process",
    ] {
        let success = [
            (METRIC_NAME, "sonde_collector_success"),
            ("collector", collector),
        ];
        extras.push((label(&success), Extra::Gauge { value: 1.0 }));
        let duration = [
            (METRIC_NAME, "sonde_collector_duration_seconds"),
            ("collector", collector),
        ];
        extras.push((label(&duration), Extra::Gauge { value: 0.002 }));
    }
    for program in [
        "raw_sys_enter",
        "raw_sys_exit",
        "btf_rq_issue",
        "btf_rq_complete",
        "btf_switch",
    ] {
        let runs = [
            (METRIC_NAME, "sonde_bpf_program_runs_total"),
            ("program", program),
        ];
        extras.push((
            label(&runs),
            Extra::Counter {
                per_second: 20_000.0,
                share: 1.0,
            },
        ));
        let seconds = [
            (METRIC_NAME, "sonde_bpf_program_run_seconds_total"),
            ("program", program),
        ];
        extras.push((
            label(&seconds),
            Extra::Counter {
                per_second: 20_000.0 * 2e-7,
                share: 1.0,
            },
        ));
    }
    extras
}

/// Fills `store` with [`DAYS`] days ending at `end_ms`: returns (series,
/// samples). Daily rhythms (busy afternoons), noise, bursts of disk and
/// network I/O, and a sonde restart halfway: two minutes without samples,
/// after which the syscall counters start again from zero.
fn fill(store: &mut Store, end_ms: i64) -> anyhow::Result<(usize, usize)> {
    let gib = 1024.0 * 1024.0 * 1024.0;
    let mut noise = Noise(42);
    let start_ms = end_ms - DAYS * DAY_MS;
    let restart_ms = end_ms - DAYS * DAY_MS / 2;
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
    let mut extras: Vec<(Labels, Extra, f64)> = extras(&comms)
        .into_iter()
        .map(|(labels, extra)| (labels, extra, 0.0))
        .collect();
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
        // One noise for every extra series in a round, so that a
        // histogram's cumulative buckets grow in step.
        let round = rhythm * burst.min(3.0) * (0.6 + 0.8 * noise.next());
        for (labels, extra, value) in extras.iter_mut() {
            let sample = match extra {
                Extra::Counter { per_second, share } => {
                    *value += *per_second * *share * round * dt;
                    value.round()
                }
                Extra::Gauge { value: around } => *around * (0.8 + 0.4 * noise.next()),
            };
            batch.push(Sample {
                labels: labels.clone(),
                timestamp_ms: ts,
                value: sample,
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
    Ok((counters.len() + gauges.len() + extras.len(), stored))
}
