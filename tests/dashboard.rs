//! The dashboard: every range draws six charts, charts drawn from known
//! samples show the values those samples imply (rates, resets, gauges,
//! arithmetic), a restarted sonde still shows what it stored before, and bad
//! query parameters get a 400 that says what is allowed.

mod common;

use std::sync::Arc;

use sonde::model::{Labels, Sample, METRIC_NAME};
use sonde::serve::dashboard::{self, Preset, Range};
use sonde::serve::{router, Shared};
use sonde::store::Store;

use common::{get, Sonde, TempDir};

const SECOND: i64 = 1000;

fn now_ms() -> i64 {
    sonde::collect::now_ms()
}

/// Samples of one series every 10 s over the last `seconds` before `end_ms`,
/// valued `f(seconds since the first sample)`.
fn series(
    labels: &[(&str, &str)],
    end_ms: i64,
    seconds: i64,
    f: impl Fn(f64) -> f64,
) -> Vec<Sample> {
    let start = end_ms - seconds * SECOND;
    (0..=seconds / 10)
        .map(|i| Sample {
            labels: Labels::new(labels.iter().copied()),
            timestamp_ms: start + i * 10 * SECOND,
            value: f((i * 10) as f64),
        })
        .collect()
}

/// A store with every chart's metrics over the last 30 minutes, at values a
/// reader can check: 2 CPUs each 50 % user, 20 % system, 30 % idle; 8 GiB of
/// memory of which 6 GiB available; load 1.5; eth0 receiving 10 KiB/s; sda
/// reading 1 MiB/s; the process "fixture" making 10 syscalls/s, its counter
/// restarting from zero halfway (a restart of sonde).
fn known_store(dir: &std::path::Path, end_ms: i64) -> Store {
    let gib = 1024.0 * 1024.0 * 1024.0;
    let span = 30 * 60;
    let mut samples = Vec::new();
    for cpu in ["0", "1"] {
        for (mode, share) in [("user", 0.5), ("system", 0.2), ("idle", 0.3)] {
            let labels = [
                (METRIC_NAME, "node_cpu_seconds_total"),
                ("cpu", cpu),
                ("mode", mode),
            ];
            samples.extend(series(&labels, end_ms, span, |t| 1e5 + share * t));
        }
    }
    for (name, value) in [
        ("node_memory_MemTotal_bytes", 8.0 * gib),
        ("node_memory_MemAvailable_bytes", 6.0 * gib),
        ("node_memory_MemFree_bytes", 1.0 * gib),
        ("node_memory_Cached_bytes", 4.0 * gib),
        ("node_memory_Buffers_bytes", 0.5 * gib),
        ("node_load1", 1.5),
        ("node_load5", 1.5),
        ("node_load15", 1.5),
    ] {
        samples.extend(series(&[(METRIC_NAME, name)], end_ms, span, |_| value));
    }
    let counters: [(&[(&str, &str)], f64); 4] = [
        (
            &[
                (METRIC_NAME, "node_network_receive_bytes_total"),
                ("device", "eth0"),
            ],
            10240.0,
        ),
        (
            &[
                (METRIC_NAME, "node_network_transmit_bytes_total"),
                ("device", "eth0"),
            ],
            2048.0,
        ),
        (
            &[
                (METRIC_NAME, "node_disk_read_bytes_total"),
                ("device", "sda"),
            ],
            1048576.0,
        ),
        (
            &[
                (METRIC_NAME, "node_disk_written_bytes_total"),
                ("device", "sda"),
            ],
            4096.0,
        ),
    ];
    for (labels, per_second) in counters {
        samples.extend(series(labels, end_ms, span, |t| per_second * t));
    }
    let syscalls = [
        (METRIC_NAME, "sonde_syscalls_total"),
        ("comm", "fixture"),
        ("syscall", "read"),
    ];
    let half = span as f64 / 2.0;
    samples.extend(series(&syscalls, end_ms, span, |t| {
        if t < half {
            5e4 + 10.0 * t
        } else {
            10.0 * (t - half)
        }
    }));
    let mut store = Store::open(dir).unwrap();
    store.append(&samples).unwrap();
    store
}

/// Serves the router on a free loopback port from a thread of its own;
/// returns the base URL. The server lives as long as the test process.
fn serve(store: Store) -> String {
    let (url, stop, _thread) = common::recorder::serve(router(Arc::new(Shared::new(store))));
    std::mem::forget(stop); // lives as long as the test process
    url
}

