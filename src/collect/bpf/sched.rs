//! The scheduler collector (`bpf/sched.bpf.c`): run-queue latency, for the
//! whole machine and for its busiest units and containers, context switches
//! per process and kind, and CPU time per process and mode.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use libbpf_rs::skel::SkelBuilder;

use super::drain::DoubleBuffered;
use super::who::{key_u32, Who, PROC_ID_LEN};
use super::{
    attach, object_storage, push_log2_histogram, AttachKind, Attached, Degraded, Loaded, Variant,
    HIST_SLOTS, HIST_WORDS,
};
use crate::collect::cgroup::{self, Placement};
use crate::collect::monotonic_ns;
use crate::collect::Collector;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/sched.skel.rs"));
}
use skel::{SchedSkel, SchedSkelBuilder};

pub const NAME: &str = "sched";

/// The task iterator that moves every thread's switch counts and CPU time
/// into `switches` and `cpu_time`.
const FLUSH: &str = "flush_switches";

const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::TpBtf,
        programs: &["btf_wakeup", "btf_wakeup_new", "btf_switch", FLUSH],
    },
    Variant {
        kind: AttachKind::Tracepoint,
        programs: &["tp_wakeup", "tp_wakeup_new", "tp_switch"],
    },
];

/// tracefs events name tasks by pid (bpf/sched.bpf.c).
pub const DEGRADED: &[Degraded] = &[Degraded {
    kind: AttachKind::Tracepoint,
    lacks: "run-queue latency only for the whole machine, not per unit or container, and no CPU time per process (the events have no task pointer)",
}];

/// The bounded maps, in the order of `enum sched_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["switches", "runq_latency", "cpu_time"];

/// How many units and containers get a run-queue histogram of their own;
/// everything else is summed in the one without `unit` or `container`.
pub const BUSIEST: usize = 10;

/// `forget_after`: how long a process name's or cgroup's totals outlive its
/// last event.
pub fn load(forget_after: Duration) -> anyhow::Result<Loaded> {
    let attached = attach(NAME, VARIANTS, || {
        let mut open = SchedSkelBuilder::default().open(object_storage())?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("the sched object has no read-only data")?;
        rodata.sonde_loaded_ns = monotonic_ns();
        Ok(open)
    })?;
    if attached.kind == AttachKind::TpBtf {
        // Every thread gets its storage now: one asleep since before sonde
        // started has its earlier run time skipped before it wakes.
        attached.run_iterator(FLUSH)?;
    }
    Ok(Loaded {
        kind: attached.kind,
        programs: attached.program_handles()?,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Sched {
            attached,
            counts: DoubleBuffered::new([HIST_WORDS, 1, 2], forget_after),
        }),
    })
}

struct Sched {
    attached: Attached<SchedSkel<'static>>,
    /// runq_latency (histograms per cgroup), switches (per process and
    /// kind), cpu_time (per process: user and system nanoseconds).
    counts: DoubleBuffered<3>,
}

const RUNQ_LATENCY: usize = 0;
const SWITCHES: usize = 1;
const CPU_TIME: usize = 2;

/// Sums histograms (in `struct sonde_hist` words) per place, then keeps the
/// [`BUSIEST`] places by event count and folds the rest into the unplaced
/// one, so the series of the family always add up to the whole machine.
fn busiest(per_place: HashMap<Placement, Vec<u64>>) -> Vec<(Placement, Vec<u64>)> {
    let count = |hist: &[u64]| hist[..HIST_SLOTS].iter().sum::<u64>();
    let mut places: Vec<(Placement, Vec<u64>)> = per_place.into_iter().collect();
    places.sort_by(|(pa, a), (pb, b)| {
        // The unplaced one last, so it never takes a place's seat.
        (*pa == Placement::default())
            .cmp(&(*pb == Placement::default()))
            .then(count(b).cmp(&count(a)))
            .then(pa.unit.cmp(&pb.unit))
            .then(pa.container.cmp(&pb.container))
    });
    let mut rest = vec![0u64; HIST_WORDS];
    let mut kept = Vec::new();
    for (place, hist) in places {
        if kept.len() < BUSIEST && place != Placement::default() {
            kept.push((place, hist));
        } else {
            rest.iter_mut().zip(&hist).for_each(|(r, h)| *r += h);
        }
    }
    kept.push((Placement::default(), rest));
    kept
}

