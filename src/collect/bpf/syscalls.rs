//! The syscalls collector (`bpf/syscalls.bpf.c`): syscalls per process name
//! and syscall, their latency per syscall, and their failures per process
//! name, syscall and errno.

use std::time::Duration;

use anyhow::Context;
use libbpf_rs::skel::SkelBuilder;

use super::drain::DoubleBuffered;
use super::errno_names::{ERRNO_NAMES, KERNEL_ERRNO_NAMES};
use super::maps::for_each_entry;
use super::syscall_names::SYSCALL_NAMES;
use super::who::{key_u32, KeptLabels, Who, PROC_ID_LEN};
use super::{
    attach, check_refused, object_storage, AttachKind, Attached, Loaded, Variant, HIST_SLOTS,
    HIST_WORDS,
};
use crate::collect::{Collector, FastMap};
use crate::model::{Family, HistogramLabels, Labels};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/syscalls.skel.rs"));
}
use skel::{SyscallsSkel, SyscallsSkelBuilder};

pub const NAME: &str = "syscalls";

/// The array of threads' counters; refused (`SONDE_BPF_REFUSE`), every thread
/// counts in its task storage instead.
const SLOTS: &str = "thread_counts";

/// The task iterator that moves every thread's counts into `syscall_counts`.
const FLUSH: &str = "flush_counts";

/// raw_tp first (cheapest, no tracefs), then classic tracepoints. Attached
/// in this order, sys_exit before sys_enter: then no timed call's exit goes
/// unseen, which keeps a slot of `timed_calls` from outliving its call.
const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::RawTp,
        programs: &["raw_sys_exit", "raw_process_exit", FLUSH, "raw_sys_enter"],
    },
    Variant {
        kind: AttachKind::Tracepoint,
        programs: &["tp_sys_exit", "tp_process_exit", FLUSH, "tp_sys_enter"],
    },
];

/// The same without sys_exit, when only counts are wanted.
const COUNT_ONLY_VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::RawTp,
        programs: &["raw_sys_enter", "raw_process_exit", FLUSH],
    },
    Variant {
        kind: AttachKind::Tracepoint,
        programs: &["tp_sys_enter", "tp_process_exit", FLUSH],
    },
];

/// The bounded maps, in the order of `enum syscalls_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["syscall_counts", "syscall_errors", "task_syscalls"];

/// Size of `struct syscall_count_key`: a `struct proc_id`, the syscall
/// number, padding; and of `struct syscall_error_key`: a `struct proc_id`,
/// the syscall number, the errno.
const KEY_LEN: usize = PROC_ID_LEN + 8;

/// The double-buffered maps, in the order [`DoubleBuffered`] holds them.
const COUNTS: usize = 0;
const ERRORS: usize = 1;

/// Loads the collector. `latency`: time about one syscall in this many per
/// thread (1: every one) and count errors; None: only count, which saves a
/// program per syscall. `forget_after`: how long a process name's counts
/// outlive its last call.
pub fn load(latency: Option<u32>, forget_after: Duration) -> anyhow::Result<Loaded> {
    let variants = if latency.is_some() {
        VARIANTS
    } else {
        COUNT_ONLY_VARIANTS
    };
    let attached = attach(NAME, variants, || {
        let mut open = SyscallsSkelBuilder::default().open(object_storage())?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| anyhow::anyhow!("the syscalls object has no read-only data"))?;
        rodata.measure_latency = latency.is_some();
        rodata.count_in_slots = check_refused(SLOTS).is_ok();
        rodata.sample_every = latency.unwrap_or(1).max(1);
        Ok(open)
    })?;
    Ok(Loaded {
        kind: attached.kind,
        programs: attached.program_handles()?,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Syscalls {
            attached,
            latency,
            counts: DoubleBuffered::new([1, 1], forget_after),
            calls_by_nr: vec![0; SYSCALLS_MAX_NR],
            labels: [KeptLabels::default(), KeptLabels::default()],
            latency_labels: FastMap::default(),
        }),
    })
}

struct Syscalls {
    attached: Attached<SyscallsSkel<'static>>,
    /// The sampling of latency, as loaded; None: counts only.
    latency: Option<u32>,
    /// syscall_counts: calls per (process, syscall); syscall_errors:
    /// failures per (process, syscall, errno).
    counts: DoubleBuffered<2>,
    /// Calls per syscall number since sonde started, of every process (never
    /// forgotten): what a sampled latency histogram is scaled to.
    calls_by_nr: Vec<u64>,
    /// The label sets of the series of `counts`' keys, map by map.
    labels: [KeptLabels; 2],
    /// The label sets of each syscall number's latency histogram, once it
    /// has one (at most [`SYSCALLS_MAX_NR`]; its series never end).
    latency_labels: FastMap<u32, HistogramLabels>,
}

/// Syscall numbers with a latency histogram (`SYSCALLS_MAX_NR`, sonde.h).
const SYSCALLS_MAX_NR: usize = 512;

