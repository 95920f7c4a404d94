//! sonde's capabilities: which it uses for what, and giving up, once its BPF
//! programs are attached, those only loading needs.
//!
//! The packaged unit (packaging/systemd/sonde.service) grants CAP_BPF,
//! CAP_PERFMON and CAP_DAC_READ_SEARCH, as [`USES`] lists. Loading and
//! attaching needs the first two. Afterwards sonde only reads and updates
//! maps, runs iterators and reads program statistics through descriptors it
//! already holds, which the kernel does not check capabilities for. So
//! [`drop_after_load`] gives them up, with CAP_SYS_ADMIN (root holds it)
//! unless sonde turned `kernel.bpf_stats_enabled` on and must restore it at
//! exit. Every other capability is kept. Two things attach after start, and
//! while either is on nothing is dropped ([`Keep::loads_later`]): custom
//! programs (`[programs]`: a reload loads and attaches them again; with
//! none configured at start, adding the first one takes a restart), and
//! the http collector's OpenSSL uprobes on libssl files that processes (a
//! container's) map later, with `[collect.bpf] http_tls_late_attach`. A collector that attaches after start must
//! likewise spare what it needs in [`load_only`] and say so in `sonde doctor`.
//!
//! Capabilities belong to threads: the drop happens before `sonde run`
//! starts any thread, and every thread started later inherits the reduced
//! set.

use std::io;

use anyhow::Context;

/// Capability bit numbers sonde names (linux/capability.h).
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Capability names by bit number (linux/capability.h).
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The name of capability `bit`.
pub fn name(bit: u32) -> String {
    NAMES
        .get(bit as usize)
        .map_or_else(|| format!("cap_{bit}"), |name| (*name).to_string())
}

/// Names of the capabilities set in `mask`.
pub fn names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(name)
        .collect()
}

/// When sonde needs a capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// To load and attach BPF programs; dropped afterwards.
    Load,
    /// For as long as sonde runs.
    Running,
    /// For extras no collector depends on; the packaged unit withholds it.
    Optional,
}

/// A capability sonde uses, and for what.
pub struct Use {
    pub bit: u32,
    pub need: Need,
    pub why: &'static str,
}

/// Every capability sonde uses.
pub const USES: [Use; 4] = [
    Use {
        bit: CAP_BPF,
        need: Need::Load,
        why: "load BPF programs and create their maps",
    },
    Use {
        bit: CAP_PERFMON,
        need: Need::Load,
        why: "attach tracing programs",
    },
    Use {
        bit: CAP_DAC_READ_SEARCH,
        need: Need::Running,
        why: "read tracefs for classic tracepoints, statfs mount points below directories the user cannot search",
    },
    Use {
        bit: CAP_SYS_ADMIN,
        need: Need::Optional,
        why: "turn on kernel.bpf_stats_enabled for program run times, attach perf-event uprobes (doctor's uprobe check)",
    },
];

/// The capabilities this thread holds: (effective, permitted) masks.
pub fn held() -> io::Result<(u64, u64)> {
    let data = capget()?;
    let join = |low: u32, high: u32| u64::from(low) | (u64::from(high) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// What must stay once the programs are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// sonde turned `kernel.bpf_stats_enabled` on and restores it at exit
    /// (CAP_SYS_ADMIN).
    pub restores_sysctl: bool,
    /// Programs are loaded and attached after start (custom programs, at a
    /// reload): nothing loading needs may go.
    pub loads_later: bool,
}

/// What [`drop_after_load`] gives up out of `permitted`: the capabilities
/// only loading needs, and CAP_SYS_ADMIN unless the sysctl is restored at
/// exit; nothing when programs load later.
pub fn load_only(permitted: u64, keep: Keep) -> u64 {
    if keep.loads_later {
        return 0;
    }
    let mut mask = (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON);
    if !keep.restores_sysctl {
        mask |= 1u64 << CAP_SYS_ADMIN;
    }
    permitted & mask
}

/// Gives up, for this thread and every thread it starts later, the
/// capabilities [`load_only`] names (effective, permitted, inheritable and
/// ambient). Returns the names of those dropped.
pub fn drop_after_load(keep: Keep) -> anyhow::Result<Vec<String>> {
    let mut data = capget().context("reading capabilities (capget)")?;
    let permitted = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
    let dropped = load_only(permitted, keep);
    if dropped == 0 {
        return Ok(Vec::new());
    }
    for (half, word) in data.iter_mut().enumerate() {
        let keep = !((dropped >> (32 * half)) as u32);
        word.effective &= keep;
        word.permitted &= keep;
        word.inheritable &= keep;
    }
    // Lowering the permitted set also lowers the ambient set: the kernel
    // keeps ambient within permitted and inheritable.
    capset(&data).context("dropping capabilities (capset)")?;
    Ok(names(dropped))
}

/// Why a BPF collector could not load, when a capability loading needs is
/// missing: "sonde lacks CAP_BPF (to load ...)". None when none is missing.
pub fn missing_for_loading() -> Option<String> {
    let (effective, _) = held().ok()?;
    let missing: Vec<String> = USES
        .iter()
        .filter(|each| each.need == Need::Load && effective & (1u64 << each.bit) == 0)
        .map(|each| format!("{} (to {})", name(each.bit), each.why))
        .collect();
    (!missing.is_empty()).then(|| format!("sonde lacks {}", missing.join(", ")))
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit half of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills two CapData for a version-3 header.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

fn capset(data: &[CapData; 2]) -> io::Result<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads two CapData for a version-3 header.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_named() {
        assert_eq!(
            names((1 << CAP_SYS_ADMIN) | (1 << CAP_BPF)),
            ["CAP_SYS_ADMIN", "CAP_BPF"]
        );
        assert_eq!(names(1 << 45), ["cap_45"]);
        assert!(names(0).is_empty());
    }

    #[test]
    fn only_load_time_capabilities_are_dropped() {
        let unit = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_DAC_READ_SEARCH);
        let keep = |restores_sysctl| Keep {
            restores_sysctl,
            loads_later: false,
        };
        assert_eq!(
            names(load_only(unit, keep(false))),
            ["CAP_PERFMON", "CAP_BPF"]
        );
        let root = u64::MAX >> 23;
        assert!(names(load_only(root, keep(false))).contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!names(load_only(root, keep(true))).contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(load_only(1 << CAP_DAC_READ_SEARCH, keep(false)), 0);
        let reloading = Keep {
            restores_sysctl: false,
            loads_later: true,
        };
        assert_eq!(load_only(root, reloading), 0);
    }
}