fn panels(html: &str) -> usize {
    html.matches("<section class=\"panel\"").count()
}

fn approx(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0)
}

#[test]
fn every_range_draws_six_charts() {
    let dir = TempDir::new("dashboard-ranges");
    let base = serve(known_store(&dir.0, now_ms()));
    for range in Preset::ALL {
        let (status, html) = get(&format!("{base}/?range={}", range.name())).unwrap();
        assert_eq!(status, 200, "{}: {html}", range.name());
        assert_eq!(panels(&html), 6, "{}", range.name());
        assert_eq!(
            html.matches("<svg role=\"img\"").count(),
            6,
            "{}: a chart without data",
            range.name()
        );
    }
    let (status, html) = get(&format!("{base}/")).unwrap();
    assert_eq!(status, 200);
    assert!(
        html.contains("aria-current=\"page\">1h<"),
        "the default range is 1h"
    );
    let (status, css) = get(&format!("{base}/static/dashboard.css")).unwrap();
    assert_eq!(status, 200);
    assert!(css.contains(".panel"));
    assert_eq!(get(&format!("{base}/static/missing.js")).unwrap().0, 404);
}

/// `sonde_bpf_map_full_total{map}` rising by `lost` over the minute before
/// `end_ms`, and flat from the 10 minutes before that.
fn map_full(map: &str, end_ms: i64, lost: f64) -> Vec<Sample> {
    let labels = [(METRIC_NAME, "sonde_bpf_map_full_total"), ("map", map)];
    series(
        &labels,
        end_ms,
        600,
        |t| if t >= 540.0 { lost } else { 0.0 },
    )
}

#[test]
fn status_shows_what_sonde_lost_lately_and_heals() {
    let dir = TempDir::new("dashboard-status");
    let end = now_ms();
    let mut store = Store::open(&dir.0).unwrap();
    let mut samples = map_full("syscall_counts", end, 1234.0);
    // An overflow ten minutes ago has healed: not shown.
    samples.extend(map_full("tcp_events", end - 600 * SECOND, 99.0));
    samples.push(Sample {
        labels: Labels::new([
            (METRIC_NAME, "sonde_collector_success"),
            ("collector", "net"),
        ]),
        timestamp_ms: end,
        value: 0.0,
    });
    store.append(&samples).unwrap();
    let base = serve(store);
    let (status, html) = get(&format!("{base}/?range=15m")).unwrap();
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        html.matches("<section class=\"status\"").count(),
        1,
        "{html}"
    );
    assert!(html.contains("BPF map syscall_counts was full"), "{html}");
    assert!(!html.contains("tcp_events"), "{html}");
    assert!(
        html.contains("collector net failed its last round"),
        "{html}"
    );

    let quiet = TempDir::new("dashboard-status-quiet");
    let base = serve(known_store(&quiet.0, end));
    let (_, html) = get(&format!("{base}/?range=15m")).unwrap();
    assert!(
        !html.contains("class=\"status\""),
        "all is well: no Status view"
    );
}

