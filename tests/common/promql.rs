//! The PromQL corpus and its data, shared by the comparison tests and the
//! benchmark: synthetic series (node metrics of one host, sonde's eBPF
//! counters and histograms, edge cases) generated the same way every run,
//! written by remote write, the queries of tests/promql/, and how an answer
//! of sonde is compared with Prometheus's.

use std::collections::BTreeMap;

use super::get;
use super::prometheus::encode;
use super::remote::{self, series};
use serde_json::Value;
use sonde::prompb::{TimeSeries, WriteRequest};

/// The synthetic data's scrape interval.
pub const SCRAPE_MS: i64 = 15_000;
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The corpus files and the `$job` each one's queries run against.
pub const CORPUS: [(&str, &str); 3] = [
    ("node_exporter_full.promql", "node"),
    ("ebpf.promql", "ebpf"),
    ("edge_cases.promql", "edge"),
];

/// A small deterministic generator, so every run sees the same data shape.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One series being generated: labels and (timestamp, value) samples.
pub struct Gen {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// Builds every synthetic series over `scrapes` scrapes from `t0`: node
/// metrics for one host, sonde's eBPF counters and histograms, and edge
/// cases. Each series gets its own scrape jitter of up to 0.4 s. The edge
/// cases (resets, gaps, stale markers) sit at fixed scrape numbers, in
/// the first hour.
pub fn generate(t0: i64, scrapes: i64) -> Vec<Gen> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    let node = [("instance", "synthetic:9100"), ("job", "node")];
    let ebpf = [("instance", "synthetic:9977"), ("job", "ebpf")];
    let edge = [("job", "edge")];
    let mut add = |name: &str,
                   common: &[(&str, &str)],
                   extra: &[(&str, &str)],
                   rng: &mut Rng,
                   value: &mut dyn FnMut(i64, &mut Rng) -> Option<f64>| {
        let jitter = (rng.next() * 400.0) as i64;
        let samples = (0..scrapes)
            .filter_map(|i| value(i, rng).map(|v| (t0 + i * SCRAPE_MS + jitter, v)))
            .collect();
        out.push(Gen {
            name: name.to_string(),
            labels: common
                .iter()
                .chain(extra)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            samples,
        });
    };
    let counter = |per_scrape: f64| {
        let mut total = 0.0f64;
        move |_: i64, rng: &mut Rng| {
            total += (per_scrape * (0.5 + rng.next()) * 100.0).round() / 100.0;
            Some(total)
        }
    };
    let gauge = |base: f64, spread: f64| {
        move |i: i64, rng: &mut Rng| {
            Some(base + spread * ((i as f64 / 20.0).sin() + rng.next() - 0.5))
        }
    };

