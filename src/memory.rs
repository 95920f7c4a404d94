//! Giving memory back once a churn of processes is forgotten. sonde's state
//! grows with the processes and series seen within `[collect] forget_after`
//! and must shrink again when they are forgotten; three things keep a
//! process's resident memory high after its data is freed, each handled
//! here:
//! - hash maps keep the capacity of their peak: [`shrink_when_sparse`];
//! - glibc serves large blocks from its heap once one was freed (it raises
//!   its mmap threshold up to 32 MiB), where a long-lived small block after
//!   them pins the pages: [`tune_allocator`] keeps blocks of 128 KiB and
//!   more in their own mappings, unmapped when freed;
//! - free pages inside the heap stay mapped until trimmed: [`GiveBack`],
//!   after every round while the arenas hold much free memory (a churn
//!   forgotten), and otherwise once a minute. After a churn the
//!   collectors' arena is large and
//!   fragmented by the few blocks that outlived it, and each round's scratch
//!   lands on pages all over it: measured after a churn of 8,000 names, the
//!   arena held 1.8 MiB in use of 40 MiB, and RSS stood 9 MiB above where it
//!   started until trimmed. Not every round: a trim consolidates every
//!   arena and returns each free page, which the next round's scratch
//!   faults back in; on an idle host that was a quarter of the ingest
//!   thread's CPU.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

/// Blocks at least this large get a mapping of their own (glibc's default
/// threshold, fixed so it no longer grows).
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Called once at start, before the collectors and the store allocate.
pub fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Shrinks `map` when less than half of its capacity is used (after a churn
/// was forgotten); a map at its working size is left alone.
pub fn shrink_when_sparse<K: Hash + Eq, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 2 {
        map.shrink_to_fit();
    }
}

/// Returns every arena's free pages to the system: offered once a round,
/// when the round's scratch has been freed, it trims while the arenas hold
/// more than [`GiveBack::FREE`] free (a churn forgotten: each round's
/// scratch would land on its fragments and fault them back in), and
/// otherwise once per [`GiveBack::EVERY`].
pub struct GiveBack {
    last: Instant,
}

impl GiveBack {
    /// The longest a steady sonde goes without a trim.
    const EVERY: Duration = Duration::from_secs(60);
    /// Free bytes in the arenas that make every round trim: above a quiet
    /// host's round of scratch, below what a churn of processes leaves.
    const FREE: usize = 8 << 20;

    pub fn from_now() -> GiveBack {
        GiveBack {
            last: Instant::now(),
        }
    }

    /// Trims every arena if they hold more than [`GiveBack::FREE`] free or
    /// the last trim is [`GiveBack::EVERY`] ago.
    pub fn offer(&mut self) {
        // SAFETY: mallinfo2 only reads the allocator's counters (it walks
        // the free lists, not the pages).
        let free = unsafe { libc::mallinfo2() }.fordblks;
        if free < Self::FREE && self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = Instant::now();
        // SAFETY: malloc_trim only releases free memory; it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_maps_shrink_and_working_ones_stay() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = map.capacity();
        map.retain(|&k, _| k < 8_000);
        shrink_when_sparse(&mut map);
        // (Deleted slots count against capacity() until the next rehash.)
        assert!(map.capacity() > full / 2, "most used: left alone");
        map.retain(|&k, _| k < 100);
        shrink_when_sparse(&mut map);
        assert!(map.capacity() < full / 4, "{} of {full}", map.capacity());
        assert_eq!(map.len(), 100);
    }
}
