//! Reading a whole BPF map each round in as few syscalls as the kernel
//! allows: `BPF_MAP_LOOKUP_BATCH` hands over many entries (and every CPU's
//! copy of a per-CPU value) per call, where a walk costs two calls per entry
//! (next key, then lookup). Kernels without batch operations (before 5.6, or
//! a map type without them) get the walk; `SONDE_BPF_REFUSE=batch` forces
//! it. Draining a map ([`drain_map`]) is the same pass with
//! `BPF_MAP_LOOKUP_AND_DELETE_BATCH`, or a walk that deletes each key it read.
//!
//! A pass hands each entry to a callback as borrowed slices: a round reads
//! thousands of entries, and an owned key and value each were two heap
//! blocks allocated and freed per entry. The batch buffers outlive the pass
//! ([`Scratch`]).

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Context};
use libbpf_rs::{libbpf_sys, MapCore, MapFlags};

use super::check_refused;

/// The name `SONDE_BPF_REFUSE` takes to make batch reads fail.
pub const REFUSE_NAME: &str = "batch";

/// Set once a batch read failed as unsupported, so later rounds walk
/// straight away.
static BATCH_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Bytes of values one batch call aims to fetch: large enough that a few
/// calls read a busy map, small enough for many CPUs times big values.
const BATCH_BYTES: usize = 1 << 20;

/// One entry of a map: its key, and its value as native-endian u64 words
/// summed over CPUs (for a per-CPU map) word by word.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u64>,
}

/// How to read a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// `BPF_MAP_LOOKUP_BATCH`, falling back to [`Read::Walk`] when the
    /// kernel lacks it.
    Batched,
    /// Next key, then lookup, entry by entry.
    Walk,
}

/// Every entry of `map` (hash or array, per-CPU or not), the first `words`
/// u64 words of each value summed over CPUs. Entries added or removed while
/// it reads may or may not be seen, as with any walk of a live map.
pub fn read_map<M: MapCore>(map: &M, words: usize) -> anyhow::Result<Vec<Entry>> {
    read_map_with(map, words, Read::Batched)
}

/// [`read_map`], choosing how (benchmarks compare the two).
pub fn read_map_with<M: MapCore>(map: &M, words: usize, how: Read) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    visit(map, words, how, Op::Read, &mut |key, value| {
        entries.push(Entry {
            key: key.to_vec(),
            value: value.to_vec(),
        })
    })?;
    Ok(entries)
}

/// [`read_map`] without a copy: shows `each` every entry (its key, its
/// value's words summed over CPUs) as the kernel hands it over.
pub fn for_each_entry<M: MapCore>(
    map: &M,
    words: usize,
    mut each: impl FnMut(&[u8], &[u64]),
) -> anyhow::Result<()> {
    visit(map, words, Read::Batched, Op::Read, &mut each)
}

/// Deletes every entry of `map`, showing `each` every entry (as
/// [`for_each_entry`]) once it is deleted, so entries handed over before an
/// error were shown; the rest stay in the map. Only for a map no program
/// writes meanwhile (a settled half, [`super::drain`]): an update between
/// the read and the delete would be lost.
pub fn drain_map<M: MapCore>(
    map: &M,
    words: usize,
    mut each: impl FnMut(&[u8], &[u64]),
) -> anyhow::Result<()> {
    visit(map, words, Read::Batched, Op::Drain, &mut each)
}

/// What a pass over a map does to the entries it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Drain,
}

/// What a pass shows each entry to: its key, its value's words summed over
/// CPUs.
type Each<'a> = dyn FnMut(&[u8], &[u64]) + 'a;

fn visit<M: MapCore>(
    map: &M,
    words: usize,
    how: Read,
    op: Op,
    each: &mut Each<'_>,
) -> anyhow::Result<()> {
    let value_size = map.value_size() as usize;
    if words * 8 > value_size {
        bail!(
            "map {:?}: {words} words asked of a {value_size}-byte value",
            map.name()
        );
    }
    let what = match op {
        Op::Read => "reading",
        Op::Drain => "draining",
    };
    if how == Read::Batched
        && !BATCH_UNSUPPORTED.load(Ordering::Relaxed)
        && check_refused(REFUSE_NAME).is_ok()
    {
        match batched_pass(map, words, op, each) {
            Ok(()) => return Ok(()),
            Err(Batch::Unsupported(errno)) => {
                BATCH_UNSUPPORTED.store(true, Ordering::Relaxed);
                tracing::info!(
                    "BPF map batch operations unsupported here ({}): going through maps entry by entry",
                    std::io::Error::from_raw_os_error(errno)
                );
            }
            Err(Batch::Failed(err)) => {
                return Err(err.context(format!("{what} map {:?}", map.name())))
            }
        }
    }
    walk(map, words, op, each).with_context(|| format!("{what} map {:?}", map.name()))
}

