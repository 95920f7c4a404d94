//! The thread that reads a collector's ring buffer: events must not wait
//! for a round, so each collector with a ring (http, events) reads it on a
//! thread of its own. The thread starts at the first round, not at load:
//! `sonde run` drops the capabilities loading needs between the two, and
//! a thread keeps the set it was started with (`crate::privilege`). It
//! runs until the collector is dropped, or fails; a round then reports
//! the failure. Also the ring's size, which the config sets before the
//! object loads ([`set_size`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};
use libbpf_rs::{MapCore, MapFlags, MapHandle, OpenMapMut};

use super::ringbuf::RingBuf;

/// How long a reader waits while events come (programs wake it only once
/// the ring fills up) before it reads what came.
const POLL: Duration = Duration::from_millis(50);
/// The wait once a read found at least [`BUSY`] events: a read of a busy
/// ring is then a tenth as long. The reader's CPU is the same, but a
/// server sharing its CPU waits 0.3 ms for it instead of 3 ms, which set
/// the p99 of requests under load (BENCHMARKS.md, HTTP).
const BUSY_POLL: Duration = Duration::from_millis(5);
const BUSY: usize = 64;
/// How long an idle reader sleeps: the program wakes it at the first event
/// after (`SONDE_RING_SUBMIT` in bpf/sonde.h) and [`Stop`] when it is to
/// stop, so this bounds only how late an event is read that raced with its
/// falling asleep (about a collection interval). Each wakeup of an idle
/// reader costs it about 60 µs; at 1 s the two readers were a twentieth of
/// an idle sonde's CPU (BENCHMARKS.md, idle).
const IDLE_POLL: Duration = Duration::from_secs(10);

/// The sizes a ring may be given: the kernel takes a power of two of
/// whole pages; the smallest keeps a quarter (the wakeup mark) at 16 of
/// the largest events (the http collector's ~1 KiB), the largest is far
/// beyond any need (all of it is resident in sonde, [`RingBuf`]).
const MIN_BYTES: u64 = 64 << 10;
const MAX_BYTES: u64 = 256 << 20;

/// Checks a configured ring size; the error says what is expected.
pub fn check_size(bytes: u64) -> Result<(), String> {
    if bytes.is_power_of_two() && (MIN_BYTES..=MAX_BYTES).contains(&bytes) {
        return Ok(());
    }
    Err(format!(
        "expected a power of two from 64KiB to 256MiB (such as \"256KiB\" or \"1MiB\"), got {bytes} bytes"
    ))
}

/// Sizes a ring before its object loads: the map's `max_entries`, and the
/// program's `wakeup_shift`, log2 of a quarter of it (bpf/sonde.h).
pub fn set_size(
    ring: &mut OpenMapMut<'_>,
    wakeup_shift: &mut u32,
    bytes: u64,
) -> anyhow::Result<()> {
    check_size(bytes).map_err(anyhow::Error::msg)?;
    ring.set_max_entries(u32::try_from(bytes)?)
        .context("sizing the ring buffer")?;
    *wakeup_shift = (bytes / 4).trailing_zeros();
    Ok(())
}

type Run = Box<dyn FnOnce(&Stop) -> anyhow::Result<()> + Send>;

/// Tells a reader to stop: a flag it checks after each wait, and an
/// eventfd in the set it waits on, so a sleeping reader stops at once.
pub struct Stop {
    requested: AtomicBool,
    wake: OwnedFd,
}