#[test]
fn empty_store_shows_six_empty_charts() {
    let dir = TempDir::new("dashboard-empty");
    let base = serve(Store::open(&dir.0).unwrap());
    let (status, html) = get(&format!("{base}/?range=15m")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(panels(&html), 6);
    assert!(!html.contains("<svg role=\"img\""));
    assert_eq!(html.matches("class=\"empty\"").count(), 6);
    assert!(html.contains("No load average stored yet"));
}

#[test]
fn charts_show_the_values_the_samples_imply() {
    let dir = TempDir::new("dashboard-values");
    let end = now_ms();
    let store = known_store(&dir.0, end);
    let charts = dashboard::evaluate(&store, &Range::last(Preset::Minutes15, end)).unwrap();
    let line = |chart: &str, legend: &str| -> Vec<f64> {
        let data = charts.iter().find(|c| c.chart.id == chart).unwrap();
        let line = data
            .lines
            .iter()
            .find(|l| l.legend == legend)
            .unwrap_or_else(|| panic!("{chart} has no line {legend}"));
        line.points.iter().flatten().copied().collect()
    };
    let every = |chart: &str, legend: &str, expected: f64| {
        let values = line(chart, legend);
        assert!(
            values.len() > 100,
            "{chart}/{legend}: only {} points",
            values.len()
        );
        for v in values {
            assert!(
                approx(v, expected),
                "{chart}/{legend}: {v}, expected {expected}"
            );
        }
    };
    every("cpu", "user", 50.0);
    every("cpu", "system", 20.0);
    let modes: Vec<&str> = charts[0].lines.iter().map(|l| l.legend.as_str()).collect();
    assert_eq!(
        modes,
        ["user", "system"],
        "idle is what the stack leaves free"
    );
    every("memory", "used", 2.0 * 1024.0 * 1024.0 * 1024.0);
    every("memory", "total", 8.0 * 1024.0 * 1024.0 * 1024.0);
    every("load", "5m", 1.5);
    every("network", "eth0 received", 10240.0);
    every("network", "eth0 sent", 2048.0);
    every("disk", "sda read", 1048576.0);

    // The counter restarted 15 minutes ago: the line stays at 10/s, never
    // negative, never a spike; it may dip while the window holds the reset.
    let syscalls = line("syscalls", "fixture");
    assert!(
        syscalls.iter().all(|&v| (0.0..=10.0 + 1e-6).contains(&v)),
        "{syscalls:?}"
    );
    let exact = syscalls.iter().filter(|&&v| approx(v, 10.0)).count();
    assert!(exact >= syscalls.len() - 12, "{syscalls:?}");

    // A day is drawn from the 1-minute rollups: the same figures.
    let day = dashboard::evaluate(&store, &Range::last(Preset::Hours24, end)).unwrap();
    let last = |chart: &str, legend: &str| -> f64 {
        let data = day.iter().find(|c| c.chart.id == chart).unwrap();
        let line = data.lines.iter().find(|l| l.legend == legend).unwrap();
        line.points.last().copied().flatten().unwrap()
    };
    for (chart, legend, expected) in [
        ("cpu", "user", 50.0),
        ("memory", "used", 2.0 * 1024.0 * 1024.0 * 1024.0),
        ("load", "1m", 1.5),
        ("network", "eth0 received", 10240.0),
        ("syscalls", "fixture", 10.0),
    ] {
        let value = last(chart, legend);
        assert!(
            approx(value, expected),
            "24h {chart}/{legend}: {value}, expected {expected}"
        );
    }

    // The page writes the same figures in the legends.
    let html = get(&format!("{}/?range=15m", serve(store))).unwrap().1;
    for shown in [
        "<td>50%</td>",
        "<td>2 GiB</td>",
        "<td>8 GiB</td>",
        "<td>1.5</td>",
        "<td>10 KiB/s</td>",
        "<td>1 MiB/s</td>",
        "<td>10/s</td>",
    ] {
        assert!(html.contains(shown), "the page does not show {shown}");
    }
    assert!(!html.contains("<td>-"), "a negative value is shown");
}

#[test]
fn restarted_sonde_shows_what_it_stored_before() {
    let sonde = Sonde::start("");
    let store_dir = sonde.data.0.join("store");
    // Samples stored while the first sonde runs, as its collectors would.
    let end = now_ms();
    let labels = [
        (METRIC_NAME, "node_network_receive_bytes_total"),
        ("device", "before0"),
    ];
    Store::open(&store_dir)
        .unwrap()
        .append(&series(&labels, end, 300, |t| 1000.0 * t))
        .unwrap();
    let data = sonde.stop();

    let restarted = Sonde::start_in(data, "");
    let html = restarted.get_ok("/?range=15m");
    assert_eq!(panels(&html), 6);
    assert!(
        html.contains("before0 received") && html.contains("<td>1000 B/s</td>"),
        "the restarted sonde does not show the samples stored before:\n{html}"
    );
}

#[test]
fn bad_parameters_get_a_400_that_says_what_is_allowed() {
    let dir = TempDir::new("dashboard-bad");
    let base = serve(Store::open(&dir.0).unwrap());
    for (query, says) in [
        (
            "range=banana",
            "bad range \"banana\": choose one of 5m, 15m, 1h, 6h, 24h, 7d",
        ),
        ("range=", "bad range \"\""),
        (
            "range=1h&refresh=1s",
            "bad refresh \"1s\": choose one of off, 10s, 30s, 1m, 5m",
        ),
        ("zoom=2", "unknown parameter \"zoom\""),
        ("range=%FF%FE", "bad range"),
    ] {
        let (status, body) = get(&format!("{base}/?{query}")).unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    // The server is still there after all that.
    assert_eq!(get(&format!("{base}/?range=6h")).unwrap().0, 200);
}

/// The Graph view draws an expression over a range and tables its value
/// now, from Prometheus's own URL parameters; a bad expression or range is
/// a 400 that shows the error in the page.
#[test]
fn graph_view_draws_and_tables_an_expression() {
    let dir = TempDir::new("dashboard-graph");
    let base = serve(known_store(&dir.0, now_ms()));
    let (status, html) = get(&format!(
        "{base}/graph?g0.expr=node_load1&g0.tab=0&g0.range_input=15m"
    ))
    .unwrap();
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("<svg role=\"img\"").count(), 1, "{html}");
    assert!(html.contains("node_load1"), "{html}");
    assert!(
        html.contains("aria-current=\"page\">Graph<"),
        "the Graph tab is current"
    );
    let (status, html) = get(&format!(
        "{base}/graph?g0.expr=node_load1&g0.tab=1&g0.stacked=0"
    ))
    .unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<table class=\"result\""), "{html}");
    for (query, says) in [
        ("g0.expr=sum(", "unclosed left parenthesis"),
        ("g0.expr=up&g0.range_input=soon", "g0.range_input"),
    ] {
        let (status, html) = get(&format!("{base}/graph?{query}")).unwrap();
        assert_eq!(status, 400, "{query}: {html}");
        assert!(
            html.contains("class=\"error\"") && html.contains(says),
            "{query}: {html}"
        );
    }
    let (status, html) = get(&format!("{base}/graph")).unwrap();
    assert_eq!(status, 200);
    assert!(html.contains("name=\"g0.expr\""), "{html}");
}

