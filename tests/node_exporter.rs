//! sonde's node metrics agree with node_exporter 1.5 (Debian package
//! `prometheus-node-exporter`) on the same machine: both run side by side,
//! and every family both export has the same name, type, help and label sets,
//! gauges close and counters within what the time between scrapes explains.
//!
//! The order: scrape node_exporter ("before"), wait more than one sonde
//! interval, scrape sonde, scrape node_exporter again ("after"). sonde's last
//! round ran between the two node_exporter scrapes, so a counter must satisfy
//! before <= sonde <= after; a gauge must lie within [min, max] of before and
//! after, widened by a tolerance justified per family in [`gauge_tolerance`].

mod common;

use std::collections::{BTreeMap, BTreeSet};

/// For each node collector, families it must export on any Linux machine;
/// the comparison fails unless both exporters have them, so it cannot pass by
/// comparing nothing.
const COLLECTORS: &[(&str, &[&str])] = &[
    (
        "cpu",
        &["node_cpu_seconds_total", "node_cpu_guest_seconds_total"],
    ),
    (
        "meminfo",
        &[
            "node_memory_MemTotal_bytes",
            "node_memory_MemAvailable_bytes",
            "node_memory_HugePages_Total",
        ],
    ),
    ("loadavg", &["node_load1", "node_load5", "node_load15"]),
    (
        "stat",
        &[
            "node_boot_time_seconds",
            "node_context_switches_total",
            "node_forks_total",
            "node_intr_total",
            "node_procs_running",
            "node_procs_blocked",
        ],
    ),
    ("vmstat", &["node_vmstat_pgfault", "node_vmstat_oom_kill"]),
    (
        "diskstats",
        &[
            "node_disk_info",
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
            "node_disk_io_now",
            "node_disk_io_time_seconds_total",
        ],
    ),
    (
        "filesystem",
        &[
            "node_filesystem_size_bytes",
            "node_filesystem_avail_bytes",
            "node_filesystem_files_free",
            "node_filesystem_readonly",
            "node_filesystem_device_error",
        ],
    ),
    (
        "netdev",
        &[
            "node_network_receive_bytes_total",
            "node_network_transmit_bytes_total",
            "node_network_receive_drop_total",
            "node_network_receive_nohandler_total",
        ],
    ),
    (
        "pressure",
        &[
            "node_pressure_cpu_waiting_seconds_total",
            "node_pressure_io_waiting_seconds_total",
            "node_pressure_io_stalled_seconds_total",
            "node_pressure_memory_waiting_seconds_total",
            "node_pressure_memory_stalled_seconds_total",
        ],
    ),
    ("uname", &["node_uname_info"]),
    (
        "time",
        &[
            "node_time_seconds",
            "node_time_zone_offset_seconds",
            "node_time_clocksource_available_info",
            "node_time_clocksource_current_info",
        ],
    ),
];

/// The node collector that exports a node_exporter family, if sonde has it.
fn owner(family: &str) -> Option<&'static str> {
    let stat = [
        "node_boot_time_seconds",
        "node_context_switches_total",
        "node_forks_total",
        "node_intr_total",
        "node_procs_running",
        "node_procs_blocked",
    ];
    let owner = if family.starts_with("node_cpu_")
        // cpufreq's families share the prefix; it is another collector.
        && !family.starts_with("node_cpu_frequency")
        && !family.starts_with("node_cpu_scaling")
    {
        "cpu"
    } else if family.starts_with("node_memory_") {
        "meminfo"
    } else if ["node_load1", "node_load5", "node_load15"].contains(&family) {
        "loadavg"
    } else if stat.contains(&family) {
        "stat"
    } else if family.starts_with("node_vmstat_") {
        "vmstat"
    } else if family.starts_with("node_disk_") {
        "diskstats"
    } else if family.starts_with("node_filesystem_") {
        "filesystem"
    } else if is_netdev(family) {
        "netdev"
    } else if family.starts_with("node_pressure_") {
        "pressure"
    } else if family == "node_uname_info" {
        "uname"
    } else if family.starts_with("node_time_") {
        // Not node_timex_*: that is the timex collector.
        "time"
    } else {
        return None;
    };
    COLLECTORS
        .iter()
        .find(|(name, _)| *name == owner)
        .map(|(name, _)| *name)
}

