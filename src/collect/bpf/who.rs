//! Who an event is charged to: a `struct proc_id` (bpf/sonde.h) read from a
//! map key, turned into the labels every per-process metric carries: `comm`,
//! and `unit` or `container` from the cgroup ([`crate::collect::cgroup`]).
//! [`KeptLabels`] keeps the label sets so made from round to round.

use crate::collect::cgroup::{self, Placement};
use crate::collect::FastMap;
use crate::model::Labels;

use super::comm_label;

/// The comm of events no process could be charged with.
pub const UNKNOWN: &str = "unknown";

/// Size of `struct proc_id`: the cgroup id, then the comm.
pub const PROC_ID_LEN: usize = 24;

/// A process as the labels name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub comm: String,
    pub placement: Placement,
}

impl Who {
    /// Reads the `struct proc_id` at the start of `key`, resolving its cgroup
    /// with the process-wide resolver. None when the key is too short.
    pub fn from_key(key: &[u8]) -> Option<Who> {
        let cgroup = u64::from_ne_bytes(key.get(..8)?.try_into().ok()?);
        Who::from_key_placed(key, cgroup::placement(cgroup))
    }

    /// [`Who::from_key`] with the key's cgroup already resolved.
    fn from_key_placed(key: &[u8], placement: Placement) -> Option<Who> {
        let mut comm = comm_label(key.get(8..PROC_ID_LEN)?);
        if comm.is_empty() {
            // No process to charge (a TCP reset for a socket sonde never
            // saw opened): keep the label, as every series of the metric has it.
            comm = UNKNOWN.to_string();
        }
        Some(Who { comm, placement })
    }

    /// `comm` plus `unit` or `container`, then `extra`.
    pub fn labels<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut labels: Vec<(&'a str, &'a str)> = vec![("comm", self.comm.as_str())];
        labels.extend(self.placement.labels().map(|(n, v)| (n as &str, v)));
        labels.extend_from_slice(extra);
        labels
    }
}

/// The label sets of one family's per-process series, kept from round to
/// round by map key: a round re-exports thousands of series whose labels
/// did not change, and building each again (the comm as a string, the
/// labels sorted, the set encoded in a block of its own, freed again when
/// the store had found it) was most of the syscalls collector's work.
///
/// Invariants:
/// - A kept set is exactly what would be built now: every label is a
///   function of the key's bytes (the comm and what follows the `struct
///   proc_id`) and of the place its cgroup resolves to, which is asked
///   again on every use and compared with the place the set was built for
///   (a cgroup resolved late, or named by its runtime later, builds anew).
/// - Only the keys used since the last [`KeptLabels::forget_unused`] are
///   kept: memory follows the family's series of one round.
#[derive(Default)]
pub struct KeptLabels {
    kept: FastMap<Box<[u8]>, Kept>,
}

struct Kept {
    placement: Placement,
    labels: Labels,
    used: bool,
}

impl KeptLabels {
    /// The label set of the series of map key `key` (a `struct proc_id`
    /// first): the kept one while its cgroup's place is unchanged, else
    /// `build`'s for the process the key names. None for a key shorter
    /// than a `struct proc_id`.
    pub fn get(&mut self, key: &[u8], build: impl FnOnce(&Who) -> Labels) -> Option<Labels> {
        let cgroup = u64::from_ne_bytes(key.get(..8)?.try_into().ok()?);
        let placement = cgroup::placement(cgroup);
        if let Some(kept) = self.kept.get_mut(key) {
            if kept.placement == placement {
                kept.used = true;
                return Some(kept.labels.clone());
            }
        }
        let who = Who::from_key_placed(key, placement)?;
        let labels = build(&who);
        let kept = Kept {
            placement: who.placement,
            labels: labels.clone(),
            used: true,
        };
        self.kept.insert(key.into(), kept);
        Some(labels)
    }

    /// Forgets the sets not used since the last call (once a round).
    pub fn forget_unused(&mut self) {
        self.kept.retain(|_, kept| std::mem::take(&mut kept.used));
        crate::memory::shrink_when_sparse(&mut self.kept);
    }
}

/// Reads the native-endian u32 at `offset` of a map key.
pub fn key_u32(key: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        key.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_comm_and_labels_in_order() {
        let mut key = 1u64.to_ne_bytes().to_vec();
        key.extend_from_slice(b"nginx\0\0\0\0\0\0\0\0\0\0\0");
        key.extend_from_slice(&7u32.to_ne_bytes());
        let who = Who::from_key(&key).unwrap();
        assert_eq!(who.comm, "nginx");
        assert_eq!(key_u32(&key, PROC_ID_LEN), Some(7));
        assert_eq!(key_u32(&key, PROC_ID_LEN + 1), None);
        let labels = Who {
            comm: "a".into(),
            placement: Placement::of_path("/system.slice/x.service"),
        };
        assert_eq!(
            labels.labels(&[("op", "read")]),
            [("comm", "a"), ("unit", "x.service"), ("op", "read")]
        );
        assert!(Who::from_key(&key[..20]).is_none());
    }
}