/// Without rules the Alerts view says how to load some.
#[test]
fn alerts_view_without_rules_says_how_to_add_them() {
    let dir = TempDir::new("dashboard-alerts");
    let base = serve(Store::open(&dir.0).unwrap());
    let (status, html) = get(&format!("{base}/alerts")).unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("No alerting rules loaded"), "{html}");
}

/// A store with two containers, a unit and the root cgroup, and processes,
/// one of which lived for a single round; what the Who view must rank.
fn who_store(dir: &std::path::Path, end_ms: i64) -> Store {
    let mib = 1024.0 * 1024.0;
    let span = 20 * 60;
    let web = "/system.slice/docker-3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a.scope";
    let db =
        "/libpod_parent/libpod-aaaa2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
    let mut samples = Vec::new();
    // CPU seconds per second: web 0.5, db 0.25, nginx.service 0.1, the root 2.
    for (id, name, cpu, memory) in [
        (web, Some("web"), 0.5, 300.0 * mib),
        (db, Some("db"), 0.25, 900.0 * mib),
        ("/system.slice/nginx.service", None, 0.1, 50.0 * mib),
        ("/", None, 2.0, 4000.0 * mib),
    ] {
        let mut labels = vec![("id", id)];
        labels.extend(name.map(|n| ("name", n)));
        let with = |metric: &'static str| {
            let mut all = labels.clone();
            all.push((METRIC_NAME, metric));
            all
        };
        samples.extend(series(
            &with("container_cpu_usage_seconds_total"),
            end_ms,
            span,
            |t| cpu * t,
        ));
        samples.extend(series(
            &with("container_memory_working_set_bytes"),
            end_ms,
            span,
            |_| memory,
        ));
        let mut disk = with("container_fs_writes_bytes_total");
        disk.push(("device", "/dev/vda"));
        samples.extend(series(&disk, end_ms, span, |t| 1000.0 * t));
    }
    // A process that did all its I/O in one round: a single sample.
    samples.push(Sample {
        labels: Labels::new([
            (METRIC_NAME, "sonde_block_io_bytes_total"),
            ("comm", "flash"),
            ("device", "vda"),
            ("op", "write"),
        ]),
        timestamp_ms: end_ms - 60 * SECOND,
        value: 64.0 * mib,
    });
    // A steady one: 1 KiB/s over the range, existing before it.
    let steady = [
        (METRIC_NAME, "sonde_block_io_bytes_total"),
        ("comm", "steady"),
        ("unit", "nginx.service"),
        ("device", "vda"),
        ("op", "write"),
    ];
    samples.extend(series(&steady, end_ms, 2 * span, |t| 1e6 + 1024.0 * t));
    // A busy one: 30 % user and 10 % system, 12 MiB resident.
    for (mode, share) in [("user", 0.3), ("system", 0.1)] {
        let cpu = [
            (METRIC_NAME, "sonde_process_cpu_seconds_total"),
            ("comm", "burner"),
            ("mode", mode),
        ];
        samples.extend(series(&cpu, end_ms, 2 * span, |t| share * t));
    }
    let rss = [
        (METRIC_NAME, "sonde_process_resident_memory_bytes"),
        ("comm", "burner"),
    ];
    samples.extend(series(&rss, end_ms, span, |_| 12.0 * mib));
    let mut store = Store::open(dir).unwrap();
    store.append(&samples).unwrap();
    store
}

