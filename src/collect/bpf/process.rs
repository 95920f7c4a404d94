//! The process collector (`bpf/process.bpf.c`): execs, forks, exits by
//! reason, and OOM kills by victim, per process name and place.

use std::time::Duration;

use anyhow::Context;
use libbpf_rs::skel::SkelBuilder;

use super::drain::DoubleBuffered;
use super::who::{key_u32, Who, PROC_ID_LEN};
use super::{attach, object_storage, AttachKind, Attached, Degraded, Loaded, Variant};
use crate::collect::Collector;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/process.skel.rs"));
}
use skel::{ProcessSkel, ProcessSkelBuilder};

pub const NAME: &str = "process";

const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::TpBtf,
        programs: &["btf_exec", "btf_fork", "btf_exit", "btf_oom_victim"],
    },
    Variant {
        kind: AttachKind::RawTp,
        programs: &["raw_exec", "raw_fork", "raw_exit", "raw_oom_victim"],
    },
    Variant {
        kind: AttachKind::Tracepoint,
        programs: &["tp_exec", "tp_fork", "tp_exit", "tp_oom_victim"],
    },
];

/// tracefs events name an OOM victim by pid, not task (bpf/process.bpf.c).
pub const DEGRADED: &[Degraded] = &[Degraded {
    kind: AttachKind::Tracepoint,
    lacks: "OOM kills carry no unit or container label (the event has no task pointer)",
}];

/// The bounded maps, in the order of `enum process_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["process_counts"];

/// `enum process_event` and PROCESS_EXIT_NONZERO in sonde.h.
const EXEC: u32 = 0;
const FORK: u32 = 1;
const EXIT: u32 = 2;
const OOM_KILL: u32 = 3;
const EXIT_NONZERO: u32 = 256;

/// `forget_after`: how long a process name's totals outlive its last event.
pub fn load(forget_after: Duration) -> anyhow::Result<Loaded> {
    let attached = attach(NAME, VARIANTS, || {
        Ok(ProcessSkelBuilder::default().open(object_storage())?)
    })?;
    Ok(Loaded {
        kind: attached.kind,
        programs: attached.program_handles()?,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Process {
            attached,
            counts: DoubleBuffered::new([1], forget_after),
        }),
    })
}

struct Process {
    attached: Attached<ProcessSkel<'static>>,
    /// process_counts: execs, forks, exits and OOM kills per key.
    counts: DoubleBuffered<1>,
}

/// The `reason` label of an exit: "0", "non-zero", or the signal's name.
pub fn exit_reason(stored: u32) -> String {
    match stored {
        0 => "0".to_string(),
        EXIT_NONZERO => "non-zero".to_string(),
        signal => signal_name(signal),
    }
}

/// A signal's name as kill(1) spells it with the SIG prefix (`SIGKILL`),
/// `SIGRTMIN+n` for real-time signals, else the number.
pub fn signal_name(signal: u32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match signal {
        1..=31 => NAMES[signal as usize].to_string(),
        32..=64 => format!("SIGRTMIN+{}", signal - 32),
        _ => signal.to_string(),
    }
}

impl Collector for Process {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        let bss = self.attached.skel.maps.bss_data.as_deref_mut();
        let bss = bss.context("the process object has no .bss")?;
        self.counts.swap(&mut bss.sonde_generation);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let maps = &self.attached.skel.maps;
        self.counts
            .drain([[&maps.process_counts_0, &maps.process_counts_1]])?;
        let mut execs = Family::counter(
            "sonde_process_execs_total",
            "Programs executed (execve), by the new program's process name.",
        );
        let mut forks = Family::counter(
            "sonde_process_forks_total",
            "New processes (not threads) created, by the parent's process name.",
        );
        let mut exits = Family::counter(
            "sonde_process_exits_total",
            "Processes that ended, by name and reason: exit code 0, non-zero, or the signal that killed them.",
        );
        let mut oom_kills = Family::counter(
            "sonde_oom_kills_total",
            "Processes the kernel's OOM killer chose as victim, by the victim's name.",
        );
        for (key, value) in self.counts.totals(0).iter() {
            let (Some(who), Some(event), Some(reason)) = (
                Who::from_key(key),
                key_u32(key, PROC_ID_LEN),
                key_u32(key, PROC_ID_LEN + 4),
            ) else {
                anyhow::bail!("process_counts key of {} bytes, expected 32", key.len());
            };
            let count = value[0] as f64;
            match event {
                EXEC => execs.push(&who.labels(&[]), count),
                FORK => forks.push(&who.labels(&[]), count),
                EXIT => exits.push(&who.labels(&[("reason", &exit_reason(reason))]), count),
                OOM_KILL => oom_kills.push(&who.labels(&[]), count),
                _ => {}
            }
        }
        out.extend([execs, forks, exits, oom_kills]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reasons_are_named() {
        assert_eq!(exit_reason(0), "0");
        assert_eq!(exit_reason(EXIT_NONZERO), "non-zero");
        assert_eq!(exit_reason(9), "SIGKILL");
        assert_eq!(exit_reason(15), "SIGTERM");
        assert_eq!(exit_reason(34), "SIGRTMIN+2");
    }
}
