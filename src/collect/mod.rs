//! Collection: everything that reads the machine. Each collector turns one
//! source (/proc, /sys, a BPF program) into metric families; [`Collection`]
//! runs them all once per round; [`schedule`] says when rounds are due and
//! which instant each carries.

pub mod bpf;
pub mod budget;
pub mod cgroup;
pub mod containers;
pub mod events;
pub mod http;
pub mod node;
pub mod processes;
pub mod programs;
pub mod schedule;

use std::time::{Duration, Instant};

use crate::collect::budget::Budget;
use crate::model::{Family, Scrape};

/// One source of metrics.
pub trait Collector: Send {
    /// Short name used in logs and in `sonde_collector_*{collector=...}`.
    fn name(&self) -> &'static str;

    /// Called on every collector before any collects in a round. BPF
    /// collectors swap the halves of their maps here, so one wait for the
    /// kernel's programs serves them all ([`bpf::drain`]).
    fn begin_round(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Appends the current value of every family this collector owns.
    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()>;
}

/// The set of collectors, what their rounds cost, and the cardinality
/// budget every family they produce is held to.
pub struct Collection {
    collectors: Vec<Box<dyn Collector>>,
    /// Each collector's CPU time since start, in the order of `collectors`.
    cpu: Vec<Duration>,
    budget: Budget,
    /// How many families the last round had.
    families_last_round: usize,
}

impl Collection {
    pub fn new(collectors: Vec<Box<dyn Collector>>) -> Collection {
        Collection {
            cpu: vec![Duration::ZERO; collectors.len()],
            collectors,
            budget: Budget::new(budget::DEFAULT_MAX_SERIES),
            families_last_round: 0,
        }
    }

    /// Holds every metric to at most `max_series` series (see [`budget`]).
    pub fn with_max_series(mut self, max_series: usize) -> Collection {
        self.budget = Budget::new(max_series);
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.collectors.iter().map(|c| c.name())
    }

    /// Runs every collector once. A failing collector is logged and reported
    /// through `sonde_collector_success`; the others still contribute.
    pub fn collect(&mut self, timestamp_ms: i64) -> Scrape {
        // Sized as the last round was: the list is handed to the store each
        // round, and growing it by doubling copied it again and again.
        let mut families = Vec::with_capacity(self.families_last_round);
        let mut duration = Family::gauge(
            "sonde_collector_duration_seconds",
            "Time the collector's last round took (wall time: waits for the \
             kernel's BPF programs included).",
        );
        let mut cpu = Family::counter(
            "sonde_collector_cpu_seconds_total",
            "CPU time (user and system, BPF iterators included) the collector's \
             rounds took since sonde started.",
        );
        let mut success = Family::gauge(
            "sonde_collector_success",
            "Whether the collector's last round succeeded (1) or failed (0).",
        );
        // One CPU clock read between consecutive collectors (a system call
        // each), not two per collector.
        let mut cpu_mark = thread_cpu_time();
        let mut cpu_since_mark = || {
            let now = thread_cpu_time();
            now - std::mem::replace(&mut cpu_mark, now)
        };
        let begun: Vec<_> = self
            .collectors
            .iter_mut()
            .map(|collector| {
                let started = Instant::now();
                let result = collector.begin_round();
                (result, started.elapsed(), cpu_since_mark())
            })
            .collect();
        let mut ran = Vec::with_capacity(begun.len());
        for (collector, (begun, beginning, beginning_cpu)) in self.collectors.iter_mut().zip(begun)
        {
            let started = Instant::now();
            let result = begun.and_then(|()| collector.collect(&mut families));
            ran.push((
                result,
                beginning + started.elapsed(),
                beginning_cpu + cpu_since_mark(),
            ));
        }
        let rounds = self.collectors.iter().zip(&mut self.cpu);
        for ((collector, spent), (result, took, used)) in rounds.zip(ran) {
            *spent += used;
            let name = collector.name();
            duration.push(&[("collector", name)], took.as_secs_f64());
            cpu.push(&[("collector", name)], spent.as_secs_f64());
            if let Err(err) = &result {
                tracing::warn!(collector = name, "collection failed: {err:#}");
            }
            success.push(&[("collector", name)], f64::from(u8::from(result.is_ok())));
        }
        for family in &mut families {
            self.budget.apply(family);
        }
        families.extend([duration, cpu, success]);
        self.families_last_round = families.len();
        Scrape {
            timestamp_ms,
            families,
        }
    }
}

/// Milliseconds since the Unix epoch, Prometheus's unit of time.
pub fn now_ms() -> i64 {
    i64::try_from(since_epoch().as_millis()).unwrap_or(i64::MAX)
}

/// The maps collectors look up per event, key or series: foldhash, not
/// SipHash (their keys are the kernel's and the processes' own, not a
/// remote client's choice to flood).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The set [`FastMap`] is to maps.
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// CLOCK_MONOTONIC in nanoseconds: the BPF programs' clock
/// (`bpf_ktime_get_ns`) and the kernel's task start times.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a timespec the call fills in.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// The calling thread's CPU time (user and system).
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// The wall clock, as a time since the Unix epoch.
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins for `cpu` of this thread's CPU time in each round.
    struct Spinner {
        cpu: Duration,
    }

    impl Collector for Spinner {
        fn name(&self) -> &'static str {
            "spinner"
        }

        fn collect(&mut self, _: &mut Vec<Family>) -> anyhow::Result<()> {
            let started = thread_cpu_time();
            while thread_cpu_time() - started < self.cpu {}
            Ok(())
        }
    }

    #[test]
    fn a_collectors_cpu_time_adds_up_over_rounds() {
        let spin = Duration::from_millis(20);
        let mut collection = Collection::new(vec![Box::new(Spinner { cpu: spin })]);
        let cpu_after = |scrape: Scrape| {
            let family = scrape
                .families
                .into_iter()
                .find(|f| f.name == "sonde_collector_cpu_seconds_total")
                .unwrap();
            family.series[0].value
        };
        let first = cpu_after(collection.collect(0));
        let second = cpu_after(collection.collect(10_000));
        assert!(first >= spin.as_secs_f64(), "{first}");
        assert!(
            second >= first + spin.as_secs_f64(),
            "{first} then {second}"
        );
        assert!(
            second < first + 10.0 * spin.as_secs_f64(),
            "{first} then {second}"
        );
    }
}
