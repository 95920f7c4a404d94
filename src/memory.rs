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
//!
//! And one thing that is not state at all: the binary's own pages.
//! [`release_startup_pages`] hands back, once the first round is stored, the
//! pages of code and read-only data that only starting needed (loading the
//! BPF objects embedded in the binary, the migrations, the config parser,
//! creating every series).

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
/// when the round's scratch has been freed, it trims once per
/// [`GiveBack::EVERY`], and after every round while the arenas hold more
/// than [`GiveBack::FREE`] free (a churn forgotten: each round's scratch
/// would land on its fragments and fault them back in).
///
/// The free bytes are read only when a trim is due anyway: `mallinfo2`
/// walks every arena's free lists under its lock, and reading it every
/// round was a tenth of an idle sonde's ingest thread (perf, BENCHMARKS.md).
/// So a churn forgotten starts the per-round trims at the next minute's.
pub struct GiveBack {
    last: Instant,
    /// The arenas held more than [`GiveBack::FREE`] free at the last trim.
    fragmented: bool,
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
            fragmented: false,
        }
    }

    /// Trims every arena if they held more than [`GiveBack::FREE`] free at
    /// the last trim, or the last trim is [`GiveBack::EVERY`] ago.
    pub fn offer(&mut self) {
        if !self.fragmented && self.last.elapsed() < Self::EVERY {
            return;
        }
        // SAFETY: mallinfo2 only reads the allocator's counters (it walks
        // the free lists, not the pages).
        self.fragmented = unsafe { libc::mallinfo2() }.fordblks >= Self::FREE;
        self.last = Instant::now();
        // SAFETY: malloc_trim only releases free memory; it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Drops from sonde's resident memory the pages of its binary's read-only
/// mappings (code and constants), so that what stays resident is what the
/// rounds use, not what starting touched once: measured at idle, 14.4 MiB of
/// the binary was resident after start and 8 MiB is touched again by the
/// rounds that follow (`benches/idle.sh`, BENCHMARKS.md). The pages stay in
/// the page cache: touching one again is a minor fault, no disk read.
///
/// Invariant: only mappings without a private copy of any page are released
/// (`Anonymous: 0 kB` in smaps). A read-only mapping may hold pages written
/// before it was made read-only (relocations, RELRO); dropping those would
/// bring back the file's bytes in their place. Such a mapping cannot gain a
/// private page after the check, being read-only.
pub fn release_startup_pages() -> anyhow::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for (range, anonymous_kib) in read_only_mappings(&smaps, &exe.to_string_lossy()) {
        if anonymous_kib != 0 {
            continue;
        }
        // SAFETY: the range is a whole mapping of this process, read-only
        // and without private pages (above): MADV_DONTNEED only unmaps
        // pages that the next access maps again from the file, unchanged.
        let dropped = unsafe {
            libc::madvise(
                range.start as *mut libc::c_void,
                range.end - range.start,
                libc::MADV_DONTNEED,
            )
        };
        if dropped == 0 {
            released += range.end - range.start;
        }
    }
    Ok(released)
}

/// The address range and anonymous KiB of each read-only mapping of `exe`
/// in `smaps` (the format of /proc/PID/smaps).
fn read_only_mappings(smaps: &str, exe: &str) -> Vec<(std::ops::Range<usize>, u64)> {
    let mut mappings = Vec::new();
    let mut current: Option<std::ops::Range<usize>> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let read_only = perms.starts_with("r-") && perms.ends_with('p');
            current = (read_only && path == exe).then_some(start..end);
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                let kib = fields
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(u64::MAX);
                mappings.push((range, kib));
            }
        }
    }
    mappings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_mappings_of_the_binary_are_released() {
        let smaps = "\
00200000-0071a000 r--p 00000000 fd:01 42 /usr/bin/sonde
Rss:                1280 kB
Anonymous:             0 kB
0071a000-013fd000 r-xp 0051a000 fd:01 42 /usr/bin/sonde
Anonymous:             0 kB
013fd000-0140a000 r--p 011fd000 fd:01 42 /usr/bin/sonde
Anonymous:            52 kB
0140a000-01500000 rw-p 0120a000 fd:01 42 /usr/bin/sonde
Anonymous:            36 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 43 /usr/lib/other.so
Anonymous:             0 kB
";
        assert_eq!(
            read_only_mappings(smaps, "/usr/bin/sonde"),
            [
                (0x200000..0x71a000, 0),
                (0x71a000..0x13fd000, 0),
                (0x13fd000..0x140a000, 52),
            ]
        );
    }

    #[test]
    fn released_code_runs_again() {
        let released = release_startup_pages().unwrap();
        assert!(released > 0);
        // The code after the release is mapped back in from the file.
        let text = format!("{:?}", (released, "again"));
        assert!(text.ends_with("\"again\")"));
    }

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
