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
//! [`release_startup_pages`] hands back, once the first rounds are stored
//! and every thread has started, the pages of code and read-only data that
//! only starting needed (loading the BPF objects embedded in the binary, the
//! migrations, the config and rule parsers, creating every series). What
//! the rounds touch afterwards is laid out together by the linker
//! (`link/hot-text.txt`, build.rs), so it comes back as a few pages.

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
/// Invariant: a page the process holds a private copy of is never released,
/// only pages that are the file's own: dropping a private copy would bring
/// back the file's bytes in its place. A read-only mapping holds such
/// copies of pages written before it was made read-only (relocations,
/// RELRO), and the code does of each page a uprobe patched (the HTTP
/// collector's probe of sonde's own `sonde_doctor_uprobe_target`: one such
/// page kept the whole 13 MiB of code from being released). The pagemap
/// tells them apart; a uprobe attached to sonde's binary between reading it
/// and releasing (microseconds, once) would be lost.
pub fn release_startup_pages() -> anyhow::Result<usize> {
    use std::os::unix::fs::FileExt;
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let pagemap = std::fs::File::open("/proc/self/pagemap")?;
    let mut released = 0;
    for range in read_only_mappings(&maps, &exe.to_string_lossy()) {
        let mut entries = vec![0; range.len() / PAGE * 8];
        pagemap.read_exact_at(&mut entries, (range.start / PAGE * 8) as u64)?;
        for run in runs_of_file_pages(range, &entries) {
            // SAFETY: the run lies inside a read-only mapping of this
            // process and holds no private page (above): MADV_DONTNEED only
            // unmaps pages that the next access maps again from the file,
            // unchanged.
            let dropped = unsafe {
                libc::madvise(
                    run.start as *mut libc::c_void,
                    run.len(),
                    libc::MADV_DONTNEED,
                )
            };
            if dropped == 0 {
                released += run.len();
            }
        }
    }
    Ok(released)
}

/// The page size of x86-64 (the only target sonde builds for).
const PAGE: usize = 4096;

/// The address range of each read-only mapping of `exe` in `maps` (the
/// format of /proc/PID/maps).
fn read_only_mappings(maps: &str, exe: &str) -> Vec<std::ops::Range<usize>> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            let read_only = perms.starts_with("r-") && perms.ends_with('p');
            (read_only && path == exe).then_some(
                usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?,
            )
        })
        .collect()
}

/// The runs of pages of `range` that are not private copies, given the
/// pagemap's entries for its pages (8 bytes each: bit 63 present, bit 61
/// a page of the file or shared; present without bit 61 is a private copy).
fn runs_of_file_pages(
    range: std::ops::Range<usize>,
    entries: &[u8],
) -> Vec<std::ops::Range<usize>> {
    const PRESENT: u64 = 1 << 63;
    const FILE_OR_SHARED: u64 = 1 << 61;
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, entry) in entries.chunks_exact(8).enumerate() {
        let entry = u64::from_ne_bytes(entry.try_into().expect("8 bytes"));
        if entry & PRESENT != 0 && entry & FILE_OR_SHARED == 0 {
            continue;
        }
        let page = range.start + i * PAGE;
        match runs.last_mut() {
            Some(run) if run.end == page => run.end += PAGE,
            _ => runs.push(page..page + PAGE),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_mappings_of_the_binary_are_released() {
        let maps = "\
00200000-0071a000 r--p 00000000 fd:01 42 /usr/bin/sonde
0071a000-013fd000 r-xp 0051a000 fd:01 42 /usr/bin/sonde
0140a000-01500000 rw-p 0120a000 fd:01 42 /usr/bin/sonde
01500000-01600000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 r--p 00000000 fd:01 43 /usr/lib/other.so
";
        assert_eq!(
            read_only_mappings(maps, "/usr/bin/sonde"),
            [0x200000..0x71a000, 0x71a000..0x13fd000]
        );
    }

    #[test]
    fn private_copies_are_kept_and_the_rest_released() {
        const PRESENT: u64 = 1 << 63;
        const FILE: u64 = 1 << 61;
        // A file page, two absent, a private copy (a uprobe's), a file page.
        let entries: Vec<u8> = [PRESENT | FILE, 0, 0, PRESENT, PRESENT | FILE]
            .iter()
            .flat_map(|e| e.to_ne_bytes())
            .collect();
        let start = 0x400000;
        assert_eq!(
            runs_of_file_pages(start..start + 5 * PAGE, &entries),
            [start..start + 3 * PAGE, start + 4 * PAGE..start + 5 * PAGE]
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
