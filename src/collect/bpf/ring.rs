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

use anyhow::anyhow;
use libbpf_rs::RingBuffer;

/// How long a reader waits for a wakeup (programs wake it only once the
/// ring fills up) before it reads what came and checks whether to stop.
const POLL: Duration = Duration::from_millis(50);

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

/// Reads `ring` until `stop`: a poll that times out is followed by reading
/// what came meanwhile. A signal (SIGHUP for a reload, a debugger
/// attaching) interrupts the poll; that is no reason to stop reading.
pub fn poll_until(ring: &RingBuffer, stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        match ring.poll(POLL) {
            Err(err) if err.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            polled => polled?,
        }
        ring.consume()?;
    }
    Ok(())
}