    for cpu in ["0", "1", "2", "3"] {
        for (mode, per) in [
            ("idle", 12.0),
            ("user", 1.5),
            ("system", 0.7),
            ("iowait", 0.2),
            ("irq", 0.01),
            ("softirq", 0.05),
            ("steal", 0.0),
            ("nice", 0.02),
        ] {
            add(
                "node_cpu_seconds_total",
                &node,
                &[("cpu", cpu), ("mode", mode)],
                &mut rng,
                &mut counter(per),
            );
        }
    }
    let gib = 1024.0 * 1024.0 * 1024.0;
    for (name, base, spread) in [
        ("node_memory_MemTotal_bytes", 8.0 * gib, 0.0),
        ("node_memory_MemFree_bytes", 2.0 * gib, 0.2 * gib),
        ("node_memory_MemAvailable_bytes", 5.0 * gib, 0.3 * gib),
        ("node_memory_Cached_bytes", 2.5 * gib, 0.1 * gib),
        ("node_memory_Buffers_bytes", 0.2 * gib, 0.01 * gib),
        ("node_memory_SReclaimable_bytes", 0.3 * gib, 0.01 * gib),
        ("node_memory_SwapTotal_bytes", 2.0 * gib, 0.0),
        ("node_memory_SwapFree_bytes", 1.5 * gib, 0.1 * gib),
        ("node_memory_Active_bytes", 3.0 * gib, 0.2 * gib),
        ("node_memory_Inactive_bytes", 1.0 * gib, 0.1 * gib),
        ("node_memory_Committed_AS_bytes", 6.0 * gib, 0.5 * gib),
        ("node_memory_CommitLimit_bytes", 6.0 * gib, 0.0),
        ("node_memory_Dirty_bytes", 1e6, 5e5),
        ("node_memory_Writeback_bytes", 0.0, 0.0),
        ("node_load1", 1.2, 0.8),
        ("node_load5", 1.0, 0.4),
        ("node_load15", 0.9, 0.2),
        ("node_procs_running", 3.0, 2.0),
        ("node_procs_blocked", 0.0, 0.0),
    ] {
        let g = gauge(base, spread);
        add(name, &node, &[], &mut rng, &mut |i, r| {
            g(i, r).map(f64::round)
        });
    }
    for (name, per) in [
        ("node_context_switches_total", 30_000.0),
        ("node_intr_total", 20_000.0),
        ("node_forks_total", 40.0),
        ("node_vmstat_pgpgin", 500.0),
        ("node_vmstat_pgpgout", 900.0),
        ("node_vmstat_pswpin", 0.0),
        ("node_vmstat_pswpout", 2.0),
        ("node_vmstat_pgfault", 100_000.0),
        ("node_vmstat_pgmajfault", 10.0),
        ("node_vmstat_oom_kill", 0.02),
    ] {
        let mut c = counter(per);
        add(name, &node, &[], &mut rng, &mut |i, r| {
            c(i, r).map(f64::round)
        });
    }
    for (name, per) in [
        ("node_pressure_cpu_waiting_seconds_total", 0.3),
        ("node_pressure_io_waiting_seconds_total", 0.1),
        ("node_pressure_memory_waiting_seconds_total", 0.01),
    ] {
        add(name, &node, &[], &mut rng, &mut counter(per));
    }
    add("node_time_seconds", &node, &[], &mut rng, &mut |i, _| {
        Some((t0 + i * SCRAPE_MS) as f64 / 1000.0)
    });
    add(
        "node_boot_time_seconds",
        &node,
        &[],
        &mut rng,
        &mut |_, _| Some((t0 / 1000 - 86_400 * 3) as f64),
    );
    add(
        "node_uname_info",
        &node,
        &[
            ("nodename", "synthetic"),
            ("release", "6.18.0"),
            ("sysname", "Linux"),
        ],
        &mut rng,
        &mut |_, _| Some(1.0),
    );
    for (device, scale) in [("eth0", 1.0), ("lo", 0.1)] {
        for (name, per) in [
            ("node_network_receive_bytes_total", 2e6),
            ("node_network_transmit_bytes_total", 8e5),
            ("node_network_receive_packets_total", 2e3),
            ("node_network_transmit_packets_total", 1.5e3),
            ("node_network_receive_errs_total", 0.05),
            ("node_network_receive_drop_total", 0.1),
        ] {
            let mut c = counter(per * scale);
            add(name, &node, &[("device", device)], &mut rng, &mut |i, r| {
                c(i, r).map(f64::round)
            });
        }
    }
    for device in ["sda", "nvme0n1", "dm-0"] {
        for (name, per) in [
            ("node_disk_read_bytes_total", 4e6),
            ("node_disk_written_bytes_total", 6e6),
            ("node_disk_reads_completed_total", 300.0),
            ("node_disk_writes_completed_total", 500.0),
            ("node_disk_io_time_seconds_total", 2.0),
            ("node_disk_read_time_seconds_total", 0.6),
            ("node_disk_write_time_seconds_total", 1.1),
        ] {
            add(
                name,
                &node,
                &[("device", device)],
                &mut rng,
                &mut counter(per),
            );
        }
        let g = gauge(2.0, 2.0);
        add(
            "node_disk_io_now",
            &node,
            &[("device", device)],
            &mut rng,
            &mut |i, r| g(i, r).map(|v| v.max(0.0).round()),
        );
    }
    for (device, fstype, mountpoint, size) in [
        ("/dev/sda1", "ext4", "/", 100.0 * gib),
        ("/dev/sda2", "vfat", "/boot", 0.5 * gib),
        ("tmpfs", "tmpfs", "/run", 1.0 * gib),
    ] {
        let fs = [
            ("device", device),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        add(
            "node_filesystem_size_bytes",
            &node,
            &fs,
            &mut rng,
            &mut |_, _| Some(size),
        );
        for name in ["node_filesystem_avail_bytes", "node_filesystem_free_bytes"] {
            let g = gauge(size * 0.4, size * 0.05);
            add(name, &node, &fs, &mut rng, &mut |i, r| {
                g(i, r).map(f64::round)
            });
        }
        add(
            "node_filesystem_files",
            &node,
            &fs,
            &mut rng,
            &mut |_, _| Some(6.5e6),
        );
        let g = gauge(5e6, 1e4);
        add(
            "node_filesystem_files_free",
            &node,
            &fs,
            &mut rng,
            &mut |i, r| g(i, r).map(f64::round),
        );
        add(
            "node_filesystem_readonly",
            &node,
            &fs,
            &mut rng,
            &mut |_, _| Some(0.0),
        );
    }

    let syscalls = ["read", "write", "openat", "epoll_wait", "futex", "close"];
    for comm in ["nginx", "postgres", "sshd", "systemd", "other"] {
        for (k, syscall) in syscalls.iter().enumerate() {
            let mut c = counter(50.0 * (k + 1) as f64);
            // postgres restarts half an hour in: its counters start again low.
            let restarts = comm == "postgres";
            add(
                "sonde_syscalls_total",
                &ebpf,
                &[("comm", comm), ("syscall", syscall)],
                &mut rng,
                &mut |i, r| {
                    let v = c(i, r)?.round();
                    Some(if restarts && i >= 120 { v / 7.0 } else { v }.round())
                },
            );
        }
    }
    // Log2 latency buckets as sonde exports them: 1 µs .. ~1 ms, +Inf.
    let bounds: Vec<f64> = (10..=20).map(|k| (1u64 << k) as f64 / 1e9).collect();
    for (k, syscall) in syscalls.iter().enumerate() {
        let mut counts = vec![0.0f64; bounds.len() + 1];
        let mut sums = 0.0;
        let per_scrape: Vec<Vec<f64>> = (0..scrapes)
            .map(|_| {
                for (b, count) in counts.iter_mut().enumerate() {
                    let weight = (-((b as f64 - 3.0 - k as f64).powi(2)) / 6.0).exp();
                    *count += (weight * 200.0 * rng.next()).round();
                }
                counts.clone()
            })
            .collect();
        let cumulative_at = |i: usize, upto: usize| per_scrape[i][..=upto].iter().sum::<f64>();
        let les: Vec<String> = bounds
            .iter()
            .map(|&b| sonde::model::format_float(b))
            .chain(["+Inf".to_string()])
            .collect();
        for (b, le) in les.iter().enumerate() {
            let values: Vec<f64> = (0..scrapes as usize).map(|i| cumulative_at(i, b)).collect();
            add(
                "sonde_syscall_duration_seconds_bucket",
                &ebpf,
                &[("syscall", syscall), ("le", le)],
                &mut rng,
                &mut |i, _| Some(values[i as usize]),
            );
        }
        let counts: Vec<f64> = (0..scrapes as usize)
            .map(|i| cumulative_at(i, bounds.len()))
            .collect();
        add(
            "sonde_syscall_duration_seconds_count",
            &ebpf,
            &[("syscall", syscall)],
            &mut rng,
            &mut |i, _| Some(counts[i as usize]),
        );
        add(
            "sonde_syscall_duration_seconds_sum",
            &ebpf,
            &[("syscall", syscall)],
            &mut rng,
            &mut |i, r| {
                sums += counts[i as usize] * 1e-7 * (1.0 + r.next());
                Some(sums)
            },
        );
    }

    // Edge cases.
    let stale = f64::from_bits(STALE_NAN);
    let mut c = counter(10.0);
    add(
        "edge_counter_total",
        &edge,
        &[("case", "reset")],
        &mut rng,
        &mut |i, r| {
            let v = c(i, r)?;
            // Resets at scrape 60 and again at 61, and at 150.
            Some(match i {
                60 => 3.0,
                61 => 1.0,
                i if i > 61 && i < 150 => v - 600.0,
                i if i >= 150 => v - 1500.0,
                _ => v,
            })
        },
    );
    let mut c = counter(7.0);
    add(
        "edge_counter_total",
        &edge,
        &[("case", "gap")],
        &mut rng,
        &mut |i, r| {
            let v = c(i, r)?;
            (!(80..=130).contains(&i)).then_some(v)
        },
    );
    let mut c = counter(3.0);
    add(
        "edge_counter_total",
        &edge,
        &[("case", "stale")],
        &mut rng,
        &mut |i, r| {
            let v = c(i, r)?;
            match i {
                150 => Some(stale),
                151..=169 => None,
                _ => Some(v),
            }
        },
    );
    add(
        "edge_gauge",
        &edge,
        &[("case", "flat")],
        &mut rng,
        &mut |_, _| Some(42.0),
    );
    let g = gauge(50.0, 30.0);
    add(
        "edge_gauge",
        &edge,
        &[("case", "reset")],
        &mut rng,
        &mut |i, r| g(i, r),
    );
    let g = gauge(50.0, 40.0);
    add(
        "edge_gauge",
        &edge,
        &[("case", "gap")],
        &mut rng,
        &mut |i, r| {
            let v = g(i, r)?;
            (!(80..=130).contains(&i)).then_some(v)
        },
    );
    let g = gauge(20.0, 10.0);
    add(
        "edge_gauge",
        &edge,
        &[("case", "stale")],
        &mut rng,
        &mut |i, r| {
            let v = g(i, r)?;
            match i {
                100 => Some(stale),
                101..=119 => None,
                _ => Some(v),
            }
        },
    );
    let g = gauge(70.0, 20.0);
    add(
        "edge_gauge",
        &edge,
        &[("case", "nan")],
        &mut rng,
        &mut |i, r| {
            let v = g(i, r)?;
            Some(match i % 40 {
                7 => f64::NAN,
                19 => f64::INFINITY,
                31 => f64::NEG_INFINITY,
                _ => v,
            })
        },
    );
    for (case, owner) in [("reset", "alice"), ("gap", "bob"), ("stale", "carol")] {
        add(
            "edge_info",
            &edge,
            &[("case", case), ("owner", owner)],
            &mut rng,
            &mut |_, _| Some(1.0),
        );
    }
    for n in ["1", "2"] {
        add(
            "edge_dup",
            &edge,
            &[("case", "reset"), ("n", n)],
            &mut rng,
            &mut |_, _| Some(2.0),
        );
    }
    // Levels with many ties, for topk, sort and count_values.
    for level in 0..6 {
        let name = level.to_string();
        add(
            "edge_level",
            &edge,
            &[("i", &name)],
            &mut rng,
            &mut |i, _| Some(((i / 20 + level) % 3) as f64),
        );
    }
    // A histogram with a group lacking +Inf and one with decreasing buckets.
    for (group, le, per) in [
        ("ok", "0.1", 1.0),
        ("ok", "1", 5.0),
        ("ok", "10", 9.0),
        ("ok", "+Inf", 10.0),
        ("noinf", "1", 5.0),
        ("noinf", "10", 6.0),
        ("nonmono", "1", 5.0),
        ("nonmono", "2", 4.0),
        ("nonmono", "+Inf", 8.0),
    ] {
        add(
            "edge_hist_bucket",
            &edge,
            &[("g", group), ("le", le)],
            &mut rng,
            &mut |i, _| Some(per * i as f64),
        );
    }
    out
}

/// Remote-writes the series to `base_url` in time slices of 5 minutes, so
/// a TSDB receiving them sees time move forward.
pub fn feed(base_url: &str, data: &[Gen], t0: i64, scrapes: i64) {
    let slice = 20 * SCRAPE_MS;
    let mut from = t0;
    while from < t0 + scrapes * SCRAPE_MS {
        let to = from + slice;
        let timeseries: Vec<TimeSeries> = data
            .iter()
            .filter_map(|g| {
                let samples: Vec<(i64, f64)> = g
                    .samples
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= from && t < to)
                    .collect();
                let labels: Vec<(&str, &str)> = g
                    .labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                (!samples.is_empty()).then(|| series(&g.name, &labels, &samples))
            })
            .collect();
        remote::write(
            base_url,
            &WriteRequest {
                timeseries,
                metadata: vec![],
            },
        );
        from = to;
    }
}

