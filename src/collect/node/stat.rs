//! node_exporter's stat collector: boot time, context switches, forks,
//! interrupts and runnable/blocked process counts from /proc/stat (the text
//! the cpu collector read in the same round, see [`SharedProcStat`]).

use super::{parse_number, SharedProcStat};
use crate::collect::Collector;
use crate::model::Family;

pub struct Stat {
    proc_stat: SharedProcStat,
}

impl Stat {
    pub fn new(proc_stat: SharedProcStat) -> Stat {
        Stat { proc_stat }
    }
}

/// The system-wide lines of /proc/stat that node_exporter exports.
#[derive(Debug, Default, PartialEq)]
pub struct SystemStat {
    pub boot_time: u64,
    pub context_switches: u64,
    pub forks: u64,
    pub interrupts: u64,
    pub procs_running: u64,
    pub procs_blocked: u64,
}

impl Collector for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let stat = self.proc_stat.with(parse_system_stat)?;
        let families = [
            (
                "node_intr_total",
                "Total number of interrupts serviced.",
                stat.interrupts,
                true,
            ),
            (
                "node_context_switches_total",
                "Total number of context switches.",
                stat.context_switches,
                true,
            ),
            (
                "node_forks_total",
                "Total number of forks.",
                stat.forks,
                true,
            ),
            (
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                stat.boot_time,
                false,
            ),
            (
                "node_procs_running",
                "Number of processes in runnable state.",
                stat.procs_running,
                false,
            ),
            (
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                stat.procs_blocked,
                false,
            ),
        ];
        for (name, help, value, counter) in families {
            let mut family = if counter {
                Family::counter(name, help)
            } else {
                Family::gauge(name, help)
            };
            family.push(&[], value as f64);
            out.push(family);
        }
        Ok(())
    }
}

/// Parses the lines [`SystemStat`] holds; the others (cpuN, softirq) are
/// skipped without being split, and of `intr` only its first number, the
/// total, is read.
pub fn parse_system_stat(text: &str) -> anyhow::Result<SystemStat> {
    let mut stat = SystemStat::default();
    let mut found = 0;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(' ') else {
            continue;
        };
        let field = match key {
            "btime" => &mut stat.boot_time,
            "ctxt" => &mut stat.context_switches,
            "processes" => &mut stat.forks,
            "intr" => &mut stat.interrupts,
            "procs_running" => &mut stat.procs_running,
            "procs_blocked" => &mut stat.procs_blocked,
            _ => continue,
        };
        let first = rest.split_ascii_whitespace().next().unwrap_or("");
        *field = parse_number(first, key)?;
        found += 1;
    }
    if found < 6 {
        anyhow::bail!(
            "/proc/stat lacks some of btime, ctxt, processes, intr, procs_running, procs_blocked"
        );
    }
    Ok(stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_lines_are_parsed() {
        let text =
            "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 392679 0 9 0 0 12\nctxt 477798\nbtime 1795289235\n\
                    processes 16363\nprocs_running 3\nprocs_blocked 1\nsoftirq 5 1 2\n";
        assert_eq!(
            parse_system_stat(text).unwrap(),
            SystemStat {
                boot_time: 1795289235,
                context_switches: 477798,
                forks: 16363,
                interrupts: 392679,
                procs_running: 3,
                procs_blocked: 1,
            }
        );
    }

    #[test]
    fn missing_or_bad_lines_are_errors() {
        assert!(parse_system_stat("ctxt 1\n").is_err());
        let bad = "intr x\nctxt 1\nbtime 1\nprocesses 1\nprocs_running 1\nprocs_blocked 1\n";
        assert!(parse_system_stat(bad).is_err());
    }
}
