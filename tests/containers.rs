//! The containers collector end to end, with real containers run by Podman
//! (Debian's; no registry here: the image is imported from a directory
//! holding busybox-static and a workload script) and with a cgroup shaped
//! like a systemd unit's.
//!
//! A container burns a known amount of CPU (measured by busybox's `time`
//! around the work), holds a known amount of memory (a file on its tmpfs),
//! writes a known file with O_DIRECT and pings its gateway with a known
//! number of bytes; sonde's cAdvisor-named series must match what was done
//! and what the kernel's own files (the cgroup's, /proc/<pid>/net/dev) say
//! at the same moment. Another container has a memory limit and a CPU quota
//! and gets OOM-killed once.

mod common;
mod kernel;

use std::path::Path;
use std::process::Command;

use common::podman::{Container, Podman, IMAGE};
use common::{bpf_required, ExposedSample, Sonde};
use kernel::{value, TestCgroup, NO_BUDGET};

const MIB: f64 = 1024.0 * 1024.0;
/// What the workload holds on its tmpfs and writes with O_DIRECT.
const HELD_MIB: u64 = 64;
const WRITTEN_MIB: u64 = 16;
/// Pings of 1,400 data bytes: 1,442 bytes each on the wire (ICMP 8, IP 20,
/// Ethernet 14), each way.
const PINGS: u64 = 200;
const PING_FRAME: u64 = 1400 + 8 + 20 + 14;

/// The workload, run by busybox sh inside the container: everything it does
/// is timed, then it says so and sleeps until removed.
const WORKLOAD: &str = r#"#!/bin/sh
time -o /tmp/cpu sh -c '
  i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done
  dd if=/dev/zero of=/data/held bs=1M count=HELD_MIB 2>/dev/null
  dd if=/dev/zero of=/written bs=1M count=WRITTEN_MIB oflag=direct 2>/dev/null
  gw=$(ip route | awk "/default/ {print \$3}")
  ping -q -c PINGS -s 1400 -i 0.01 $gw > /dev/null
'
touch /tmp/done
exec sleep 600
"#;

/// The limited container: a CPU quota it runs into (a tenth of a CPU, so a
/// loaded machine's share still exceeds it), then a child holding
/// more memory than the limit (the OOM killer takes it, not the sleeper).
const LIMITED: &str = r#"#!/bin/sh
i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done
sh -c 'x=$(dd if=/dev/zero bs=1M count=100 2>/dev/null | tr "\0" a); echo survived' > /tmp/hog 2>&1
touch /tmp/done
exec sleep 600
"#;

/// One series' value, labels matched exactly on `id` and the extra ones.
fn of(samples: &[ExposedSample], name: &str, id: &str, extra: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.label("id") == Some(id)
                && extra.iter().all(|(k, v)| s.label(k) == Some(v))
        })
        .map(|s| s.value)
}

fn within(a: f64, b: f64, fraction: f64) -> bool {
    (a - b).abs() <= b.abs() * fraction
}

