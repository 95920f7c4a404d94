//! Counters whose kernel maps hold only one interval: the user-space side of
//! the double-buffered maps in `bpf/sonde.h`. The kernel keeps what changed
//! since the last round; sonde keeps the totals it exports. So a map's size
//! bounds the distinct keys (process names, cgroups) of one interval, and
//! sonde's memory bounds the keys seen within `[collect] forget_after`.
//!
//! # A round
//! 1. [`Halves::swap`], in [`Collector::begin_round`](crate::collect::Collector::begin_round):
//!    flips the object's `sonde_generation`, so its programs write the other
//!    half from now on.
//! 2. [`Halves::settled`], in `collect`: waits until no program that could
//!    have picked the old half is still running ([`wait_for_programs`]). Every
//!    collector swaps before any collects, so one wait serves the round.
//! 3. [`DoubleBuffered::drain`]: reads and deletes every entry of the old
//!    half and adds it to the totals; then [`Totals::forget_idle`].
//!
//! # Invariants
//! - An increment is in exactly one place: a half in the kernel, or the
//!   totals. A half is drained only after the wait, when no program writes it;
//!   an entry is added to the totals exactly when the kernel hands it over
//!   deleted (a drain cut short leaves the rest for the next time that half
//!   is drained, not lost).
//! - Totals only grow, key by key, while the key is remembered. A key with no
//!   increment for `forget_after` is forgotten: its series ends, and if the
//!   process comes back its counter starts again from 0, which PromQL's
//!   `rate()` reads as a counter reset. The store closes a series idle for the
//!   same time, so a forgotten total was no longer queried as active.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use libbpf_rs::{libbpf_sys, MapCore, MapFlags, MapHandle, MapType};

use super::maps::drain_map;
use crate::collect::FastMap;

/// Which half programs left at a swap, and when.
#[derive(Clone, Copy, Debug)]
struct Swap {
    left: usize,
    at: Instant,
}

/// The swap state of one BPF object's double-buffered maps.
#[derive(Debug, Default)]
pub struct Halves {
    swapped: Option<Swap>,
}

impl Halves {
    /// Points the object's programs at the other half. `generation` is the
    /// object's `sonde_generation`, mapped from its .bss.
    pub fn swap(&mut self, generation: &mut u32) {
        let old = *generation;
        // SAFETY: `generation` points into the object's mapped .bss; the
        // volatile write keeps the store where programs on any CPU read it.
        unsafe { std::ptr::write_volatile(generation, old.wrapping_add(1)) };
        self.swapped = Some(Swap {
            left: (old & 1) as usize,
            at: Instant::now(),
        });
    }

    /// The half to drain (0 or 1) once no program can still write it; None
    /// when nothing was swapped since the last drain.
    pub fn settled(&mut self) -> anyhow::Result<Option<usize>> {
        let Some(swap) = self.swapped.take() else {
            return Ok(None);
        };
        wait_for_programs(swap.at)?;
        Ok(Some(swap.left))
    }
}

/// The double-buffered maps of one BPF object: their swap state and one
/// [`Totals`] per map, in the order the collector names them.
pub struct DoubleBuffered<const N: usize> {
    halves: Halves,
    totals: [Totals; N],
    forget_after: Duration,
}

impl<const N: usize> DoubleBuffered<N> {
    /// `words` per map: u64 words of its value.
    pub fn new(words: [usize; N], forget_after: Duration) -> DoubleBuffered<N> {
        DoubleBuffered {
            halves: Halves::default(),
            totals: words.map(Totals::new),
            forget_after,
        }
    }

    /// Step 1 of a round (module docs).
    pub fn swap(&mut self, generation: &mut u32) {
        self.halves.swap(generation);
    }

    /// Steps 2 and 3: `maps[i]` are map i's two halves. Every map is
    /// drained even when one fails; the first error is returned.
    pub fn drain<M: MapCore>(&mut self, maps: [[&M; 2]; N]) -> anyhow::Result<()> {
        self.drain_observed(maps, |_, _, _| {})
    }

    /// [`DoubleBuffered::drain`], showing `observe` each drained entry (its
    /// map's index, its key, its value's words) before it joins the totals:
    /// for state kept from the changes rather than the totals.
    pub fn drain_observed<M: MapCore>(
        &mut self,
        maps: [[&M; 2]; N],
        mut observe: impl FnMut(usize, &[u8], &[u64]),
    ) -> anyhow::Result<()> {
        let Some(left) = self.halves.settled()? else {
            return Ok(());
        };
        let now = Instant::now();
        let mut result = Ok(());
        for (i, (totals, halves)) in self.totals.iter_mut().zip(maps).enumerate() {
            // Entries handed over before a failure still join the totals.
            let drain = drain_map(halves[left], totals.words, |key, value| {
                observe(i, key, value);
                totals.add(key, value, now);
            });
            totals.forget_idle(self.forget_after, now);
            result = result.and(drain);
        }
        result
    }

    /// The totals of map `i`.
    pub fn totals(&self, i: usize) -> &Totals {
        &self.totals[i]
    }
}

/// When the last completed wait began: a swap made before it is settled.
static LAST_WAIT_BEGAN: Mutex<Option<Instant>> = Mutex::new(None);

/// A map-of-maps whose every update makes the kernel wait for running BPF
/// programs (see [`wait_for_programs`]), with the inner map it holds.
struct Barrier {
    outer: MapHandle,
    inner: MapHandle,
}

static BARRIER: Mutex<Option<Barrier>> = Mutex::new(None);