/// The label of a syscall number: its x86_64 name, else the number itself.
pub fn syscall_label(nr: u32) -> String {
    match SYSCALL_NAMES.get(nr as usize) {
        Some(name) if !name.is_empty() => (*name).to_string(),
        // -1 is what the kernel reports for a syscall it never dispatched.
        _ => (nr as i32).to_string(),
    }
}

/// The label of an errno value: its name (`ENOENT`), else the number.
pub fn errno_label(errno: u32) -> String {
    match ERRNO_NAMES.get(errno as usize) {
        Some(name) if !name.is_empty() => (*name).to_string(),
        _ => KERNEL_ERRNO_NAMES
            .iter()
            .find(|(number, _)| *number == errno)
            .map_or_else(|| errno.to_string(), |(_, name)| (*name).to_string()),
    }
}

impl Syscalls {
    fn calls(&mut self) -> anyhow::Result<Family> {
        let mut calls = Family::counter(
            "sonde_syscalls_total",
            "System calls entered, by process (name, unit or container) and syscall.",
        );
        self.per_process(
            COUNTS,
            "syscall_counts",
            &mut calls,
            |family, who, nr, _| {
                family.series_labels(&who.labels(&[("syscall", &syscall_label(nr))]))
            },
        )?;
        Ok(calls)
    }

    fn errors(&mut self) -> anyhow::Result<Family> {
        let mut errors = Family::counter(
            "sonde_syscall_errors_total",
            "System calls that returned an error, by process (name, unit or container), \
             syscall and errno.",
        );
        self.per_process(
            ERRORS,
            "syscall_errors",
            &mut errors,
            |family, who, nr, errno| {
                let (syscall, errno) = (syscall_label(nr), errno_label(errno));
                family.series_labels(&who.labels(&[("errno", &errno), ("syscall", &syscall)]))
            },
        )?;
        Ok(errors)
    }

    /// Pushes into `family` a series per total of double-buffered map `map`
    /// (named `name`), whose keys are a `struct proc_id` and two u32s (the
    /// syscall number and, for errors, the errno); `labels` builds a
    /// series' label set from who, the first u32 and the second, when the
    /// one kept from the last round does not do ([`KeptLabels`]).
    fn per_process(
        &mut self,
        map: usize,
        name: &str,
        family: &mut Family,
        labels: impl Fn(&Family, &Who, u32, u32) -> Labels,
    ) -> anyhow::Result<()> {
        let kept = &mut self.labels[map];
        for (key, value) in self.counts.totals(map).iter() {
            let shaped = (key.len() == KEY_LEN)
                .then(|| key_u32(key, PROC_ID_LEN).zip(key_u32(key, PROC_ID_LEN + 4)))
                .flatten();
            let set = shaped
                .and_then(|(nr, second)| kept.get(key, |who| labels(family, who, nr, second)));
            let set = set.with_context(|| {
                format!("{name} key of {} bytes, expected {KEY_LEN}", key.len())
            })?;
            family.push_labelled(set, value[0] as f64);
        }
        kept.forget_unused();
        Ok(())
    }

    fn latency(&mut self, sample_every: u32) -> anyhow::Result<Family> {
        let maps = &self.attached.skel.maps;
        let mut latency = Family::histogram(
            "sonde_syscall_duration_seconds",
            "Time from syscall entry to return, by syscall (timed on a sample of \
             calls, scaled to the exact count).",
        );
        let mut short_key = false;
        for_each_entry(&maps.syscall_latency, HIST_WORDS, |key, hist| {
            let Some(nr) = key_u32(key, 0) else {
                short_key = true;
                return;
            };
            let slots = &hist[..HIST_SLOTS];
            // Timed calls stand for the exact count; every call was timed
            // when sampling is off.
            let calls = match sample_every {
                1 => slots.iter().sum(),
                _ => self.calls_by_nr.get(nr as usize).copied().unwrap_or(0),
            };
            if slots.iter().all(|&n| n == 0) {
                return;
            }
            let labels = self.latency_labels.entry(nr).or_insert_with(|| {
                let syscall = syscall_label(nr);
                latency.histogram_labels(&[("syscall", syscall.as_str())], bucket_bounds())
            });
            push_sampled_histogram(&mut latency, labels, hist, sample_every, calls);
        })?;
        anyhow::ensure!(!short_key, "syscall_latency key of less than 4 bytes");
        Ok(latency)
    }
}

/// The upper bounds of a latency histogram's buckets (`struct sonde_hist`:
/// log2 microseconds), without `+Inf`.
fn bucket_bounds() -> impl Iterator<Item = f64> {
    (0..HIST_SLOTS - 1).map(|i| (1u64 << i) as f64 * 1e-6)
}

