//! `sonde bench node`: what each node collector costs per round, in CPU
//! time, measured in this process over many rounds. `benches/node_collectors.sh`
//! sets it beside node_exporter's cost for the same collectors.

use std::time::Duration;

use crate::model::Family;

/// Runs every node collector `rounds` times and returns each one's name and
/// mean CPU time per round (process CPU time, so the statfs helper thread's
/// work counts too).
pub fn bench(rounds: u32) -> anyhow::Result<Vec<(&'static str, Duration)>> {
    let mut collectors = super::collectors();
    let mut spent = vec![Duration::ZERO; collectors.len()];
    let mut out: Vec<Family> = Vec::new();
    for _ in 0..rounds {
        for (collector, spent) in collectors.iter_mut().zip(&mut spent) {
            out.clear();
            let started = process_cpu_time();
            collector.collect(&mut out)?;
            *spent += process_cpu_time().saturating_sub(started);
        }
    }
    Ok(collectors
        .iter()
        .zip(spent)
        .map(|(collector, spent)| (collector.name(), spent / rounds.max(1)))
        .collect())
}

fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_collector_is_measured() {
        let costs = bench(2).unwrap();
        let names: Vec<&str> = costs.iter().map(|(name, _)| *name).collect();
        for expected in ["cpu", "stat", "meminfo", "loadavg", "vmstat", "diskstats"] {
            assert!(names.contains(&expected), "{names:?}");
        }
        for expected in ["filesystem", "netdev", "uname", "time"] {
            assert!(names.contains(&expected), "{names:?}");
        }
        assert!(costs.iter().any(|(_, spent)| !spent.is_zero()));
    }
}