/// Returns once every BPF program run that began before `swapped_at` has
/// ended. The kernel guarantees it for an update of a map-of-maps: the update
/// returns only after every running non-sleepable BPF program has finished
/// (an RCU grace period, about 8-20 ms here), so that user space knows they
/// all see the new value. sonde's programs are all non-sleepable. A wait that
/// began after `swapped_at` already gives it, so one wait serves every
/// collector swapped before it.
pub fn wait_for_programs(swapped_at: Instant) -> anyhow::Result<()> {
    let mut last = LAST_WAIT_BEGAN.lock().expect("lock poisoned");
    if last.is_some_and(|began| began > swapped_at) {
        return Ok(());
    }
    let began = Instant::now();
    prepare_barrier()?;
    let barrier = BARRIER.lock().expect("lock poisoned");
    let barrier = barrier.as_ref().expect("made by prepare_barrier");
    barrier
        .outer
        .update(
            &0u32.to_ne_bytes(),
            &fd_u32(&barrier.inner).to_ne_bytes(),
            MapFlags::ANY,
        )
        .context("waiting for running BPF programs (map-of-maps update)")?;
    *last = Some(began);
    Ok(())
}

/// Makes the maps [`wait_for_programs`] updates, if not made yet. Making
/// them takes CAP_BPF, updating them does not: [`super::load_all`] makes
/// them while loading, before sonde gives CAP_BPF up
/// ([`crate::privilege`]).
pub fn prepare_barrier() -> anyhow::Result<()> {
    let mut barrier = BARRIER.lock().expect("lock poisoned");
    if barrier.is_none() {
        *barrier = Some(Barrier::new().context("making the map that waits for BPF programs")?);
    }
    Ok(())
}

impl Barrier {
    fn new() -> anyhow::Result<Barrier> {
        let plain = libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let inner = MapHandle::create(MapType::Array, Some("sonde_barrier"), 4, 4, 1, &plain)?;
        let outer_opts = libbpf_sys::bpf_map_create_opts {
            inner_map_fd: fd_u32(&inner),
            ..plain
        };
        let outer = MapHandle::create(
            MapType::ArrayOfMaps,
            Some("sonde_barrier"),
            4,
            4,
            1,
            &outer_opts,
        )?;
        Ok(Barrier { outer, inner })
    }
}

/// A map's file descriptor as the kernel takes it in map-of-maps values.
fn fd_u32(map: &MapHandle) -> u32 {
    map.as_fd().as_raw_fd() as u32
}

/// One remembered key: its totals and when they last grew.
struct Total {
    value: Vec<u64>,
    grew: Instant,
}

/// The running totals of one double-buffered map, key by key (the map's key
/// bytes), each value `words` u64 words summed over CPUs.
pub struct Totals {
    words: usize,
    entries: FastMap<Box<[u8]>, Total>,
}

impl Totals {
    pub fn new(words: usize) -> Totals {
        Totals {
            words,
            entries: FastMap::default(),
        }
    }

    /// Adds one key's counts of an interval.
    pub fn add(&mut self, key: &[u8], value: &[u64], now: Instant) {
        if value.iter().all(|&word| word == 0) {
            return;
        }
        // Looked up by the borrowed key: a key is copied only the first time.
        if !self.entries.contains_key(key) {
            let total = Total {
                value: vec![0; value.len()],
                grew: now,
            };
            self.entries.insert(key.into(), total);
        }
        let total = self.entries.get_mut(key).expect("inserted above");
        for (sum, delta) in total.value.iter_mut().zip(value) {
            *sum = sum.wrapping_add(*delta);
        }
        total.grew = now;
    }

    /// Forgets keys that have not grown for `forget_after`; returns how many.
    pub fn forget_idle(&mut self, forget_after: Duration, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, total| now.duration_since(total.grew) < forget_after);
        crate::memory::shrink_when_sparse(&mut self.entries);
        before - self.entries.len()
    }

    /// Every remembered key with its totals.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u64])> {
        self.entries
            .iter()
            .map(|(key, total)| (&key[..], total.value.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_grow_and_idle_keys_are_forgotten() {
        let start = Instant::now();
        let mut totals = Totals::new(1);
        let add = |totals: &mut Totals, key: u8, value: u64, at: Duration| {
            totals.add(&[key; 4], &[value], start + at);
        };
        add(&mut totals, 1, 5, Duration::ZERO);
        add(&mut totals, 2, 3, Duration::ZERO);
        add(&mut totals, 1, 2, Duration::from_secs(5));
        add(&mut totals, 3, 0, Duration::from_secs(5));
        let mut seen: Vec<(Vec<u8>, Vec<u64>)> = totals
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        seen.sort();
        // A zero delta is no activity: key 3 is not remembered.
        assert_eq!(seen, [(vec![1; 4], vec![7]), (vec![2; 4], vec![3])]);
        let forgotten = totals.forget_idle(Duration::from_secs(4), start + Duration::from_secs(6));
        assert_eq!(forgotten, 1);
        assert_eq!(totals.len(), 1);
        // A forgotten key comes back from 0.
        add(&mut totals, 2, 1, Duration::from_secs(7));
        let two = totals.iter().find(|(k, _)| k[0] == 2).map(|(_, v)| v[0]);
        assert_eq!(two, Some(1));
    }

    #[test]
    fn a_swap_is_settled_once() {
        let mut halves = Halves::default();
        let mut generation = 6u32;
        halves.swap(&mut generation);
        assert_eq!(generation, 7);
        match halves.settled() {
            Ok(Some(left)) => assert_eq!(left, 0),
            Ok(None) => panic!("a swap was made"),
            Err(err) => {
                let required = std::env::var("SONDE_REQUIRE_BPF").is_ok_and(|v| v == "1");
                assert!(!required, "SONDE_REQUIRE_BPF=1 but: {err:#}");
                eprintln!("skipping the wait: {err:#}");
            }
        }
        assert!(halves.settled().unwrap().is_none());
    }
}