impl Collector for Syscalls {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        // Counts wait in each thread's task storage until this moves them
        // into the half about to be drained.
        self.attached.run_iterator(FLUSH)?;
        let bss = self.attached.skel.maps.bss_data.as_deref_mut();
        let bss = bss.context("the syscalls object has no .bss")?;
        self.counts.swap(&mut bss.sonde_generation);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let maps = &self.attached.skel.maps;
        let calls_by_nr = &mut self.calls_by_nr;
        self.counts.drain_observed(
            [
                [&maps.syscall_counts_0, &maps.syscall_counts_1],
                [&maps.syscall_errors_0, &maps.syscall_errors_1],
            ],
            |map, key, value| {
                let nr = key_u32(key, PROC_ID_LEN).unwrap_or(u32::MAX);
                if let (COUNTS, Some(calls)) = (map, calls_by_nr.get_mut(nr as usize)) {
                    *calls += value[0];
                }
            },
        )?;
        out.push(self.calls()?);
        if let Some(sample_every) = self.latency {
            out.extend([self.errors()?, self.latency(sample_every)?]);
        }
        Ok(())
    }
}

/// A latency histogram timed on about one call in `every` (a `struct
/// sonde_hist` summed over CPUs), scaled to `calls`, the exact number of
/// calls: each cumulative bucket is `every` times its sampled count, at most
/// `calls`; `_count` is `calls`, `_sum` `every` times the sampled sum. Each
/// only grows as its inputs do, so all stay counters. With `every` 1 and
/// `calls` the timed count, the histogram as timed. Returns false (adding
/// nothing) while no call was timed. `labels`: from
/// [`Family::histogram_labels`] with [`bucket_bounds`].
fn push_sampled_histogram(
    family: &mut Family,
    labels: &HistogramLabels,
    hist: &[u64],
    every: u32,
    calls: u64,
) -> bool {
    let (slots, sum_ns) = (&hist[..HIST_SLOTS], hist[HIST_SLOTS]);
    if slots.iter().all(|&n| n == 0) {
        return false;
    }
    let every = u64::from(every);
    let mut cumulative = 0u64;
    let buckets = slots[..HIST_SLOTS - 1].iter().map(|n| {
        cumulative += n;
        cumulative.saturating_mul(every).min(calls)
    });
    family.push_labelled_histogram(labels, buckets, (sum_ns * every) as f64 / 1e9, calls);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscalls_and_errnos_are_named() {
        assert_eq!(syscall_label(0), "read");
        assert_eq!(syscall_label(110), "getppid");
        assert_eq!(syscall_label(u32::MAX), "-1");
        assert_eq!(syscall_label(1000), "1000");
        assert_eq!(errno_label(2), "ENOENT");
        assert_eq!(errno_label(11), "EAGAIN");
        assert_eq!(errno_label(512), "ERESTARTSYS");
        assert_eq!(errno_label(520), "520");
    }

    /// Each timed call stands for `every` calls, no bucket above the exact
    /// count, `_count` the exact count.
    #[test]
    fn a_sampled_histogram_is_scaled_to_the_exact_count() {
        let mut hist = vec![0u64; HIST_WORDS];
        hist[0] = 3; // ≤ 1 µs
        hist[2] = 1; // ≤ 4 µs
        hist[HIST_SLOTS] = 5_000; // ns
        let mut family = Family::histogram("h", "");
        let read = family.histogram_labels(&[("syscall", "read")], bucket_bounds());
        assert!(push_sampled_histogram(&mut family, &read, &hist, 16, 70));
        let values = |name: &str| -> Vec<f64> {
            family
                .series
                .iter()
                .filter(|s| s.labels.get("__name__") == Some(name))
                .map(|s| s.value)
                .collect()
        };
        // le = 1, 2, 4, 8 µs..., then +Inf.
        let buckets = values("h_bucket");
        assert_eq!(buckets[..4], [48.0, 48.0, 64.0, 64.0]);
        assert_eq!(buckets.last(), Some(&70.0));
        assert_eq!(values("h_count"), [70.0]);
        assert_eq!(values("h_sum"), [80e-6]);
        // Fewer exact calls than the sample stands for: held at the count.
        let mut family = Family::histogram("h", "");
        let none = family.histogram_labels(&[], bucket_bounds());
        push_sampled_histogram(&mut family, &none, &hist, 16, 50);
        assert!(family.series.iter().all(|s| s.value <= 50.0));
        // Nothing timed yet: no series.
        let mut family = Family::histogram("h", "");
        let zeros = vec![0; HIST_WORDS];
        assert!(!push_sampled_histogram(&mut family, &none, &zeros, 16, 9));
        assert!(family.series.is_empty());
        // Every call timed: the histogram as the kernel counted it.
        let mut plain = Family::histogram("h", "");
        super::super::push_log2_histogram(&mut plain, &[], &hist);
        let mut timed = Family::histogram("h", "");
        push_sampled_histogram(&mut timed, &none, &hist, 1, 4);
        assert_eq!(timed, plain);
    }
}
