//! Who an event is charged to: a `struct proc_id` (bpf/sonde.h) read from a
//! map key, turned into the labels every per-process metric carries: `comm`,
//! and `unit` or `container` from the cgroup ([`crate::collect::cgroup`]).

use crate::collect::cgroup::{self, Placement};

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
        let mut comm = comm_label(key.get(8..PROC_ID_LEN)?);
        if comm.is_empty() {
            // No process to charge (a TCP reset for a socket sonde never
            // saw opened): keep the label, as every series of the metric has it.
            comm = UNKNOWN.to_string();
        }
        Some(Who {
            comm,
            placement: cgroup::placement(cgroup),
        })
    }

    /// `comm` plus `unit` or `container`, then `extra`.
    pub fn labels<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut labels: Vec<(&'a str, &'a str)> = vec![("comm", self.comm.as_str())];
        labels.extend(self.placement.labels().map(|(n, v)| (n as &str, v)));
        labels.extend_from_slice(extra);
        labels
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
