//! node_exporter's cpu collector: `node_cpu_seconds_total{cpu,mode}` and
//! `node_cpu_guest_seconds_total{cpu,mode}` from the `cpuN` lines of
//! /proc/stat, plus `node_cpu_isolated` (/sys/devices/system/cpu/isolated)
//! and the thermal throttle counters of the CPUs that have them.
//!
//! /proc/stat counts in USER_HZ ticks; the metrics are in seconds. The kernel's
//! idle and iowait counters can step backwards (NO_HZ accounting), so, as
//! node_exporter does, each counter only ever moves forward, and a CPU whose
//! idle time drops by 3 s or more is taken to have been unplugged and
//! replugged: its counters restart from the new values.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::{parse_number, ProcFile, SharedProcStat};
use crate::collect::Collector;
use crate::model::Family;

/// The fields of a `cpuN` line of /proc/stat, in file order, and the `mode`
/// label of each; the last two are guest time (also counted in user and nice).
const MODES: [&str; 10] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "user", "nice",
];
const GUEST_FIELDS: usize = 2;
const IDLE: usize = 3;

/// An idle counter dropping by this many seconds means a CPU hotplug.
const JUMP_BACK_SECONDS: f64 = 3.0;

pub struct Cpu {
    proc_stat: SharedProcStat,
    seconds_per_tick: f64,
    /// Per CPU number: the highest value of each field seen so far, seconds.
    counters: BTreeMap<u32, [f64; 10]>,
    isolated: Vec<u32>,
    throttles: Throttles,
}

impl Cpu {
    pub fn new(proc_stat: SharedProcStat) -> Cpu {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let isolated = std::fs::read_to_string("/sys/devices/system/cpu/isolated")
            .ok()
            .and_then(|text| parse_cpu_list(&text).ok())
            .unwrap_or_default();
        Cpu {
            proc_stat,
            // USER_HZ is 100 on every Linux architecture sonde builds for.
            seconds_per_tick: 1.0 / if ticks > 0 { ticks as f64 } else { 100.0 },
            counters: BTreeMap::new(),
            isolated,
            throttles: Throttles::discover(Path::new("/sys/devices/system/cpu")),
        }
    }

    /// Folds one reading into the forward-only counters.
    fn update(&mut self, cpu: u32, reading: [f64; 10]) {
        let kept = self.counters.entry(cpu).or_insert([0.0; 10]);
        if kept[IDLE] - reading[IDLE] >= JUMP_BACK_SECONDS {
            *kept = [0.0; 10];
        }
        for (kept, new) in kept.iter_mut().zip(reading) {
            if new >= *kept {
                *kept = new;
            }
        }
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let seconds_per_tick = self.seconds_per_tick;
        let readings = self
            .proc_stat
            .with(|text| parse_cpu_lines(text, seconds_per_tick))?;
        // A CPU that went offline leaves /proc/stat; forget it with it.
        self.counters
            .retain(|cpu, _| readings.iter().any(|(seen, _)| seen == cpu));
        for (cpu, reading) in readings {
            self.update(cpu, reading);
        }

        let mut seconds = Family::counter(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
        );
        let mut guest = Family::counter(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
        );
        for (cpu, counters) in &self.counters {
            let cpu = cpu.to_string();
            for (i, (mode, value)) in MODES.iter().zip(counters).enumerate() {
                let family = if i < MODES.len() - GUEST_FIELDS {
                    &mut seconds
                } else {
                    &mut guest
                };
                family.push(&[("cpu", &cpu), ("mode", mode)], *value);
            }
        }
        out.push(seconds);
        out.push(guest);

        if !self.isolated.is_empty() {
            let mut isolated = Family::gauge(
                "node_cpu_isolated",
                "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
            );
            for cpu in &self.isolated {
                isolated.push(&[("cpu", &cpu.to_string())], 1.0);
            }
            out.push(isolated);
        }
        self.throttles.collect(out)
    }
}