/// The Who view ranks containers, units and processes by what they used over
/// the range (a process's single sample counted whole), sorts by any column,
/// and every row opens a page with its charts.
#[test]
fn who_view_ranks_and_drills_down() {
    let dir = TempDir::new("dashboard-who");
    let base = serve(who_store(&dir.0, now_ms()));
    let (status, html) = get(&format!("{base}/who?range=15m")).unwrap();
    assert_eq!(status, 200, "{html}");
    let rows = |html: &str, table: &str| -> Vec<String> {
        let start = html.find(&format!("aria-label=\"{table}\"")).unwrap();
        let section = &html[start..start + html[start..].find("</section>").unwrap()];
        section
            .split("<tr><th scope=\"row\">")
            .skip(1)
            .map(|row| {
                let text = row.split("</tr>").next().unwrap();
                let plain: String = text
                    .split('<')
                    .map(|part| part.split_once('>').map_or(part, |(_, t)| t))
                    .collect::<Vec<_>>()
                    .join(" ");
                plain.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect()
    };
    // CPU over 15 minutes: 50 % and 25 %; memory at its highest; 1000 B/s written.
    assert_eq!(
        rows(&html, "Containers"),
        ["web 50% 300 MiB 879 KiB 0 B", "db 25% 900 MiB 879 KiB 0 B"],
        "{html}"
    );
    assert_eq!(
        rows(&html, "Units"),
        ["nginx.service 10% 50 MiB 879 KiB 0 B"]
    );
    let processes = rows(&html, "Processes");
    assert_eq!(processes.len(), 3, "{processes:?}");
    assert_eq!(processes[0], "burner 40% 12 MiB 0 B 0 B");
    assert!(
        processes.contains(&"flash 0% 0 B 64 MiB 0 B".to_string()),
        "{processes:?}"
    );
    assert!(
        processes.contains(&"steady nginx.service 0% 0 B 900 KiB 0 B".to_string()),
        "{processes:?}"
    );

    let (_, by_memory) = get(&format!("{base}/who?range=15m&sort=memory")).unwrap();
    assert!(
        rows(&by_memory, "Containers")[0].starts_with("db "),
        "{by_memory}"
    );
    let (_, by_disk) = get(&format!("{base}/who?range=15m&sort=disk")).unwrap();
    assert!(
        rows(&by_disk, "Processes")[0].starts_with("flash "),
        "{by_disk}"
    );

    // Every row links to its page, which draws its charts.
    for link in html
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
    {
        if !link.starts_with("/who/") {
            continue;
        }
        let link = link.replace("&#38;", "&");
        let (status, page) = get(&format!("{base}{link}")).unwrap();
        assert_eq!(status, 200, "{link}: {page}");
        assert_eq!(rows(&page, "Over the range").len(), 1, "{link}: {page}");
        assert!(
            page.contains("/graph?g0.expr="),
            "{link}: charts link to the Graph view"
        );
        // A single sample has no rate to draw; its row still says it all.
        if !link.contains("flash") {
            assert!(
                page.contains("<svg role=\"img\""),
                "{link} draws nothing: {page}"
            );
        }
    }
    let (_, unit) = get(&format!(
        "{base}/who/cgroup?id=%2Fsystem.slice%2Fnginx.service&range=15m"
    ))
    .unwrap();
    assert!(unit.contains("<h1>nginx.service</h1>"), "{unit}");
    assert_eq!(
        rows(&unit, "Over the range"),
        ["nginx.service 10% 50 MiB 879 KiB 0 B"]
    );
    let (_, flash) = get(&format!("{base}/who/process?comm=flash&range=15m")).unwrap();
    assert_eq!(rows(&flash, "Over the range"), ["flash 0% 0 B 64 MiB 0 B"]);
    assert_eq!(
        rows(&unit, "Over the range"),
        ["nginx.service 10% 50 MiB 879 KiB 0 B"]
    );
    let (_, flash) = get(&format!("{base}/who/process?comm=flash&range=15m")).unwrap();
    assert_eq!(rows(&flash, "Over the range"), ["flash 0% 0 B 64 MiB 0 B"]);
    assert_eq!(
        rows(&unit, "Processes"),
        ["steady nginx.service 0% 0 B 900 KiB 0 B"]
    );

    for (query, says) in [
        ("/who?sort=fame", "bad sort"),
        ("/who?zoom=2", "unknown parameter"),
        ("/who/cgroup?range=1h", "id: expected a cgroup path"),
        ("/who/process?unit=x", "comm: expected"),
    ] {
        let (status, text) = get(&format!("{base}{query}")).unwrap();
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains(says), "{query}: {text}");
    }
}

/// A syscall latency histogram where every `read` takes between 512 µs
/// and 1.02 ms, 10 a second, over the last 30 minutes.
fn histogram_store(dir: &std::path::Path, end_ms: i64) -> Store {
    let mut samples = Vec::new();
    for i in 0..27 {
        let le = if i == 26 {
            "+Inf".to_string()
        } else {
            format!("{}", 1e-6 * f64::from(1u32 << i))
        };
        // Buckets up to 512 µs (i = 9) hold nothing; from 1.02 ms on, all.
        let share = if i >= 10 { 1.0 } else { 0.0 };
        let labels = [
            (METRIC_NAME, "sonde_syscall_duration_seconds_bucket"),
            ("syscall", "read"),
            ("le", le.as_str()),
        ];
        samples.extend(series(&labels, end_ms, 1800, |t| share * 10.0 * t));
    }
    let count = [
        (METRIC_NAME, "sonde_syscall_duration_seconds_count"),
        ("syscall", "read"),
    ];
    samples.extend(series(&count, end_ms, 1800, |t| 10.0 * t));
    // Two processes fail the same way, one a second each.
    for (comm, unit) in [("nginx", "nginx.service"), ("curl", "")] {
        let mut errors = vec![
            (METRIC_NAME, "sonde_syscall_errors_total"),
            ("comm", comm),
            ("syscall", "openat"),
            ("errno", "ENOENT"),
        ];
        if !unit.is_empty() {
            errors.push(("unit", unit));
        }
        samples.extend(series(&errors, end_ms, 1800, |t| t));
    }
    let mut store = Store::open(dir).unwrap();
    store.append(&samples).unwrap();
    store
}

/// The Kernel view draws a heatmap whose only row is the bucket the
/// samples fill, with the p50 inside it; a chosen syscall titles it; the
/// errors tables count over the range, by syscall and by process; a bad
/// syscall name is a 400.
#[test]
fn kernel_view_draws_heatmaps_from_histograms() {
    let dir = TempDir::new("dashboard-kernel");
    let base = serve(histogram_store(&dir.0, now_ms()));
    let (status, html) = get(&format!("{base}/kernel?range=15m&syscall=read")).unwrap();
    assert_eq!(status, 200, "{html}");
    let card = &html[html.find("id=\"syscall-latency\"").unwrap()..];
    let card = &card[..card.find("</section>").unwrap()];
    assert!(card.contains("Syscall latency, read"), "{card}");
    assert!(card.contains("class=\"heatmap\""), "{card}");
    assert!(
        card.contains(">≤1.02ms</text>"),
        "the filled bucket's row: {card}"
    );
    assert!(
        !card.contains(">≤512µs</text>"),
        "empty rows below are left out"
    );
    // p50 of events spread evenly over (512 µs, 1.024 ms]: 768 µs.
    assert!(card.contains("p50 768µs"), "{card}");
    assert!(card.contains("histogram_quantile(0.99"), "{card}");
    assert!(
        html.contains("<option value=\"read\" selected>read ("),
        "the chooser offers read, chosen"
    );
    assert!(
        html.contains("<tr><td>openat</td><td>ENOENT</td><td class=\"number\">1800</td>"),
        "2 errors/s over 15 minutes: {html}"
    );
    // By process: each row links to the process's Who page.
    let by_process = &html[html.find("id=\"errors-by-process\"").unwrap()..];
    assert!(
        by_process.contains(
            "<th scope=\"row\"><a href=\"/who/process?comm=nginx&#38;unit=nginx.service&#38;container=&#38;range=15m\">nginx</a> \
             <span class=\"muted\">nginx.service</span></th><td>openat</td><td>ENOENT</td><td class=\"number\">900</td>"
        ),
        "1 error/s of nginx over 15 minutes: {by_process}"
    );
    let (status, body) = get(&format!("{base}/kernel?syscall=read%3Bdrop")).unwrap();
    assert_eq!(status, 400);
    assert!(
        body.contains("syscall: expected a syscall's name"),
        "{body}"
    );
}

/// A custom range (the form's UTC minutes, or RFC 3339 as zoom sends it)
/// draws exactly that span, marks no preset, and every link keeps it; bad
/// ends are a 400 naming the parameter.
#[test]
fn custom_ranges_are_drawn_and_kept_in_links() {
    let dir = TempDir::new("dashboard-custom");
    let end = now_ms() / 60_000 * 60_000;
    let base = serve(known_store(&dir.0, end));
    let from = sonde::civil::rfc3339(end - 20 * 60_000);
    let to = sonde::civil::rfc3339(end - 5 * 60_000);
    let (status, html) = get(&format!("{base}/?from={}&to={}", &from[..16], &to[..16])).unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("data-start=\"{}\"", end - 20 * 60_000))
            && html.contains(&format!("data-end=\"{}\"", end - 5 * 60_000)),
        "the charts span the custom range"
    );
    assert!(
        !html.contains("aria-current=\"page\">1h<"),
        "no preset is current"
    );
    assert!(
        html.contains(&format!("href=\"/kernel?from={from}&#38;to={to}\"")),
        "the tabs carry the range: {html}"
    );
    for (query, says) in [
        ("from=yesterday", "from: expected a time"),
        (
            "from=2027-01-15T09:00&to=2027-01-15T08:00",
            "from must be at least a minute before to",
        ),
        ("to=2027-01-15T09:00", "to needs a from"),
    ] {
        let (status, body) = get(&format!("{base}/who?{query}")).unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
}