enum Batch {
    /// The kernel has no batch lookup for this map: errno.
    Unsupported(i32),
    Failed(anyhow::Error),
}

/// The buffers batch calls fill, kept from pass to pass on the thread that
/// reads (the collect thread): sized for a whole map (up to [`BATCH_BYTES`]),
/// they were each a mapping of its own (over the allocator's fixed mmap
/// threshold, [`crate::memory`]) made, faulted in page by page and unmapped
/// again by every pass of every map, every round.
///
/// Invariant: a buffer holds resident only the pages batch calls wrote,
/// and at most [`Scratch::SLACK`] more than the latest pass needed: a
/// buffer freshly made is the allocator's zeroed memory (a mapping of its
/// own: no page is resident until the kernel writes it), and one whose
/// written high-water mark is more than that above the latest pass's need
/// (a churn of processes filled the maps once) is given back whole.
#[derive(Default)]
struct Scratch {
    keys: Buffer,
    values: Buffer,
}

impl Scratch {
    /// Resident bytes a buffer may hold above what the latest pass wrote.
    const SLACK: usize = 256 << 10;
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    /// Bytes written since it was made (by any pass).
    written: usize,
}

impl Buffer {
    /// At least `len` bytes to hand the kernel.
    fn room(&mut self, len: usize) -> &mut [u8] {
        if self.bytes.len() < len {
            // Zeroed by the allocator (untouched pages of a mapping), not
            // written here.
            self.bytes = vec![0; len];
            self.written = 0;
        }
        &mut self.bytes[..len]
    }