/// netdev's `node_network_{receive,transmit}_<stat>_total`; netclass's
/// node_network_* families (node_network_up, ..._carrier_changes_total) are
/// another collector's.
fn is_netdev(family: &str) -> bool {
    let Some(stat) = family
        .strip_prefix("node_network_receive_")
        .or_else(|| family.strip_prefix("node_network_transmit_"))
        .and_then(|rest| rest.strip_suffix("_total"))
    else {
        return false;
    };
    !stat.is_empty() && stat.chars().all(|c| c.is_ascii_lowercase())
}

/// How far a gauge may stray outside [min, max] of node_exporter's two
/// readings; `None` for families that must match exactly.
fn gauge_tolerance(family: &str, before: &Exposition) -> Option<f64> {
    const GIB: f64 = (1u64 << 30) as f64;
    // Sizes fixed at boot: any difference is a unit or parsing error.
    const FIXED: &[&str] = &[
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_VmallocTotal_bytes",
        "node_memory_Hugepagesize_bytes",
        "node_memory_HugePages_Total",
    ];
    if FIXED.contains(&family) {
        return None;
    }
    if family.starts_with("node_memory_") {
        // Other processes (builds, the test harness) allocate and free
        // memory between the scrapes, not always monotonically: allow 5 % of
        // the machine's memory. Unit errors show in the fixed sizes above.
        let total = before
            .families
            .get("node_memory_MemTotal_bytes")
            .and_then(|f| f.series.values().next().copied())
            .unwrap_or(0.0);
        return Some(total * 0.05);
    }
    Some(match family {
        // Exponentially damped averages updated every 5 s: over the test's
        // few seconds load1 moves by under 10 % of the gap to the run-queue
        // length (a dozen tasks on a busy 2-core machine), load5 and load15
        // by far less.
        "node_load1" => 1.0,
        "node_load5" => 0.5,
        "node_load15" => 0.2,
        // Instantaneous run-queue and I/O-wait counts: any value from one
        // instant to the next; this only checks the same thing is counted.
        "node_procs_running" | "node_procs_blocked" => 64.0,
        // btime is derived from the wall clock minus uptime: NTP slewing
        // moves it by a second at most.
        "node_boot_time_seconds" => 1.0,
        // I/Os in flight at one instant: bounded by the device queue depth.
        "node_disk_io_now" => 256.0,
        // Builds and tests running beside this one write and delete files
        // on the same filesystems between the scrapes (a cargo build writes
        // gigabytes), not always monotonically.
        "node_filesystem_free_bytes" | "node_filesystem_avail_bytes" => 2.0 * GIB,
        "node_filesystem_files_free" => 200_000.0,
        // The three clock readings are taken in order; only float printing
        // separates them.
        "node_time_seconds" => 0.001,
        _ => return None,
    })
}

/// How far a counter may stray outside [before, after].
fn counter_slack(family: &str) -> f64 {
    match family {
        // The kernel's idle and iowait ticks can step back by a few ticks
        // (NO_HZ); both exporters hold each counter at its highest value, but
        // each from its own readings, so they may differ by that jitter.
        "node_cpu_seconds_total" | "node_cpu_guest_seconds_total" => 0.1,
        _ => 0.0,
    }
}