/// The corpus over the synthetic data: `$node` is its instance and `$job`
/// each file's job.
pub fn corpus(rate_interval: &str) -> Vec<(String, String)> {
    corpus_for(rate_interval, "synthetic:9100", |job| job)
}

/// The corpus over series without `instance` and `job` labels, as sonde
/// stores its own rounds: those matchers become `=""`, which matches a
/// missing label.
pub fn corpus_unlabelled(rate_interval: &str) -> Vec<(String, String)> {
    corpus_for(rate_interval, "", |_| "")
}

fn corpus_for(
    rate_interval: &str,
    node: &str,
    job_of: impl Fn(&'static str) -> &'static str,
) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql");
    let mut out = Vec::new();
    for (file, job) in CORPUS {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let query = line
                .replace("$__rate_interval", rate_interval)
                .replace("$node", node)
                .replace("$diskdevices", "[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+")
                .replace("$job", job_of(job));
            out.push((file.to_string(), query));
        }
    }
    out
}

/// Runs every query with each request (an API path and its time
/// parameters, `&query=` is appended) on both; returns how many answers
/// were compared and a description of each that differs.
pub fn compare(
    prometheus_url: &str,
    sonde_url: &str,
    queries: &[(String, String)],
    requests: &[String],
) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (file, query) in queries {
        for request in requests {
            let path = format!("{request}&query={}", encode(query));
            let prom = api(prometheus_url, &path);
            let ours = api(sonde_url, &path);
            compared += 1;
            if let Some(diff) = difference(query, &prom, &ours) {
                failures.push(format!("{file}: {query}\n  {request}\n  {diff}"));
            }
        }
    }
    (compared, failures)
}