impl Stop {
    fn new() -> anyhow::Result<Stop> {
        // SAFETY: eventfd takes no pointers; the fd it returns is ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        anyhow::ensure!(
            fd >= 0,
            "cannot make an eventfd: {}",
            std::io::Error::last_os_error()
        );
        Ok(Stop {
            requested: AtomicBool::new(false),
            // SAFETY: fd is a fresh descriptor nothing else owns.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our eventfd. A
        // failed write (the counter full) leaves it readable all the same.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
}

pub struct RingReader {
    name: &'static str,
    state: State,
    stop: Arc<Stop>,
}

enum State {
    Waiting(Run),
    Running(JoinHandle<anyhow::Result<()>>),
    Stopped,
}

impl RingReader {
    /// `run` reads until the [`Stop`] it is given is requested, on thread
    /// `name`.
    pub fn new(
        name: &'static str,
        run: impl FnOnce(&Stop) -> anyhow::Result<()> + Send + 'static,
    ) -> anyhow::Result<RingReader> {
        Ok(RingReader {
            name,
            state: State::Waiting(Box::new(run)),
            stop: Arc::new(Stop::new()?),
        })
    }

    /// Starts the thread the first time; later calls do nothing.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if let State::Waiting(_) = self.state {
            let State::Waiting(run) = std::mem::replace(&mut self.state, State::Stopped) else {
                unreachable!("matched above");
            };
            let stop = Arc::clone(&self.stop);
            let thread = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || run(&stop))?;
            self.state = State::Running(thread);
        }
        Ok(())
    }

    /// The reason the thread ended, once it has (it ends only by failing).
    pub fn check(&mut self) -> anyhow::Result<()> {
        if matches!(&self.state, State::Running(thread) if thread.is_finished()) {
            if let State::Running(thread) = std::mem::replace(&mut self.state, State::Stopped) {
                thread.join().map_err(|_| anyhow!("panicked"))??;
            }
        }
        Ok(())
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.stop.request();
        if let State::Running(thread) = std::mem::replace(&mut self.state, State::Stopped) {
            let _ = thread.join();
        }
    }
}

/// Reads `ring` until `stop`, handing each record to `on_record`, every
/// [`POLL`] while events come ([`BUSY_POLL`] while many do); once a wait
/// found none it sets the
/// program's `asleep` flag (its map of one u32, `SONDE_RING_READER_FLAG`
/// in bpf/sonde.h) and sleeps up to [`IDLE_POLL`], and the program wakes
/// it at the next event: an idle host pays next to no wakeups, a new event
/// is read at once. A signal (SIGHUP for a reload, a debugger attaching)
/// interrupts the wait; that is no reason to stop reading.
pub fn poll_until(
    ring: &mut RingBuf<'_>,
    mut on_record: impl FnMut(&[u8]),
    asleep: &MapHandle,
    stop: &Stop,
) -> anyhow::Result<()> {
    let waiter = Waiter::new([ring.as_fd(), stop.wake.as_fd()])?;
    let (mut sleeping, mut read) = (false, 0);
    while !stop.requested() {
        waiter.wait(match (sleeping, read >= BUSY) {
            (true, _) => IDLE_POLL,
            (false, true) => BUSY_POLL,
            (false, false) => POLL,
        })?;
        read = ring.consume(&mut on_record);
        let idle = read == 0;
        if idle && !sleeping {
            // The flag first, then one more read: an event committed
            // before the program saw the flag is read now, not at the
            // end of the sleep.
            asleep
                .update(&0u32.to_ne_bytes(), &1u32.to_ne_bytes(), MapFlags::ANY)
                .context("cannot set the ring reader's wakeup flag")?;
            sleeping = ring.consume(&mut on_record) == 0;
        } else if !idle {
            // The program cleared the flag as it woke the reader (or will
            // at the next event: one early wakeup).
            sleeping = false;
        }
    }
    Ok(())
}

/// An epoll set over the ring's map fd (readable while the ring holds
/// events) and the stop eventfd: a wait ends at whichever comes first.
struct Waiter(OwnedFd);

impl Waiter {
    fn new(fds: [BorrowedFd<'_>; 2]) -> anyhow::Result<Waiter> {
        let os_error = || std::io::Error::last_os_error();
        // SAFETY: epoll_create1 takes no pointers; the fd it returns is ours.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        anyhow::ensure!(epoll >= 0, "cannot make an epoll set: {}", os_error());
        // SAFETY: epoll is a fresh descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        for fd in fds {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            // SAFETY: both fds are open; `event` is a live epoll_event.
            let added = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd.as_raw_fd(),
                    &mut event,
                )
            };
            anyhow::ensure!(added == 0, "cannot wait on the ring buffer: {}", os_error());
        }
        Ok(Waiter(epoll))
    }

    /// Waits until a ring holds events, the reader is to stop, or `timeout`.
    fn wait(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `events` has room for the 2 events asked for.
        let ready = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), 2, ms) };
        let err = std::io::Error::last_os_error();
        if ready < 0 && err.raw_os_error() != Some(libc::EINTR) {
            return Err(err).context("cannot poll the ring buffer");
        }
        Ok(())
    }
}