/// The per-CPU lines of /proc/stat as (CPU number, seconds per field).
/// Fields a kernel does not report (old kernels lack steal and guest) are 0.
pub fn parse_cpu_lines(text: &str, seconds_per_tick: f64) -> anyhow::Result<Vec<(u32, [f64; 10])>> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(number) = fields.next().and_then(|name| name.strip_prefix("cpu")) else {
            continue;
        };
        if number.is_empty() {
            continue; // the "cpu" line sums all CPUs
        }
        let cpu: u32 = parse_number(number, "/proc/stat cpu number")?;
        let mut values = [0.0; 10];
        for (value, field) in values.iter_mut().zip(fields) {
            let ticks: u64 = parse_number(field, "/proc/stat cpu ticks")?;
            *value = ticks as f64 * seconds_per_tick;
        }
        cpus.push((cpu, values));
    }
    if cpus.is_empty() {
        anyhow::bail!("/proc/stat has no cpuN line");
    }
    Ok(cpus)
}

/// Parses the kernel's CPU list format: `0-2,5,7-8`.
pub fn parse_cpu_list(text: &str) -> anyhow::Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for range in text.trim().split(',').filter(|r| !r.is_empty()) {
        match range.split_once('-') {
            Some((first, last)) => {
                let first: u32 = parse_number(first, "CPU list")?;
                let last: u32 = parse_number(last, "CPU list")?;
                cpus.extend(first..=last);
            }
            None => cpus.push(parse_number(range, "CPU list")?),
        }
    }
    Ok(cpus)
}

/// Thermal throttle counters (x86 CPUs with thermal monitoring): one per
/// physical package and one per core, found once at start.
struct Throttles {
    packages: Vec<(String, ProcFile)>,
    cores: Vec<(String, String, ProcFile)>,
}

impl Throttles {
    fn discover(cpu_dir: &Path) -> Throttles {
        let mut throttles = Throttles {
            packages: Vec::new(),
            cores: Vec::new(),
        };
        let Ok(entries) = std::fs::read_dir(cpu_dir) else {
            return throttles;
        };
        let mut cpus: Vec<(u32, std::path::PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let number = name.to_str()?.strip_prefix("cpu")?.parse().ok()?;
                Some((number, entry.path()))
            })
            .collect();
        cpus.sort();
        for (_, dir) in cpus {
            let read = |file: &str| {
                std::fs::read_to_string(dir.join(file))
                    .ok()
                    .map(|text| text.trim().to_string())
            };
            let (Some(package), Some(core)) = (
                read("topology/physical_package_id"),
                read("topology/core_id"),
            ) else {
                continue;
            };
            let core_file = dir.join("thermal_throttle/core_throttle_count");
            if core_file.exists()
                && !throttles
                    .cores
                    .iter()
                    .any(|(p, c, _)| *p == package && *c == core)
            {
                throttles
                    .cores
                    .push((package.clone(), core, ProcFile::new(core_file)));
            }
            let package_file = dir.join("thermal_throttle/package_throttle_count");
            if package_file.exists() && !throttles.packages.iter().any(|(p, _)| *p == package) {
                throttles
                    .packages
                    .push((package, ProcFile::new(package_file)));
            }
        }
        throttles
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        if !self.packages.is_empty() {
            let mut family = Family::counter(
                "node_cpu_package_throttles_total",
                "Number of times this CPU package has been throttled.",
            );
            for (package, file) in &mut self.packages {
                let count: u64 = parse_number(file.read()?.trim(), "package_throttle_count")?;
                family.push(&[("package", package)], count as f64);
            }
            out.push(family);
        }
        if !self.cores.is_empty() {
            let mut family = Family::counter(
                "node_cpu_core_throttles_total",
                "Number of times this CPU core has been throttled.",
            );
            for (package, core, file) in &mut self.cores {
                let count: u64 = parse_number(file.read()?.trim(), "core_throttle_count")
                    .with_context(|| file.path().display().to_string())?;
                family.push(&[("package", package), ("core", core)], count as f64);
            }
            out.push(family);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_STAT: &str = "\
cpu  57963 0 8932 54168 561 0 63 45 0 0
cpu0 29568 0 3927 27291 52 0 9 22 7 1
cpu1 28395 0 5005 26877 509 0 54 23 0 0
intr 392679 0 9 0 0
ctxt 477798
btime 1795289235
processes 16363
procs_running 3
procs_blocked 0
softirq 1 2 3 4 5 6 7 8 9 10 11
";

    #[test]
    fn cpu_lines_are_parsed_in_seconds() {
        let cpus = parse_cpu_lines(PROC_STAT, 0.01).unwrap();
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[0].0, 0);
        assert_eq!(cpus[0].1[0], 295.68); // user, exactly as 29568 / 100
        assert_eq!(cpus[0].1[IDLE], 272.91);
        assert_eq!(cpus[0].1[8], 0.07); // guest
        assert_eq!(cpus[1].0, 1);
        assert_eq!(cpus[1].1[4], 5.09); // iowait
    }