#[test]
fn node_metrics_agree_with_node_exporter() {
    let node_exporter = common::NodeExporter::start();
    let sonde = common::Sonde::start("");
    sonde.wait_rounds(1);

    let before = Exposition::parse(&node_exporter.scrape());
    // Well over one interval, so sonde's last published round started after
    // `before` even when a loaded machine delays a round.
    sonde.wait_rounds(3);
    let ours = Exposition::parse(&sonde.get_ok("/metrics"));
    let after = Exposition::parse(&node_exporter.scrape());

    let mut problems = Vec::new();
    let shared: BTreeSet<&str> = ours
        .families
        .keys()
        .filter(|name| before.families.contains_key(*name))
        .map(String::as_str)
        .collect();

    for (collector, families) in COLLECTORS {
        for family in *families {
            if !shared.contains(family) {
                problems.push(format!(
                    "{family} (collector {collector}): expected from both exporters, \
                     node_exporter {}, sonde {}",
                    exports(&before, family),
                    exports(&ours, family)
                ));
            }
        }
    }
    for (name, _) in before.families.iter() {
        if let Some(collector) = owner(name) {
            if !ours.families.contains_key(name) {
                problems.push(format!(
                    "{name}: node_exporter exports it (collector {collector}), sonde does not"
                ));
            }
        }
    }
    for name in ours.families.keys().filter(|n| n.starts_with("node_")) {
        if !before.families.contains_key(name) {
            problems.push(format!(
                "{name}: sonde exports it, node_exporter 1.5 does not"
            ));
        }
    }

    let mut series_compared = 0;
    for name in &shared {
        let (b, o, a) = (
            &before.families[*name],
            &ours.families[*name],
            after.families.get(*name).unwrap_or(&before.families[*name]),
        );
        if b.kind != o.kind {
            problems.push(format!(
                "{name}: type: node_exporter {}, sonde {}",
                b.kind, o.kind
            ));
        }
        if b.help != o.help {
            problems.push(format!(
                "{name}: help:\n    node_exporter {:?}\n    sonde         {:?}",
                b.help, o.help
            ));
        }
        // Series may come and go between scrapes (a device appears): sonde
        // must have every series node_exporter had both times, and only
        // series node_exporter had at least once.
        for labels in b.series.keys().filter(|l| a.series.contains_key(*l)) {
            if !o.series.contains_key(labels) {
                problems.push(format!(
                    "{}: node_exporter has this series, sonde does not",
                    show(name, labels)
                ));
            }
        }
        for (labels, value) in &o.series {
            let (Some(low), Some(high)) = (b.series.get(labels), a.series.get(labels)) else {
                if !b.series.contains_key(labels) && !a.series.contains_key(labels) {
                    problems.push(format!(
                        "{}: sonde has this series, node_exporter does not (it has {})",
                        show(name, labels),
                        b.series
                            .keys()
                            .map(|l| show(name, l))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                continue;
            };
            series_compared += 1;
            let (low, high) = (low.min(*high), low.max(*high));
            let slack = match o.kind.as_str() {
                // vmstat's fields are untyped in node_exporter but all of
                // its default ones count events.
                "counter" | "untyped" => counter_slack(name),
                _ => gauge_tolerance(name, &before).unwrap_or(0.0),
            };
            // Both sides print floats their own way; allow rounding.
            let rounding = 1e-9 * value.abs().max(1.0);
            if *value < low - slack - rounding || *value > high + slack + rounding {
                problems.push(format!(
                    "{}: {} {value} outside node_exporter's {low} .. {high} (allowed ±{slack})",
                    show(name, labels),
                    o.kind
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "sonde and node_exporter disagree ({} problems, {} families shared):\n  {}",
        problems.len(),
        shared.len(),
        problems.join("\n  ")
    );
    eprintln!(
        "compared {} families and {series_compared} series with node_exporter",
        shared.len()
    );
}

fn exports(exposition: &Exposition, family: &str) -> &'static str {
    if exposition.families.contains_key(family) {
        "has it"
    } else {
        "lacks it"
    }
}

fn show(name: &str, labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{name}{{{}}}", pairs.join(", "))
}

/// Label pairs sorted by name, without empty values: Prometheus treats
/// `model=""` and no `model` label as the same series, and node_exporter
/// prints the empty ones (node_disk_info without udev data).
type Labels = Vec<(String, String)>;

struct FamilyData {
    help: String,
    kind: String,
    series: BTreeMap<Labels, f64>,
}

/// A text exposition grouped by family.
struct Exposition {
    families: BTreeMap<String, FamilyData>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut families = BTreeMap::new();
        let family = |families: &mut BTreeMap<String, FamilyData>, name: &str| {
            families
                .entry(name.to_string())
                .or_insert_with(|| FamilyData {
                    help: String::new(),
                    kind: "untyped".to_string(),
                    series: BTreeMap::new(),
                });
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                family(&mut families, name);
                families.get_mut(name).unwrap().help = help.to_string();
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                family(&mut families, name);
                families.get_mut(name).unwrap().kind = kind.to_string();
            }
        }
        for sample in common::parse_exposition(text) {
            // Summaries and histograms add suffixes; node families have none.
            if !families.contains_key(&sample.name) {
                continue;
            }
            let mut labels: Labels = sample
                .labels
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
            labels.sort();
            let series = &mut families.get_mut(&sample.name).unwrap().series;
            assert!(
                series.insert(labels.clone(), sample.value).is_none(),
                "duplicate series {}",
                show(&sample.name, &labels)
            );
        }
        Exposition { families }
    }
}