    /// Records that a pass wrote `len` bytes from the start, and gives the
    /// buffer back if it holds far more written pages than that.
    fn used(&mut self, len: usize) {
        self.written = self.written.max(len);
        if self.written > len + Scratch::SLACK {
            *self = Buffer::default();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// One pass of batch calls: lookup, or lookup-and-delete (both Linux 5.6
/// for hashes). Entries go to `each` chunk by chunk, as the kernel hands
/// them over.
fn batched_pass<M: MapCore>(
    map: &M,
    words: usize,
    op: Op,
    each: &mut Each<'_>,
) -> Result<(), Batch> {
    // Taken, not borrowed: `each` may read another map on this thread.
    let mut scratch = SCRATCH.take();
    let result = batched_pass_with(map, words, op, each, &mut scratch);
    SCRATCH.set(scratch);
    result
}

fn batched_pass_with<M: MapCore>(
    map: &M,
    words: usize,
    op: Op,
    each: &mut Each<'_>,
    scratch: &mut Scratch,
) -> Result<(), Batch> {
    let cpus = if map.map_type().is_percpu() {
        possible_cpus().map_err(Batch::Failed)?
    } else {
        1
    };
    let key_size = map.key_size() as usize;
    // Each CPU's copy of a value is padded to 8 bytes in the buffer.
    let stride = (map.value_size() as usize).next_multiple_of(8);
    let entry_bytes = stride * cpus;
    let max_entries = map.max_entries().max(1) as usize;
    let mut chunk = (BATCH_BYTES / entry_bytes.max(1)).clamp(1, max_entries);
    // The resume token: a bucket number for hashes, an index for arrays;
    // libbpf asks for at least a key's worth of room.
    let token_len = key_size.max(8);
    let mut token_in: Option<Vec<u8>> = None;
    let mut token_out = vec![0u8; token_len];
    let mut sums = vec![0u64; words];
    // How many entries the pass's largest call handed over.
    let mut most = 0;
    let call = match op {
        Op::Read => libbpf_sys::bpf_map_lookup_batch,
        Op::Drain => libbpf_sys::bpf_map_lookup_and_delete_batch,
    };
    loop {
        let mut count = u32::try_from(chunk).map_err(|err| Batch::Failed(err.into()))?;
        let opts = libbpf_sys::bpf_map_batch_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
            ..Default::default()
        };
        let token_in_ptr = token_in
            .as_mut()
            .map_or(std::ptr::null_mut(), |token| token.as_mut_ptr().cast());
        let keys = scratch.keys.room(chunk * key_size);
        let values = scratch.values.room(chunk * entry_bytes);
        // SAFETY: the buffers hold `chunk` keys and `chunk` values of the
        // sizes the kernel writes (per-CPU values padded to 8 bytes, one per
        // possible CPU); the tokens hold at least a key and 8 bytes.
        let rc = unsafe {
            call(
                map.as_fd().as_raw_fd(),
                token_in_ptr,
                token_out.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        let last = match -rc {
            0 => false,
            libc::ENOENT => true,
            libc::EINTR => continue,
            // A hash bucket holds more entries than fit: a bigger chunk.
            libc::ENOSPC if count == 0 && chunk < max_entries => {
                chunk = (chunk * 2).min(max_entries);
                continue;
            }
            errno @ (libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if token_in.is_none() => {
                return Err(Batch::Unsupported(errno));
            }
            errno => {
                return Err(Batch::Failed(anyhow!(
                    "batch call: {}",
                    std::io::Error::from_raw_os_error(errno)
                )))
            }
        };
        let count = count as usize;
        most = most.max(count);
        for (key, value) in keys
            .chunks_exact(key_size)
            .zip(values.chunks_exact(entry_bytes))
            .take(count)
        {
            sum_words_into(&mut sums, value.chunks_exact(stride));
            each(key, &sums);
        }
        if last {
            scratch.keys.used(most * key_size);
            scratch.values.used(most * entry_bytes);
            return Ok(());
        }
        token_in = Some(token_out.clone());
    }
}

/// The kernel's "operation not supported" (not the same number as the C
/// library's EOPNOTSUPP), which libbpf passes on.
const ENOTSUPP: i32 = 524;

/// Next key, then lookup (then delete, when draining), entry by entry. A
/// drain deletes a key only after the walk has read the next one, so the
/// walk goes on from there.
fn walk<M: MapCore>(map: &M, words: usize, op: Op, each: &mut Each<'_>) -> anyhow::Result<()> {
    let percpu = map.map_type().is_percpu();
    let mut read = None;
    for key in map.keys() {
        if let Some(done) = read.take() {
            delete(map, done, each)?;
        }
        let values = if percpu {
            map.lookup_percpu(&key, MapFlags::ANY)?
        } else {
            map.lookup(&key, MapFlags::ANY)?.map(|value| vec![value])
        };
        let Some(values) = values else {
            continue; // removed meanwhile
        };
        let entry = Entry {
            key,
            value: sum_words(values.iter().map(Vec::as_slice), words),
        };
        match op {
            Op::Read => each(&entry.key, &entry.value),
            Op::Drain => read = Some(entry),
        }
    }
    if let Some(done) = read {
        delete(map, done, each)?;
    }
    Ok(())
}

/// Deletes a drained entry; only then is it handed over.
fn delete<M: MapCore>(map: &M, entry: Entry, each: &mut Each<'_>) -> anyhow::Result<()> {
    map.delete(&entry.key)?;
    each(&entry.key, &entry.value);
    Ok(())
}

/// Sums the first `words` native-endian u64s of each per-CPU copy.
fn sum_words<'a>(copies: impl Iterator<Item = &'a [u8]>, words: usize) -> Vec<u64> {
    let mut sums = vec![0u64; words];
    sum_words_into(&mut sums, copies);
    sums
}

/// [`sum_words`] into `sums` (as many words as it holds).
fn sum_words_into<'a>(sums: &mut [u64], copies: impl Iterator<Item = &'a [u8]>) {
    sums.fill(0);
    for copy in copies {
        for (sum, word) in sums.iter_mut().zip(copy.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            *sum = sum.wrapping_add(u64::from_ne_bytes(bytes));
        }
    }
}

fn possible_cpus() -> anyhow::Result<usize> {
    // SAFETY: reads /sys/devices/system/cpu/possible once and caches it.
    let cpus = unsafe { libbpf_sys::libbpf_num_possible_cpus() };
    usize::try_from(cpus).map_err(|_| {
        anyhow!(
            "cannot count possible CPUs: {}",
            std::io::Error::from_raw_os_error(-cpus)
        )
    })
}

/// A map of `max_entries` with `entries` filled in: keys of `key_size`
/// bytes counting up from 0, each CPU's value words `key + cpu` (for
/// tests and benchmarks). Fails where BPF maps cannot be made.
pub fn filled_map(
    map_type: libbpf_rs::MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    entries: u32,
) -> anyhow::Result<libbpf_rs::MapHandle> {
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let map = libbpf_rs::MapHandle::create(
        map_type,
        Some("sonde_test"),
        key_size,
        value_size,
        max_entries,
        &opts,
    )?;
    let cpus = if map_type.is_percpu() {
        possible_cpus()?
    } else {
        1
    };
    for n in 0..entries {
        let mut key = vec![0u8; key_size as usize];
        key[..4].copy_from_slice(&n.to_ne_bytes());
        let copies: Vec<Vec<u8>> = (0..cpus as u64)
            .map(|cpu| {
                (0..value_size / 8)
                    .flat_map(|_| (u64::from(n) + cpu).to_ne_bytes())
                    .collect()
            })
            .collect();
        if map_type.is_percpu() {
            map.update_percpu(&key, &copies, MapFlags::ANY)?;
        } else {
            map.update(&key, &copies[0], MapFlags::ANY)?;
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::MapType;

    /// Both ways read the same entries, summed over CPUs, from hashes and
    /// arrays (per-CPU or not), including a hash bigger than one batch.
    /// [`filled_map`], or None (the test skips) where BPF maps cannot be
    /// made and `SONDE_REQUIRE_BPF=1` does not ask for them.
    fn filled_or_skip(
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        filled: u32,
    ) -> Option<libbpf_rs::MapHandle> {
        match filled_map(map_type, key_size, value_size, max_entries, filled) {
            Ok(map) => Some(map),
            Err(err) => {
                let required = std::env::var("SONDE_REQUIRE_BPF").is_ok_and(|v| v == "1");
                assert!(!required, "SONDE_REQUIRE_BPF=1 but: {err:#}");
                eprintln!("skipping: cannot make BPF maps here: {err:#}");
                None
            }
        }
    }

    #[test]
    fn batched_and_walked_reads_agree() {
        let cases = [
            (MapType::PercpuHash, 32, 8, 8192, 3000),
            (MapType::PercpuHash, 8, 216, 1024, 700),
            (MapType::Hash, 32, 8, 4096, 100),
            (MapType::PercpuArray, 4, 216, 512, 512),
            (MapType::PercpuHash, 32, 8, 64, 0),
        ];
        for (map_type, key_size, value_size, max_entries, filled) in cases {
            let Some(map) = filled_or_skip(map_type, key_size, value_size, max_entries, filled)
            else {
                return;
            };
            let words = (value_size / 8) as usize;
            let mut batched = Vec::new();
            let mut collect = |key: &[u8], value: &[u64]| {
                batched.push(Entry {
                    key: key.to_vec(),
                    value: value.to_vec(),
                })
            };
            match batched_pass(&map, words, Op::Read, &mut collect) {
                Ok(()) => {}
                Err(Batch::Unsupported(errno)) => {
                    eprintln!("skipping {map_type:?}: no batch lookup here (errno {errno})");
                    continue;
                }
                Err(Batch::Failed(err)) => panic!("{map_type:?}: {err:#}"),
            }
            let mut walked = read_map_with(&map, words, Read::Walk).unwrap();
            batched.sort_by(|a, b| a.key.cmp(&b.key));
            walked.sort_by(|a, b| a.key.cmp(&b.key));
            assert_eq!(batched.len(), filled as usize, "{map_type:?}");
            assert_eq!(batched, walked, "{map_type:?}");
            let cpus = if map_type.is_percpu() {
                possible_cpus().unwrap() as u64
            } else {
                1
            };
            for entry in &batched {
                let n = u64::from(u32::from_ne_bytes(entry.key[..4].try_into().unwrap()));
                let expected = n * cpus + (0..cpus).sum::<u64>();
                assert_eq!(entry.value, vec![expected; words], "{map_type:?}");
            }
        }
    }

    /// A drain hands over what a read sees and leaves the map empty, batched
    /// or walked, from shared and per-CPU hashes bigger than one batch.
    #[test]
    fn drains_hand_over_every_entry_once() {
        let cases = [
            (MapType::PercpuHash, 32, 8, 8192, 3000),
            (MapType::Hash, 32, 16, 4096, 100),
            (MapType::Hash, 32, 8, 64, 0),
        ];
        for (map_type, key_size, value_size, max_entries, filled) in cases {
            for how in [Read::Batched, Read::Walk] {
                let Some(map) = filled_or_skip(map_type, key_size, value_size, max_entries, filled)
                else {
                    return;
                };
                let words = (value_size / 8) as usize;
                let mut read = read_map(&map, words).unwrap();
                let mut drained = Vec::new();
                visit(&map, words, how, Op::Drain, &mut |key, value| {
                    drained.push(Entry {
                        key: key.to_vec(),
                        value: value.to_vec(),
                    })
                })
                .unwrap();
                read.sort_by(|a, b| a.key.cmp(&b.key));
                drained.sort_by(|a, b| a.key.cmp(&b.key));
                assert_eq!(drained.len(), filled as usize, "{map_type:?} {how:?}");
                assert_eq!(drained, read, "{map_type:?} {how:?}");
                assert!(
                    read_map(&map, words).unwrap().is_empty(),
                    "{map_type:?} {how:?}"
                );
            }
        }
    }

    #[test]
    fn words_sum_across_copies() {
        let copy = |a: u64, b: u64| [a.to_ne_bytes(), b.to_ne_bytes()].concat();
        let (x, y) = (copy(1, 10), copy(2, 20));
        assert_eq!(
            sum_words([x.as_slice(), y.as_slice()].into_iter(), 2),
            [3, 30]
        );
        assert_eq!(sum_words([x.as_slice()].into_iter(), 1), [1]);
    }
}