impl Collector for Sched {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        // With tp_btf, switch counts wait in each thread's task storage until
        // this moves them into the half about to be drained; the tracefs
        // variant counts straight into the map.
        if self.attached.kind == AttachKind::TpBtf {
            self.attached.run_iterator(FLUSH)?;
        }
        let bss = self.attached.skel.maps.bss_data.as_deref_mut();
        let bss = bss.context("the sched object has no .bss")?;
        self.counts.swap(&mut bss.sonde_generation);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let maps = &self.attached.skel.maps;
        self.counts.drain([
            [&maps.runq_latency_0, &maps.runq_latency_1],
            [&maps.switches_0, &maps.switches_1],
            [&maps.cpu_time_0, &maps.cpu_time_1],
        ])?;
        let mut per_place: HashMap<Placement, Vec<u64>> = HashMap::new();
        for (key, hist) in self.counts.totals(RUNQ_LATENCY).iter() {
            let id = u64::from_ne_bytes(key.try_into()?);
            let sum = per_place
                .entry(cgroup::placement(id))
                .or_insert_with(|| vec![0; HIST_WORDS]);
            sum.iter_mut().zip(hist).for_each(|(s, h)| *s += h);
        }
        let mut latency = Family::histogram(
            "sonde_runqueue_latency_seconds",
            "Time tasks waited in a run queue, from becoming runnable to running; the busiest units and containers apart, the rest without those labels.",
        );
        for (place, hist) in busiest(per_place) {
            let labels: Vec<(&str, &str)> = place.labels().collect();
            push_log2_histogram(&mut latency, &labels, &hist);
        }

        let mut switches = Family::counter(
            "sonde_context_switches_total",
            "Context switches away from a process: voluntary (it blocked) or involuntary (preempted while runnable).",
        );
        for (key, value) in self.counts.totals(SWITCHES).iter() {
            let (Some(who), Some(kind)) = (Who::from_key(key), key_u32(key, PROC_ID_LEN)) else {
                anyhow::bail!("switches key of {} bytes, expected 32", key.len());
            };
            let kind = if kind == 0 {
                "voluntary"
            } else {
                "involuntary"
            };
            switches.push(&who.labels(&[("kind", kind)]), value[0] as f64);
        }
        out.extend([latency, switches]);
        if self.attached.kind == AttachKind::TpBtf {
            out.push(self.cpu_time()?);
        }
        Ok(())
    }
}

impl Sched {
    fn cpu_time(&self) -> anyhow::Result<Family> {
        let mut cpu = Family::counter(
            "sonde_process_cpu_seconds_total",
            "CPU time of the threads of a name (comm), user or system as the kernel splits it; threads that started before sonde count from sonde's start.",
        );
        for (key, value) in self.counts.totals(CPU_TIME).iter() {
            let Some(who) = Who::from_key(key) else {
                anyhow::bail!(
                    "cpu_time key of {} bytes, expected {PROC_ID_LEN}",
                    key.len()
                );
            };
            for (mode, ns) in [("user", value[0]), ("system", value[1])] {
                cpu.push(&who.labels(&[("mode", mode)]), ns as f64 / 1e9);
            }
        }
        Ok(cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busiest_places_keep_labels_and_the_rest_adds_up() {
        let hist = |n: u64| {
            let mut h = vec![0; HIST_WORDS];
            h[0] = n;
            h
        };
        let mut per_place = HashMap::new();
        per_place.insert(Placement::default(), hist(5));
        for i in 0..BUSIEST + 2 {
            let place = Placement::of_path(&format!("/system.slice/s{i}.service"));
            per_place.insert(place, hist(100 + i as u64));
        }
        let kept = busiest(per_place);
        assert_eq!(kept.len(), BUSIEST + 1);
        let (last, rest) = kept.last().unwrap();
        assert_eq!(*last, Placement::default());
        // The two quietest services (100, 101) join the unplaced 5.
        assert_eq!(rest[0], 206);
        assert_eq!(kept[0].0.unit.as_deref(), Some("s11.service"));
    }
}