pub fn api(base_url: &str, path_and_query: &str) -> (u16, Value) {
    let url = format!("{base_url}{path_and_query}");
    let (status, body) = get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"));
    (status, value)
}

/// Values equal as Prometheus writes them, or within 1e-9 relative (and
/// 1e-12 absolute, for results that are zero up to rounding).
fn same_value(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
        return false;
    };
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x - y).abs() <= 1e-12
        }
        _ => false,
    }
}

fn by_labels(result: &Value) -> BTreeMap<String, &Value> {
    result
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| (item["metric"].to_string(), item))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether both results hold the same values at every step, whichever
/// series carry them. Which of several equal values `topk`/`bottomk` keeps
/// is not defined: Prometheus's own choice follows the order of a Go map in
/// range queries, so differs from run to run.
fn same_values_per_step(
    prom: &BTreeMap<String, &Value>,
    sonde: &BTreeMap<String, &Value>,
    kind: &str,
) -> bool {
    let steps = |result: &BTreeMap<String, &Value>| -> BTreeMap<String, Vec<String>> {
        let mut steps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for series in result.values() {
            let points = if kind == "matrix" {
                series["values"].as_array().cloned().unwrap_or_default()
            } else {
                vec![series["value"].clone()]
            };
            for point in points {
                let value = point[1].as_str().unwrap_or_default().to_string();
                steps.entry(point[0].to_string()).or_default().push(value);
            }
        }
        steps.values_mut().for_each(|values| values.sort());
        steps
    };
    steps(prom) == steps(sonde)
}