/// A `key value` line's value in a cgroup file.
fn field(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// A cgroup file of `controller` (v1) or of the v2 hierarchy (`controller` "").
fn cgroup_file(controller: &str, cgroup: &str, file: &str) -> String {
    let layout = sonde::collect::containers::cgroupfs::Layout::discover();
    let root = if controller.is_empty() {
        layout.v2.clone().expect("no cgroup v2")
    } else {
        layout
            .v1
            .get(controller)
            .cloned()
            .or(layout.v2.clone())
            .unwrap()
    };
    let path = root.join(cgroup.trim_start_matches('/')).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Busybox `time -o` output: user + sys seconds.
fn timed_cpu(text: &str) -> f64 {
    let seconds = |key: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        // "user\t0m 2.98s"
        let value = line[key.len()..].trim().trim_end_matches('s');
        let (minutes, secs) = value.split_once('m').unwrap();
        minutes.trim().parse::<f64>().unwrap() * 60.0 + secs.trim().parse::<f64>().unwrap()
    };
    seconds("user") + seconds("sys")
}

#[test]
fn podman_containers_match_their_work_and_the_kernel() {
    let workload = WORKLOAD
        .replace("HELD_MIB", &HELD_MIB.to_string())
        .replace("WRITTEN_MIB", &WRITTEN_MIB.to_string())
        .replace("PINGS", &PINGS.to_string());
    let Some(podman) = Podman::new(&[("workload", &workload), ("limited", LIMITED)]) else {
        return;
    };
    let sonde = Sonde::start(NO_BUDGET);
    let started = now_s();
    let tag = std::process::id();
    let name = format!("sonde-work-{tag}");
    let work = Container::start(&podman, &name, &[], &["/bin/workload"]);
    let limited_name = format!("sonde-limited-{tag}");
    let limited = Container::start(
        &podman,
        &limited_name,
        &["--memory", "48m", "--memory-swap", "48m", "--cpus", "0.1"],
        &["/bin/limited"],
    );
    work.wait_done();
    limited.wait_done();
    let id = work.cgroup();
    let limited_id = limited.cgroup();
    // Two rounds after the work, so every counter is in a round.
    sonde.wait_rounds(2);
    let samples = sonde.metrics();
    let pid = work.pid();

    // Labels: the cgroup, the name Podman gave it, the image.
    let labelled = |metric: &str| of(&samples, metric, &id, &[("name", &name), ("image", IMAGE)]);
    let cpu =
        labelled("container_cpu_usage_seconds_total").expect("no CPU series with name and image");

    // CPU: what busybox's time measured of the work, within 5 % (runc's
    // start adds a little).
    let timed = timed_cpu(&work.read("/tmp/cpu").unwrap());
    assert!(
        within(cpu, timed, 0.05),
        "container CPU {cpu} s, the work measured {timed} s"
    );
    let user = labelled("container_cpu_user_seconds_total").unwrap();
    let system = labelled("container_cpu_system_seconds_total").unwrap();
    assert!(
        within(user + system, cpu, 0.05),
        "user {user} + system {system} vs {cpu}"
    );
    // The kernel's own counts now (the container is idle, sleeping).
    let cpu_stat = cgroup_file("", &id, "cpu.stat");
    for (sonde_value, key) in [
        (cpu, "usage_usec"),
        (user, "user_usec"),
        (system, "system_usec"),
    ] {
        let kernel = field(&cpu_stat, key) / 1e6;
        assert!(
            (sonde_value - kernel).abs() <= 0.01 * kernel + 0.002,
            "sonde {sonde_value} s, cpu.stat {key} {kernel} s"
        );
    }

    // Memory: the held tmpfs file is in usage and in the page cache.
    let usage = labelled("container_memory_usage_bytes").unwrap();
    let cache = labelled("container_memory_cache").unwrap();
    let held = HELD_MIB as f64 * MIB;
    assert!(
        usage >= held && usage < held + 16.0 * MIB,
        "usage {usage} for {held} held"
    );
    assert!(cache >= held, "cache {cache} for {held} held");
    let (usage_file, stat_file) = if cgroup_file("", &id, "cgroup.controllers").contains("memory") {
        ("memory.current", "memory.stat")
    } else {
        ("memory.usage_in_bytes", "memory.stat")
    };
    let kernel_usage: f64 = cgroup_file("memory", &id, usage_file)
        .trim()
        .parse()
        .unwrap();
    assert!(
        within(usage, kernel_usage, 0.01),
        "sonde {usage}, {usage_file} {kernel_usage}"
    );
    let stat = cgroup_file("memory", &id, stat_file);
    let (rss_key, inactive_key) = if usage_file == "memory.current" {
        ("anon", "inactive_file")
    } else {
        ("total_rss", "total_inactive_file")
    };
    let rss = labelled("container_memory_rss").unwrap();
    assert!(
        (rss - field(&stat, rss_key)).abs() <= 64.0 * 4096.0,
        "rss {rss} vs {}",
        field(&stat, rss_key)
    );
    let cache_key = if usage_file == "memory.current" {
        "file"
    } else {
        "total_cache"
    };
    assert!(
        within(cache, field(&stat, cache_key), 0.01),
        "cache {cache} vs {cache_key} {}",
        field(&stat, cache_key)
    );
    let working_set = labelled("container_memory_working_set_bytes").unwrap();
    let kernel_ws = kernel_usage - field(&stat, inactive_key);
    assert!(
        within(working_set, kernel_ws, 0.01),
        "working set {working_set} vs {kernel_ws}"
    );

    // Disk: the O_DIRECT file, byte for byte (charged by the block collector
    // where the cgroup's own counters are empty), and the eBPF metrics name
    // the container as Podman does.
    let written = WRITTEN_MIB as f64 * MIB;
    let fs_writes: f64 = samples
        .iter()
        .filter(|s| s.name == "container_fs_writes_bytes_total" && s.label("id") == Some(&id))
        .map(|s| s.value)
        .sum();
    assert_eq!(fs_writes, written, "container_fs_writes_bytes_total");
    let bpf_written = value(
        &samples,
        "sonde_block_io_bytes_total",
        &[("container", &name), ("comm", "dd"), ("op", "write")],
    );
    assert_eq!(
        bpf_written, written,
        "sonde_block_io_bytes_total of the container's dd"
    );
    let short_id = &work.id[..12];
    assert_eq!(
        value(
            &samples,
            "sonde_container_info",
            &[
                ("container", &name),
                ("container_id", short_id),
                ("id", &id)
            ]
        ),
        1.0
    );

    // Network: the pings, each way, within 1 % (ARP and the like add a few
    // frames), and what the namespace's /proc/<pid>/net/dev says.
    let net_dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    let eth0 = net_dev
        .lines()
        .find(|l| l.trim_start().starts_with("eth0:"))
        .expect("no eth0");
    let counts: Vec<f64> = eth0
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    let sent = labelled_with(
        &samples,
        "container_network_transmit_bytes_total",
        &id,
        "eth0",
    );
    let received = labelled_with(
        &samples,
        "container_network_receive_bytes_total",
        &id,
        "eth0",
    );
    let pinged = (PINGS * PING_FRAME) as f64;
    assert!(
        within(sent, pinged, 0.01),
        "sent {sent} for {pinged} pinged"
    );
    assert!(
        within(received, pinged, 0.01),
        "received {received} for {pinged} pinged"
    );
    // The round is up to an interval old: an ARP exchange may come after it.
    assert!(
        within(received, counts[0], 0.01) && within(sent, counts[8], 0.01),
        "received {received}, sent {sent}, vs {eth0}"
    );
    assert!(of(
        &samples,
        "container_network_receive_bytes_total",
        &id,
        &[("interface", "lo")]
    )
    .is_none());

    // Processes (the sleeper), start time, last seen.
    let procs = cgroup_file("", &id, "cgroup.procs").lines().count() as f64;
    assert_eq!(labelled("container_processes"), Some(procs));
    let start = labelled("container_start_time_seconds").unwrap();
    assert!(
        start >= started - 2.0 && start <= now_s(),
        "start {start}, test began {started}"
    );
    assert!(labelled("container_last_seen").unwrap() >= start);

    // The limited container: its limit, its quota, throttled, one OOM kill.
    let limited_of = |metric: &str| of(&samples, metric, &limited_id, &[("name", &limited_name)]);
    assert_eq!(
        limited_of("container_spec_memory_limit_bytes"),
        Some(48.0 * MIB)
    );
    assert_eq!(limited_of("container_spec_cpu_quota"), Some(10_000.0));
    assert!(
        limited_of("container_cpu_cfs_throttled_seconds_total").unwrap() > 0.0,
        "no throttling"
    );
    assert_eq!(
        limited_of("container_oom_events_total"),
        Some(1.0),
        "the hog: {}",
        limited.read("/tmp/hog").unwrap_or_default()
    );
    // The same from the kernel's files (v1 controllers here, v2 elsewhere).
    let v2_memory = cgroup_file("", &limited_id, "cgroup.controllers").contains("memory");
    let (limit, oom_kills) = if v2_memory {
        let limit = cgroup_file("", &limited_id, "memory.max");
        let events = cgroup_file("", &limited_id, "memory.events");
        (
            limit.trim().parse::<f64>().unwrap(),
            field(&events, "oom_kill"),
        )
    } else {
        let limit = cgroup_file("memory", &limited_id, "memory.limit_in_bytes");
        let control = cgroup_file("memory", &limited_id, "memory.oom_control");
        (
            limit.trim().parse::<f64>().unwrap(),
            field(&control, "oom_kill"),
        )
    };
    assert_eq!(limited_of("container_spec_memory_limit_bytes"), Some(limit));
    assert_eq!(limited_of("container_oom_events_total"), Some(oom_kills));
    if !cgroup_file("", &limited_id, "cgroup.controllers").contains("cpu") {
        let quota = cgroup_file("cpu", &limited_id, "cpu.cfs_quota_us");
        assert_eq!(
            limited_of("container_spec_cpu_quota"),
            quota.trim().parse().ok()
        );
        let throttled = field(
            &cgroup_file("cpu", &limited_id, "cpu.stat"),
            "throttled_time",
        ) / 1e9;
        let sonde_throttled = limited_of("container_cpu_cfs_throttled_seconds_total").unwrap();
        assert!(
            within(sonde_throttled, throttled, 0.01),
            "throttled {sonde_throttled} s, cpu.stat {throttled} s"
        );
    }
    // Unlimited: no quota series, limit 0.
    assert!(labelled("container_spec_cpu_quota").is_none());
    assert_eq!(labelled("container_spec_memory_limit_bytes"), Some(0.0));
    drop(sonde);
}

fn labelled_with(samples: &[ExposedSample], name: &str, id: &str, interface: &str) -> f64 {
    of(samples, name, id, &[("interface", interface)])
        .unwrap_or_else(|| panic!("no {name} for {interface}"))
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A cgroup shaped like a systemd unit's, with a process moved in that burns
/// CPU and reports its own CPU time: the unit's series has it.
#[test]
fn a_systemd_shaped_unit_is_reported_with_its_cpu() {
    let layout = sonde::collect::containers::cgroupfs::Layout::discover();
    let Some(tree) = layout.tree().map(Path::to_path_buf) else {
        assert!(!bpf_required(), "no cgroup hierarchy");
        return;
    };
    let unit = format!("sonde-unit-{}.service", std::process::id());
    let relative = format!("system.slice/{unit}");
    let cgroup = TestCgroup::new(&tree, &relative);
    // The v1 cpuacct and memory controllers too, where they are separate.
    let v1: Vec<TestCgroup> = ["cpuacct", "memory"]
        .iter()
        .filter_map(|c| layout.v1.get(*c))
        .filter(|root| root.as_path() != tree)
        .map(|root| TestCgroup::new(root, &relative))
        .collect();
    let sonde = Sonde::start("");
    let mut script = String::from("for dir in \"$@\"; do echo $$ > \"$dir/cgroup.procs\"; done\n");
    script.push_str("i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done\n");
    // utime and stime of this shell, in USER_HZ ticks, as it ends.
    script.push_str("read -r stat < /proc/$$/stat; echo \"${stat##*) }\"\n");
    let out = Command::new("bash")
        .args(["-c", &script, "burn"])
        .arg(&cgroup.path)
        .args(v1.iter().map(|c| &c.path))
        .output()
        .unwrap();
    let fields: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // After "pid (comm) ": state is field 0, utime 11, stime 12.
    let burned = (fields[11] + fields[12]) / 100.0;
    sonde.wait_rounds(2);
    let samples = sonde.metrics();
    let id = format!("/{relative}");
    let cpu = of(
        &samples,
        "container_cpu_usage_seconds_total",
        &id,
        &[("cpu", "total")],
    )
    .expect("no series for the unit");
    assert!(
        within(cpu, burned, 0.05) || (cpu - burned).abs() < 0.03,
        "unit CPU {cpu} s, the process burned {burned} s"
    );
    assert_eq!(of(&samples, "container_processes", &id, &[]), Some(0.0));
    // The slice above it is reported too and includes it.
    let slice = of(
        &samples,
        "container_cpu_usage_seconds_total",
        "/system.slice",
        &[],
    )
    .expect("no system.slice");
    assert!(slice >= cpu);
    drop(v1);
}
