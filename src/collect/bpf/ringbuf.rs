//! sonde's reader of a BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`), in place of
//! libbpf's: it maps the ring's data once where libbpf maps it twice, so a
//! ring costs sonde its size in resident memory, not twice its size. It
//! owns the mappings and the walk over the records; when to read (epoll,
//! the sleep protocol) is [`super::ring::poll_until`]'s.
//!
//! # Layout (the kernel's `kernel/bpf/ringbuf.c`)
//! The map's fd maps as consecutive pages:
//! - at offset 0, one page: the consumer position, an `unsigned long` the
//!   reader writes (the only page the kernel lets be mapped writable);
//! - at one page, one page: the producer position, which the kernel writes;
//! - at two pages: the data, `max_entries` bytes (a power of two of whole
//!   pages), and then the same pages again, so that a record that wraps
//!   past the end reads as one.
//!
//! The kernel inserts every page into the mapping when it is made
//! (`remap_vmalloc_range`), so all that is mapped is resident. This reader
//! maps the consumer page read-write and the producer page with the data
//! once, read-only (the kernel accepts any length within its area), and
//! copies the one kind of record the second copy was for, one that wraps,
//! into a scratch buffer.
//!
//! # Records
//! Positions count bytes since the ring was made and never wrap; a
//! position's place in the data is `position & (size - 1)`. A record is an
//! 8-byte header, a u32 length with [`BUSY`] (reserved, not committed yet)
//! and [`DISCARD`] in its top bits and a u32 the kernel keeps for itself,
//! then the payload, padded to a multiple of 8 bytes. The walk is
//! libbpf's `ringbuf_process_ring`: records in order from the consumer
//! position up to the producer position, stopping at a busy one, skipping
//! discarded ones, the consumer position stored after each.
//!
//! # Invariants the walk relies on
//! - Records start 8-byte aligned and the size is a multiple of 8, so a
//!   header never straddles the end of the data; only a payload may.
//! - No record is longer than the data (`__bpf_ringbuf_reserve` refuses
//!   one), so a payload that wraps is two pieces, each within the data.
//! - The kernel stores a record's length with its busy bit cleared (a
//!   release) after its payload, and the producer position (a release)
//!   after reserving; the reader loads both with acquire, so what it reads
//!   of a committed record is complete.
//! - The kernel writes no byte between the consumer and the producer
//!   positions once reserved, until the reader stores a consumer position
//!   past it: a record lent to the callback does not change under it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use anyhow::{ensure, Context};
use libbpf_rs::{MapCore, MapType};

