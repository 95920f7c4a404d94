//! Block I/O bytes the block collector's BPF programs charged to each cgroup
//! (the submitting process's cgroup v2 id), kept for the containers
//! collector: cgroup v1's blkio counters stay empty on kernels whose block
//! layer no longer feeds them, and cgroup v2's `io.stat` exists only where
//! the io controller is enabled, so these are the fallback.
//!
//! The block collector adds every drained increment ([`charge`]); the totals
//! only grow, per cgroup and device, while the cgroup lives. The containers
//! collector turns accounting on ([`enable`]) and drops the cgroups its walk
//! no longer finds ([`retain`]), so memory is bounded by live cgroups that
//! did I/O. Without the containers collector nothing is kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

/// Bytes (read, written) per (cgroup id, device as dev_t).
type Charged = HashMap<(u64, u32), [u64; 2]>;

static ENABLED: AtomicBool = AtomicBool::new(false);
static CHARGED: LazyLock<Mutex<Charged>> = LazyLock::new(Mutex::default);

/// Starts keeping charged bytes.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Adds `bytes` read (`write` false) or written to `cgroup` on `dev`.
pub fn charge(cgroup: u64, dev: u32, write: bool, bytes: u64) {
    if !ENABLED.load(Ordering::Relaxed) || bytes == 0 {
        return;
    }
    let mut charged = CHARGED.lock().unwrap_or_else(PoisonError::into_inner);
    charged.entry((cgroup, dev)).or_default()[usize::from(write)] += bytes;
}

/// The totals of every cgroup that did I/O: (cgroup, dev) → [read, written].
pub fn snapshot() -> Charged {
    CHARGED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Forgets cgroups for which `alive` is false.
pub fn retain(alive: impl Fn(u64) -> bool) {
    let mut charged = CHARGED.lock().unwrap_or_else(PoisonError::into_inner);
    charged.retain(|(cgroup, _), _| alive(*cgroup));
}