    #[test]
    fn short_cpu_lines_of_old_kernels_leave_missing_fields_zero() {
        let cpus = parse_cpu_lines("cpu3 1 2 3 4\n", 0.01).unwrap();
        assert_eq!(
            cpus,
            [(3, [0.01, 0.02, 0.03, 0.04, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_cpu_lines("cpu0 1 x 3\n", 0.01).is_err());
        assert!(parse_cpu_lines("intr 1\n", 0.01).is_err());
    }

    #[test]
    fn counters_only_move_forward_unless_idle_jumps_back_by_seconds() {
        let mut cpu = Cpu::new(SharedProcStat::new());
        let mut reading = [10.0; 10];
        cpu.update(0, reading);
        reading[IDLE] = 9.99; // NO_HZ jitter: keep the higher value
        reading[0] = 11.0;
        cpu.update(0, reading);
        assert_eq!(cpu.counters[&0][IDLE], 10.0);
        assert_eq!(cpu.counters[&0][0], 11.0);
        reading[IDLE] = 1.0; // hotplug: start over from the new values
        cpu.update(0, reading);
        assert_eq!(cpu.counters[&0][IDLE], 1.0);
    }

    #[test]
    fn cpu_lists_expand_ranges() {
        assert_eq!(parse_cpu_list("0-2,5,7-8\n").unwrap(), [0, 1, 2, 5, 7, 8]);
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("a-b").is_err());
    }

    #[test]
    fn throttles_are_found_once_per_core_and_package() {
        let root = std::env::temp_dir().join(format!("sonde-cpu-{}", std::process::id()));
        for (cpu, core) in [(0, 0), (1, 0), (2, 1)] {
            let dir = root.join(format!("cpu{cpu}"));
            std::fs::create_dir_all(dir.join("topology")).unwrap();
            std::fs::create_dir_all(dir.join("thermal_throttle")).unwrap();
            std::fs::write(dir.join("topology/physical_package_id"), "0\n").unwrap();
            std::fs::write(dir.join("topology/core_id"), format!("{core}\n")).unwrap();
            std::fs::write(dir.join("thermal_throttle/core_throttle_count"), "4\n").unwrap();
            std::fs::write(dir.join("thermal_throttle/package_throttle_count"), "9\n").unwrap();
        }
        let mut throttles = Throttles::discover(&root);
        let mut out = Vec::new();
        throttles.collect(&mut out).unwrap();
        let shown: Vec<String> = out
            .iter()
            .flat_map(|f| f.series.iter().map(|s| format!("{} {}", s.labels, s.value)))
            .collect();
        assert_eq!(
            shown,
            [
                r#"node_cpu_package_throttles_total{package="0"} 9"#,
                r#"node_cpu_core_throttles_total{core="0", package="0"} 4"#,
                r#"node_cpu_core_throttles_total{core="1", package="0"} 4"#,
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
