//! The thread that reads a collector's ring buffer: events must not wait
//! for a round, so each collector with a ring (http, events) reads it on a
//! thread of its own. The thread starts at the first round, not at load:
//! `sonde run` drops the capabilities loading needs between the two, and
//! a thread keeps the set it was started with (`crate::privilege`). It
//! runs until the collector is dropped, or fails; a round then reports
//! the failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};
use libbpf_rs::{MapCore, MapFlags, MapHandle, RingBuffer};

/// How long a reader waits while events come (programs wake it only once
/// the ring fills up) before it reads what came and checks whether to stop.
const POLL: Duration = Duration::from_millis(50);
/// How long an idle reader sleeps: the program wakes it at the first event
/// after (`SONDE_RING_SUBMIT` in bpf/sonde.h), so this bounds only how late
/// it stops, and how late an event is read that raced with its falling
/// asleep.
const IDLE_POLL: Duration = Duration::from_secs(1);

type Run = Box<dyn FnOnce(&AtomicBool) -> anyhow::Result<()> + Send>;

pub struct RingReader {
    name: &'static str,
    state: State,
    stop: Arc<AtomicBool>,
}

enum State {
    Waiting(Run),
    Running(JoinHandle<anyhow::Result<()>>),
    Stopped,
}

impl RingReader {
    /// `run` reads until the flag it is given is set, on thread `name`.
    pub fn new(
        name: &'static str,
        run: impl FnOnce(&AtomicBool) -> anyhow::Result<()> + Send + 'static,
    ) -> RingReader {
        RingReader {
            name,
            state: State::Waiting(Box::new(run)),
            stop: Arc::new(AtomicBool::new(false)),
        }
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
        self.stop.store(true, Ordering::Relaxed);
        if let State::Running(thread) = std::mem::replace(&mut self.state, State::Stopped) {
            let _ = thread.join();
        }
    }
}

/// Reads `ring` until `stop`, every [`POLL`] while events come; once a
/// poll found none it sets the program's `asleep` flag (its map of one
/// u32, `SONDE_RING_READER_FLAG` in bpf/sonde.h) and sleeps up to
/// [`IDLE_POLL`], and the program wakes it at the next event: an idle host
/// pays no wakeups, a new event is read at once. A poll that times out is
/// followed by reading what came meanwhile. A signal (SIGHUP for a reload,
/// a debugger attaching) interrupts the poll; that is no reason to stop
/// reading.
pub fn poll_until(ring: &RingBuffer, asleep: &MapHandle, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut sleeping = false;
    while !stop.load(Ordering::Relaxed) {
        let polled = ring.poll_raw(if sleeping { IDLE_POLL } else { POLL });
        if polled < 0 && polled != -libc::EINTR {
            return Err(std::io::Error::from_raw_os_error(-polled))
                .context("cannot poll the ring buffer");
        }
        let consumed = ring.consume_raw();
        if consumed < 0 {
            return Err(std::io::Error::from_raw_os_error(-consumed))
                .context("cannot read the ring buffer");
        }
        let idle = polled <= 0 && consumed == 0;
        if idle && !sleeping {
            // The flag first, then one more read: an event committed
            // before the program saw the flag is read now, not a second
            // later.
            asleep
                .update(&0u32.to_ne_bytes(), &1u32.to_ne_bytes(), MapFlags::ANY)
                .context("cannot set the ring reader's wakeup flag")?;
            sleeping = ring.consume_raw() == 0;
        } else if !idle {
            // The program cleared the flag as it woke the reader (or will
            // at the next event: one early wakeup).
            sleeping = false;
        }
    }
    Ok(())
}