/// `BPF_RINGBUF_HDR_SZ`: a record's header.
const HEADER: usize = 8;
/// `BPF_RINGBUF_BUSY_BIT`: the record is reserved, not yet committed.
const BUSY: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`: the program discarded the record.
const DISCARD: u32 = 1 << 30;

/// A ring buffer map, mapped for reading. Its fd is readable (epoll's
/// EPOLLIN) while the ring holds data.
pub struct RingBuf<'map> {
    map: BorrowedFd<'map>,
    walk: Walk,
    // The walk points into these: they are unmapped only with it.
    _consumer_page: Mapping,
    _producer_and_data: Mapping,
}

impl<'map> RingBuf<'map> {
    /// Maps `map`, a loaded ring buffer map.
    pub fn new(map: &'map impl MapCore) -> anyhow::Result<RingBuf<'map>> {
        let name = map.name().to_string_lossy();
        ensure!(
            map.map_type() == MapType::RingBuf,
            "map {name} is not a ring buffer"
        );
        let size = usize::try_from(map.max_entries())?;
        // SAFETY: sysconf takes no pointers.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .context("cannot read the page size")?;
        ensure!(
            size.is_power_of_two() && size >= page,
            "ring buffer {name} has {size} bytes, not a power of two of pages"
        );
        let fd = map.as_fd();
        let consumer_page = Mapping::new(fd, 0, page, libc::PROT_READ | libc::PROT_WRITE)
            .with_context(|| format!("cannot map ring buffer {name}'s consumer page"))?;
        let producer_and_data = Mapping::new(fd, page, page + size, libc::PROT_READ)
            .with_context(|| format!("cannot map ring buffer {name}'s data"))?;
        let producer = producer_and_data.start;
        // SAFETY: the consumer position opens the consumer page, the
        // producer position the producer page, the data follows it, `size`
        // bytes (the layout above); each page is aligned for an
        // AtomicUsize. The mappings live as long as the walk (both are
        // fields of the RingBuf, unmapped when it drops).
        let walk = unsafe {
            Walk::new(
                consumer_page.start.cast(),
                producer.cast(),
                producer.add(page),
                size,
            )
        };
        Ok(RingBuf {
            map: fd,
            walk,
            _consumer_page: consumer_page,
            _producer_and_data: producer_and_data,
        })
    }

    /// Hands each committed record to `on_record`, in order, until none is
    /// left or one is still being written; returns how many it handed.
    pub fn consume(&mut self, on_record: impl FnMut(&[u8])) -> usize {
        self.walk.consume(on_record)
    }
}

impl AsFd for RingBuf<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map
    }
}

/// A shared mapping of a map's pages, unmapped on drop.
struct Mapping {
    start: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(
        fd: BorrowedFd<'_>,
        offset: usize,
        len: usize,
        protection: libc::c_int,
    ) -> std::io::Result<Mapping> {
        let offset = libc::off_t::try_from(offset).map_err(std::io::Error::other)?;
        // SAFETY: a new mapping at an address the kernel picks, of an open
        // fd; it aliases no Rust object.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                protection,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let start =
            NonNull::new(start.cast()).ok_or_else(|| std::io::Error::other("mapped at 0"))?;
        Ok(Mapping { start, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range mmap returned; nothing points into it any more
        // (the walk that did is dropped with the same RingBuf).
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.len) };
    }
}

/// The walk over a ring's records, wherever its memory lives (the kernel's
/// pages, or a test's buffer).
struct Walk {
    consumer_pos: NonNull<AtomicUsize>,
    producer_pos: NonNull<AtomicUsize>,
    data: NonNull<u8>,
    /// The data's size less one: a position's place in it is `pos & mask`.
    mask: usize,
    /// A record that wraps, made contiguous; as large as the largest such.
    scratch: Vec<u8>,
}

impl Walk {
    /// # Safety
    /// The two positions and the `size` bytes at `data` (a power of two, a
    /// multiple of 8, 8-byte aligned) stay valid for the walk's life, laid
    /// out and written as the module doc says.
    unsafe fn new(
        consumer_pos: NonNull<AtomicUsize>,
        producer_pos: NonNull<AtomicUsize>,
        data: NonNull<u8>,
        size: usize,
    ) -> Walk {
        Walk {
            consumer_pos,
            producer_pos,
            data,
            mask: size - 1,
            scratch: Vec::new(),
        }
    }

    fn consume(&mut self, mut on_record: impl FnMut(&[u8])) -> usize {
        // SAFETY: valid for the walk's life (`new`'s contract).
        let (consumer, producer) =
            unsafe { (self.consumer_pos.as_ref(), self.producer_pos.as_ref()) };
        let mut handed = 0;
        let mut pos = consumer.load(Ordering::Acquire);
        loop {
            let walked_from = pos;
            let end = producer.load(Ordering::Acquire);
            while pos < end {
                let offset = pos & self.mask;
                // SAFETY: offset is 8-byte aligned and at least 8 bytes
                // before the end of the data (invariants above).
                let header = unsafe { self.data.add(offset).cast::<AtomicU32>().as_ref() };
                let len = header.load(Ordering::Acquire);
                if len & BUSY != 0 {
                    // Still being written: it and all after it wait for
                    // the next read (its commit wakes the reader).
                    return handed;
                }
                let payload_len = (len & !(BUSY | DISCARD)) as usize;
                pos += (HEADER + payload_len).next_multiple_of(8);
                if len & DISCARD == 0 {
                    on_record(self.payload(offset + HEADER, payload_len));
                    handed += 1;
                }
                // The record's space is the kernel's again.
                consumer.store(pos, Ordering::Release);
            }
            // Records came while the walk ran: walk them too, as libbpf does.
            if pos == walked_from {
                return handed;
            }
        }
    }

    /// The `len` bytes from place `start` of the data on, wrapping.
    fn payload(&mut self, start: usize, len: usize) -> &[u8] {
        let size = self.mask + 1;
        // A header in the last 8 bytes has its payload at the start.
        let start = start & self.mask;
        let first = len.min(size - start);
        // SAFETY: start + first <= size, and len - first <= size (no record
        // is longer than the data); the kernel leaves these bytes alone
        // until the consumer position passes them (invariants above).
        let (head, tail) = unsafe {
            (
                std::slice::from_raw_parts(self.data.add(start).as_ptr(), first),
                std::slice::from_raw_parts(self.data.as_ptr(), len - first),
            )
        };
        if tail.is_empty() {
            return head;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(tail);
        &self.scratch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A ring in memory that the test writes as the kernel would.
    struct FakeRing {
        consumer: Box<AtomicUsize>,
        producer: Box<AtomicUsize>,
        data: Box<[AtomicU64]>,
        walk: Walk,
    }

    impl FakeRing {
        /// An empty ring of `size` bytes whose positions start at `pos`.
        fn new(size: usize, pos: usize) -> FakeRing {
            let consumer = Box::new(AtomicUsize::new(pos));
            let producer = Box::new(AtomicUsize::new(pos));
            let data: Box<[AtomicU64]> = (0..size / 8).map(|_| AtomicU64::new(0)).collect();
            // SAFETY: the boxes live as long as the walk, in the same
            // struct; `data` is size bytes of AtomicU64, 8-byte aligned.
            let walk = unsafe {
                Walk::new(
                    NonNull::from(&*consumer),
                    NonNull::from(&*producer),
                    NonNull::new(data.as_ptr().cast_mut().cast()).unwrap(),
                    size,
                )
            };
            FakeRing {
                consumer,
                producer,
                data,
                walk,
            }
        }

        fn size(&self) -> usize {
            self.data.len() * 8
        }

        /// Reserves a record as `__bpf_ringbuf_reserve` does (busy) and
        /// returns its position.
        fn reserve(&self, len: usize) -> usize {
            let pos = self.producer.load(Ordering::Relaxed);
            self.header(pos).store(len as u32 | BUSY, Ordering::Relaxed);
            let next = pos + (HEADER + len).next_multiple_of(8);
            self.producer.store(next, Ordering::Release);
            pos
        }

        /// Writes the payload at `pos` and commits it, or discards it.
        fn commit(&self, pos: usize, payload: &[u8], discard: bool) {
            let base: *mut u8 = self.data.as_ptr().cast_mut().cast();
            for (i, byte) in payload.iter().enumerate() {
                let place = (pos + HEADER + i) & (self.size() - 1);
                // SAFETY: place is within the data; AtomicU64 allows writes
                // through a shared reference, and the walk is not running.
                unsafe { base.add(place).write(*byte) };
            }
            let flag = if discard { DISCARD } else { 0 };
            self.header(pos)
                .store(payload.len() as u32 | flag, Ordering::Release);
        }

        fn produce(&self, payload: &[u8]) {
            self.commit(self.reserve(payload.len()), payload, false);
        }

        fn header(&self, pos: usize) -> &AtomicU32 {
            let place = pos & (self.size() - 1);
            // SAFETY: 8-byte aligned place within the data.
            unsafe {
                &*self
                    .data
                    .as_ptr()
                    .cast::<u8>()
                    .add(place)
                    .cast::<AtomicU32>()
            }
        }

        fn read(&mut self) -> Vec<Vec<u8>> {
            let mut records = Vec::new();
            let handed = self.walk.consume(|record| records.push(record.to_vec()));
            assert_eq!(handed, records.len());
            records
        }

        fn consumer_pos(&self) -> usize {
            self.consumer.load(Ordering::Relaxed)
        }
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn reads_records_in_order_and_frees_their_space() {
        let mut ring = FakeRing::new(256, 0);
        assert!(ring.read().is_empty());
        ring.produce(&bytes(5, 1));
        ring.produce(&bytes(16, 2));
        assert_eq!(ring.read(), vec![bytes(5, 1), bytes(16, 2)]);
        // 8 + 5 rounded up to 16, then 8 + 16.
        assert_eq!(ring.consumer_pos(), 16 + 24);
        assert!(ring.read().is_empty());
    }

    #[test]
    fn a_payload_that_wraps_past_the_end_reads_whole() {
        for start in (0..64).step_by(8) {
            let mut ring = FakeRing::new(64, 1000 * 64 + start);
            for seed in 0..12u8 {
                // 20 bytes, a record of 32: over the starts, a header
                // at every place of the 64, the last 8 bytes included.
                let payload = bytes(20, seed * 20);
                ring.produce(&payload);
                assert_eq!(ring.read(), vec![payload], "from {start}, record {seed}");
            }
            assert_eq!(ring.consumer_pos(), 1000 * 64 + start + 12 * 32);
        }
    }

    #[test]
    fn a_record_as_long_as_the_ring_allows_wraps_too() {
        let mut ring = FakeRing::new(64, 40);
        let payload = bytes(56, 7);
        ring.produce(&payload);
        assert_eq!(ring.read(), vec![payload]);
    }

    #[test]
    fn a_busy_record_stops_the_walk_until_committed() {
        let mut ring = FakeRing::new(256, 0);
        ring.produce(&bytes(8, 1));
        let busy = ring.reserve(8);
        ring.produce(&bytes(8, 3));
        assert_eq!(ring.read(), vec![bytes(8, 1)]);
        assert_eq!(ring.consumer_pos(), busy, "stops at the busy record");
        assert!(ring.read().is_empty());
        ring.commit(busy, &bytes(8, 2), false);
        assert_eq!(ring.read(), vec![bytes(8, 2), bytes(8, 3)]);
        assert_eq!(ring.consumer_pos(), 3 * 16);
    }

    #[test]
    fn a_discarded_record_is_skipped_and_its_space_freed() {
        let mut ring = FakeRing::new(256, 0);
        let discarded = ring.reserve(24);
        ring.commit(discarded, &bytes(24, 9), true);
        ring.produce(&bytes(4, 1));
        assert_eq!(ring.read(), vec![bytes(4, 1)]);
        assert_eq!(ring.consumer_pos(), 32 + 16);
        // Only discarded records: nothing handed, the space freed all the same.
        let discarded = ring.reserve(8);
        ring.commit(discarded, &bytes(8, 0), true);
        assert!(ring.read().is_empty());
        assert_eq!(ring.consumer_pos(), 32 + 16 + 16);
    }
}