/// None when sonde answered as Prometheus did; otherwise what differs.
pub fn difference(query: &str, prom: &(u16, Value), sonde: &(u16, Value)) -> Option<String> {
    let (p, s) = (&prom.1, &sonde.1);
    if p["status"] == "error" {
        return (s["status"] != "error" || s["errorType"] != p["errorType"] || sonde.0 != prom.0)
            .then(|| {
                format!(
                    "Prometheus refused it ({} {}), sonde answered {} {s}",
                    prom.0, p["error"], sonde.0
                )
            });
    }
    if s["status"] != "success" {
        return Some(format!("sonde failed: {s}"));
    }
    let (p, s) = (&p["data"], &s["data"]);
    if p["resultType"] != s["resultType"] {
        return Some(format!(
            "resultType {} vs {}",
            p["resultType"], s["resultType"]
        ));
    }
    match p["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            let (pr, sr) = (&p["result"], &s["result"]);
            (pr[0] != sr[0] || !(same_value(&pr[1], &sr[1]) || pr[1] == sr[1]))
                .then(|| format!("{pr} vs {sr}"))
        }
        Some(kind) => {
            let key = if kind == "matrix" { "values" } else { "value" };
            let (pm, sm) = (by_labels(&p["result"]), by_labels(&s["result"]));
            let ties = query.contains("topk(") || query.contains("bottomk(");
            // Equal values at every step: which series carry them may differ.
            let tie_broken_otherwise = ties && same_values_per_step(&pm, &sm, kind);
            if pm.keys().ne(sm.keys()) && !tie_broken_otherwise {
                let missing: Vec<_> = pm.keys().filter(|k| !sm.contains_key(*k)).collect();
                let extra: Vec<_> = sm.keys().filter(|k| !pm.contains_key(*k)).collect();
                return Some(format!(
                    "series differ: sonde lacks {missing:?}, has extra {extra:?}"
                ));
            }
            for (labels, pv) in pm.iter().filter(|_| !tie_broken_otherwise) {
                let sv = sm[labels];
                let (pp, sp) = if kind == "matrix" {
                    (
                        pv[key].as_array().unwrap().clone(),
                        sv[key].as_array().cloned().unwrap_or_default(),
                    )
                } else {
                    (vec![pv[key].clone()], vec![sv[key].clone()])
                };
                if pp.len() != sp.len() {
                    return Some(format!(
                        "{labels}: {} points vs {}: {pv} vs {sv}",
                        pp.len(),
                        sp.len()
                    ));
                }
                for (a, b) in pp.iter().zip(&sp) {
                    if a[0] != b[0] || !same_value(&a[1], &b[1]) {
                        return Some(format!("{labels}: point {a} vs {b}"));
                    }
                }
            }
            // Sorting functions and topk/bottomk: the order of values must
            // match too.
            let ordered = ["sort", "topk", "bottomk"]
                .iter()
                .any(|f| query.starts_with(f));
            if kind == "vector" && ordered {
                let order = |r: &Value| -> Vec<Value> {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["value"][1].clone())
                        .collect()
                };
                let (po, so) = (order(&p["result"]), order(&s["result"]));
                if po != so {
                    return Some(format!("order {po:?} vs {so:?}"));
                }
            }
            None
        }
        None => Some(format!("no resultType: {p}")),
    }
}
