//! node_exporter's pressure collector: pressure stall information from
//! /proc/pressure/{cpu,io,memory} as counters of seconds (the kernel counts
//! microseconds): time some tasks waited, and time all non-idle tasks stalled
//! ("full"; node_exporter 1.5 exports it for io and memory only).

use std::io::ErrorKind;

use super::{parse_number, ProcFile};
use crate::collect::Collector;
use crate::model::Family;

/// Per resource: its file, and the family names and help texts of its
/// "some" and (optionally) "full" totals.
type Resource = (
    ProcFile,
    (&'static str, &'static str),
    Option<(&'static str, &'static str)>,
);

pub struct Pressure {
    resources: Vec<Resource>,
}

impl Pressure {
    /// Fails when the kernel has no pressure stall information (before 4.20,
    /// without CONFIG_PSI, or booted without psi=1 where it is off by default).
    pub fn new() -> anyhow::Result<Pressure> {
        let mut cpu = ProcFile::new("/proc/pressure/cpu");
        if let Err(err) = cpu.read_bytes() {
            let missing = err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| {
                    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::EOPNOTSUPP)
                });
            if missing {
                anyhow::bail!(
                    "the kernel reports no pressure stall information: it needs Linux 4.20 or later \
                     with CONFIG_PSI, and psi=1 on the kernel command line where PSI is off by default"
                );
            }
            return Err(err);
        }
        Ok(Pressure {
            resources: vec![
                (
                    cpu,
                    (
                        "node_pressure_cpu_waiting_seconds_total",
                        "Total time in seconds that processes have waited for CPU time",
                    ),
                    None,
                ),
                (
                    ProcFile::new("/proc/pressure/io"),
                    (
                        "node_pressure_io_waiting_seconds_total",
                        "Total time in seconds that processes have waited due to IO congestion",
                    ),
                    Some((
                        "node_pressure_io_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to IO congestion",
                    )),
                ),
                (
                    ProcFile::new("/proc/pressure/memory"),
                    (
                        "node_pressure_memory_waiting_seconds_total",
                        "Total time in seconds that processes have waited for memory",
                    ),
                    Some((
                        "node_pressure_memory_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to memory congestion",
                    )),
                ),
            ],
        })
    }
}

impl Collector for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        for (file, (some_name, some_help), full) in &mut self.resources {
            let (some, full_total) = parse_psi(file.read()?)?;
            let mut family = Family::counter(*some_name, *some_help);
            family.push(&[], some as f64 / 1e6);
            out.push(family);
            if let (Some((name, help)), Some(total)) = (full, full_total) {
                let mut family = Family::counter(*name, *help);
                family.push(&[], total as f64 / 1e6);
                out.push(family);
            }
        }
        Ok(())
    }
}

/// The `total=` microseconds of the "some" line and, when present, of the
/// "full" line.
pub fn parse_psi(text: &str) -> anyhow::Result<(u64, Option<u64>)> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let slot = match kind {
            "some" => &mut some,
            "full" => &mut full,
            _ => continue, // kinds a later kernel may add
        };
        let total = rest
            .split_ascii_whitespace()
            .find_map(|field| field.strip_prefix("total="))
            .ok_or_else(|| anyhow::anyhow!("pressure line without total=: {line:?}"))?;
        *slot = Some(parse_number(total, "pressure total")?);
    }
    let some = some.ok_or_else(|| anyhow::anyhow!("pressure file without a \"some\" line"))?;
    Ok((some, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_and_full_totals() {
        let text = "some avg10=2.88 avg60=2.92 avg300=4.80 total=41675179\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=12\n";
        assert_eq!(parse_psi(text).unwrap(), (41675179, Some(12)));
        assert_eq!(
            parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").unwrap(),
            (5, None)
        );
        assert!(parse_psi("some avg10=0.00\n").is_err());
        assert!(parse_psi("full avg10=0.00 total=x\n").is_err());
        assert!(parse_psi("").is_err());
    }
}