/// The Status view shows the store by tier, the series and the collectors
/// it finds in the store, and the Overview's health line links to it.
#[test]
fn status_view_reports_the_store_and_collectors() {
    let dir = TempDir::new("dashboard-status");
    let end = now_ms();
    let mut store = known_store(&dir.0, end);
    let mut samples = Vec::new();
    for (collector, ok) in [("cpu", 1.0), ("syscalls", 0.0)] {
        let labels = [
            (METRIC_NAME, "sonde_collector_success"),
            ("collector", collector),
        ];
        samples.extend(series(&labels, end, 600, |_| ok));
    }
    // 2 ms of CPU a round, a round every 10 s.
    let cpu = [
        (METRIC_NAME, "sonde_collector_cpu_seconds_total"),
        ("collector", "cpu"),
    ];
    samples.extend(series(&cpu, end, 600, |seconds| seconds * 0.0002));
    store.append(&samples).unwrap();
    let base = serve(store);
    let (status, html) = get(&format!("{base}/status?range=15m")).unwrap();
    let cpu_row = html
        .split("<th scope=\"row\">cpu</th>")
        .nth(1)
        .and_then(|row| row.split("</tr>").next())
        .unwrap();
    assert!(html.contains("CPU a round"), "{html}");
    // The fifth cell: state, run time last, average, slowest, CPU a round.
    let cpu_ms: f64 = cpu_row
        .split("<td class=\"number\">")
        .nth(5)
        .and_then(|cell| cell.strip_suffix(" ms</td>")?.parse().ok())
        .unwrap_or_else(|| panic!("no CPU a round in {cpu_row}"));
    assert!((1.9..=2.1).contains(&cpu_ms), "{cpu_row}");
    assert_eq!(status, 200, "{html}");
    for part in [
        "Store by tier",
        "raw",
        "1m rollups",
        "active in the store",
        "No [[remote_write]] destination",
    ] {
        assert!(html.contains(part), "{part}: {html}");
    }
    assert!(
        html.contains(
            "<tr class=\"bad\"><th scope=\"row\">syscalls</th><td class=\"number\">failed</td>"
        ),
        "a failing collector is marked: {html}"
    );
    let (_, overview) = get(&format!("{base}/?range=15m")).unwrap();
    assert!(
        overview.contains("<b>collectors</b> 1 of 2 failing"),
        "the health line counts the failing collector: {overview}"
    );
}
