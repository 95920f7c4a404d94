//! `sonde doctor`: what this machine lets sonde collect, and why not.
//!
//! Every check is real: each attach kind sonde relies on is tested by loading
//! a tiny program of that kind (`bpf/probe.bpf.c`), attaching it, making it
//! fire and checking that it did; each BPF collector is loaded and attached
//! exactly as `sonde run` would. Failures carry the kernel's answer.
//! `SONDE_BPF_REFUSE` (see [`crate::collect::bpf`]) forces any of them to fail.

use std::fmt::Write as _;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, UprobeOpts};

use crate::collect::bpf::ringbuf::RingBuf;
use crate::collect::bpf::{
    check_refused, ensure_tracefs, load_all, object_storage, with_libbpf_log, AttachKind, State,
};
use crate::config::Config;
use crate::privilege::{self, Need};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/probe.skel.rs"));
}
use skel::ProbeSkelBuilder;

/// One line of the report.
struct Row {
    check: String,
    ok: bool,
    detail: String,
}

impl Row {
    fn new(check: impl Into<String>, result: anyhow::Result<String>) -> Row {
        let (ok, detail) = match result {
            Ok(detail) => (true, detail),
            Err(err) => (false, format!("{err:#}")),
        };
        Row {
            check: check.into(),
            ok,
            detail,
        }
    }
}

/// Runs every check and prints the table. Returns whether sonde can collect
/// kernel metrics at all (at least one BPF collector attached).
pub fn doctor(config: &Config) -> bool {
    crate::collect::bpf::capture_libbpf_log();
    let mut rows = vec![
        Row::new("kernel", kernel_version()),
        Row::new("BTF", btf()),
        Row::new("bpf() syscall", bpf_usable()),
    ];
    for kind in AttachKind::ALL {
        rows.push(Row::new(
            format!("attach {}", kind.name()),
            probe(kind).map(|()| "works".to_string()),
        ));
    }
    rows.push(Row::new("capabilities", capabilities()));
    rows.push(Row::new("pid namespace", pid_namespace()));
    rows.push(Row::new("tracefs", tracefs()));
    rows.push(Row::new(
        "kernel.bpf_stats_enabled",
        crate::collect::bpf::stats::describe_sysctl(),
    ));

    let set = load_all(&config.collect);
    for (name, state) in &set.states {
        let result = match state {
            State::Attached(..) => Ok(state.to_string()),
            State::Disabled => Ok(state.to_string()),
            State::Failed(reason) => Err(anyhow::anyhow!("off: {reason}")),
        };
        rows.push(Row::new(format!("collector {name}"), result));
        if *name == crate::collect::bpf::http::NAME && matches!(state, State::Attached(..)) {
            if let Some(capture) = crate::collect::bpf::http::capture() {
                rows.push(Row::new("collector http capture", Ok(capture)));
            }
            if let Some(tls) = crate::collect::bpf::http::tls_state() {
                rows.push(Row::new(
                    "collector http TLS",
                    tls.map_err(anyhow::Error::msg),
                ));
            }
        }
    }
    if let Some(stats) = &set.stats {
        rows.push(Row::new(
            "bpf run-time stats",
            stats.clone().map_err(anyhow::Error::msg),
        ));
    }
    let max_series = config.collect.max_series_per_metric;
    let (programs, program_states) =
        crate::collect::programs::load_all(&config.programs, max_series);
    for (name, state) in program_states {
        let result = state.map_err(|reason| anyhow::anyhow!("off: {reason}"));
        rows.push(Row::new(format!("programs config {name}"), result));
    }
    drop(programs);
    rows.push(Row::new(
        "alert actions",
        crate::alert::action::config::doctor(&config.alerting.actions),
    ));
    rows.push(Row::new(
        "capabilities after start",
        capabilities_after_start(crate::privilege::Keep {
            restores_sysctl: set.restores_sysctl,
            loads_later: crate::collect::programs::configured(&config.programs)
                || crate::collect::bpf::http::attaches_later(),
        }),
    ));
    let collecting = set
        .states
        .iter()
        .any(|(_, state)| matches!(state, State::Attached(..)));
    drop(set); // detach before printing: doctor must not keep probes on

    print!("{}", render(&rows));
    if collecting {
        println!("\nsonde can collect kernel metrics.");
    } else {
        println!(
            "\nsonde cannot collect kernel metrics: no BPF collector could attach (see above)."
        );
    }
    collecting
}

/// The checks that only read what the kernel says (no program is loaded),
/// cheap enough for the dashboard's Status view to run on every request.
pub fn live_checks() -> Vec<(&'static str, anyhow::Result<String>)> {
    vec![
        ("kernel", kernel_version()),
        ("BTF", btf()),
        ("capabilities held now", capabilities_held()),
        ("pid namespace", pid_namespace()),
        (
            "kernel.bpf_stats_enabled",
            crate::collect::bpf::stats::describe_sysctl(),
        ),
    ]
}

fn render(rows: &[Row]) -> String {
    let width = rows.iter().map(|row| row.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for row in rows {
        let state = if row.ok { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{:width$}  {state}  {}", row.check, row.detail);
    }
    out
}

fn kernel_version() -> anyhow::Result<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let version = std::fs::read_to_string("/proc/sys/kernel/version")?;
    Ok(format!("{} {}", release.trim(), version.trim()))
}

/// The host's pid namespace, as /proc/self/ns/pid names it: its inode
/// number is fixed (the kernel's PROC_PID_INIT_INO).
const HOST_PID_NAMESPACE: &str = "pid:[4026531836]";

/// Whether sonde runs in the host's pid namespace. The kernel gives BPF
/// programs the pids of that namespace; in one of its own (a container's,
/// without `--pid=host`), /proc shows other numbers, so what sonde reads of
/// a process by the pid its programs saw is another process's or nothing.
pub fn pid_namespace() -> anyhow::Result<String> {
    let link = std::fs::read_link("/proc/self/ns/pid")
        .map_err(|err| anyhow::anyhow!("/proc/self/ns/pid: {err}"))?;
    let namespace = link.to_string_lossy();
    anyhow::ensure!(
        namespace == HOST_PID_NAMESPACE,
        "{namespace}, not the host's {HOST_PID_NAMESPACE}: the kernel names processes by \
         their pids in the host's namespace, which this /proc does not show, so the names \
         and labels sonde reads from /proc for a process (HTTP services, per-process \
         metrics) are another process's or missing; run sonde in the host's pid \
         namespace (docker or podman run --pid=host)"
    );
    Ok("the host's".to_string())
}

fn btf() -> anyhow::Result<String> {
    let path = "/sys/kernel/btf/vmlinux";
    let meta = std::fs::metadata(path).map_err(|err| {
        anyhow::anyhow!(
            "{path}: {err}; CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF"
        )
    })?;
    Ok(format!("{path} ({} KiB)", meta.len() / 1024))
}

fn bpf_usable() -> anyhow::Result<String> {
    check_refused("bpf")?;
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    MapHandle::create(MapType::Array, Some("sonde_doctor"), 4, 8, 1, &opts).map_err(|err| {
        anyhow::anyhow!("creating a map failed: {err}; sonde needs root or CAP_BPF")
    })?;
    Ok("usable".to_string())
}

/// The function the uprobe check attaches to, in sonde's own binary.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sonde_doctor_uprobe_target(value: u64) -> u64 {
    std::hint::black_box(value).wrapping_add(1)
}

/// Loads, attaches and fires a tiny program of one attach kind.
fn probe(kind: AttachKind) -> anyhow::Result<()> {
    check_refused("bpf")?;
    check_refused(kind.name())?;
    if kind == AttachKind::Tracepoint {
        ensure_tracefs()?;
    }
    let program = match kind {
        AttachKind::RawTp => "probe_raw_tp",
        AttachKind::TpBtf => "probe_tp_btf",
        AttachKind::Tracepoint => "probe_tracepoint",
        AttachKind::Uprobe => "probe_uprobe",
        AttachKind::Ringbuf => "probe_ringbuf",
    };
    let mut open = ProbeSkelBuilder::default().open(object_storage())?;
    for mut candidate in open.open_object_mut().progs_mut() {
        let wanted = candidate.name() == program;
        candidate.set_autoload(wanted);
    }
    if kind != AttachKind::Ringbuf {
        // Without this a kernel lacking ring buffers would fail every probe.
        open.maps.events.set_autocreate(false)?;
    }
    let skel = with_libbpf_log(|| open.load())?;
    let progs = &skel.progs;
    let _link = with_libbpf_log(|| match kind {
        AttachKind::RawTp => progs.probe_raw_tp.attach(),
        AttachKind::TpBtf => progs.probe_tp_btf.attach(),
        AttachKind::Tracepoint => progs.probe_tracepoint.attach(),
        AttachKind::Ringbuf => progs.probe_ringbuf.attach(),
        AttachKind::Uprobe => progs.probe_uprobe.attach_uprobe_with_opts(
            i32::try_from(std::process::id()).unwrap_or(-1),
            "/proc/self/exe",
            0,
            UprobeOpts {
                func_name: Some("sonde_doctor_uprobe_target".to_string()),
                ..Default::default()
            },
        ),
    })?;

    if kind == AttachKind::Ringbuf {
        // sonde's own reader, the one the collectors read their rings with.
        let mut ring = RingBuf::new(&skel.maps.events)?;
        for _ in 0..20 {
            // SAFETY: getppid has no preconditions; it is here to fire the
            // probe, which commits its event before the call returns.
            unsafe { libc::getppid() };
            if ring.consume(|_event| {}) > 0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("attached, but no event arrived through the ring buffer");
    }

    for _ in 0..20 {
        if kind == AttachKind::Uprobe {
            sonde_doctor_uprobe_target(1);
        } else {
            // SAFETY: getppid has no preconditions; it is here to fire the probe.
            unsafe { libc::getppid() };
        }
        let hits = skel
            .maps
            .bss
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)?
            .and_then(|value| {
                value
                    .get(..8)
                    .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
            })
            .unwrap_or(0);
        if hits > 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("attached, but the program never ran")
}

/// Where [`attach_empty`] puts empty programs: yardsticks for benchmarks.
#[derive(Clone, Copy)]
pub enum EmptyPrograms {
    /// sys_enter and sys_exit (raw_tp): what `sonde bench syscalls`
    /// compares the syscalls collector with.
    SyscallPair,
    /// sys_exit only (raw_tp): what any capture at syscall exits (the http
    /// collector's) pays before doing any work, `sonde bench empty-exit`.
    SyscallExit,
    /// sock_send_length and sock_recv_length (tp_btf): what a capture run
    /// at socket I/O only would pay, `sonde bench empty-exit --sockets`.
    SocketLengths,
}

/// Attaches empty programs and keeps them attached until the returned links
/// are dropped.
pub fn attach_empty(at: EmptyPrograms) -> anyhow::Result<Vec<libbpf_rs::Link>> {
    let names: &[&str] = match at {
        EmptyPrograms::SyscallPair => &["empty_enter", "empty_exit"],
        EmptyPrograms::SyscallExit => &["empty_exit"],
        EmptyPrograms::SocketLengths => &["empty_sock_send", "empty_sock_recv"],
    };
    let mut open = ProbeSkelBuilder::default().open(object_storage())?;
    for mut program in open.open_object_mut().progs_mut() {
        let wanted = names.iter().any(|name| program.name() == *name);
        program.set_autoload(wanted);
    }
    open.maps.events.set_autocreate(false)?;
    let skel = with_libbpf_log(|| open.load())?;
    // The programs loaded are the ones named.
    skel.object()
        .progs_mut()
        .filter(|program| program.autoload())
        .map(|program| with_libbpf_log(|| program.attach()))
        .collect()
}

/// The capabilities sonde holds, and what it cannot do for lack of one:
/// FAIL when one loading needs is missing.
fn capabilities() -> anyhow::Result<String> {
    let (effective, _) = privilege::held()?;
    let listed = match privilege::names(effective) {
        names if names.is_empty() => "none".to_string(),
        names => names.join(", "),
    };
    let missing = |need: Need| -> Vec<String> {
        privilege::USES
            .iter()
            .filter(|each| each.need == need && effective & (1u64 << each.bit) == 0)
            .map(|each| format!("{} (to {})", privilege::name(each.bit), each.why))
            .collect()
    };
    let required: Vec<String> = [Need::Load, Need::Running]
        .into_iter()
        .flat_map(missing)
        .collect();
    let optional = missing(Need::Optional);
    let mut text = listed;
    if !optional.is_empty() {
        let _ = write!(
            text,
            "; without {} (no collector needs it)",
            optional.join(", ")
        );
    }
    if required.is_empty() {
        Ok(text)
    } else {
        anyhow::bail!("{text}; missing: {}", required.join(", "))
    }
}

/// The capabilities held now, by name: after `sonde run` dropped the
/// loading ones, their absence is not a fault.
fn capabilities_held() -> anyhow::Result<String> {
    let (effective, _) = privilege::held()?;
    Ok(match privilege::names(effective) {
        names if names.is_empty() => "none".to_string(),
        names => names.join(", "),
    })
}

/// What `sonde run` keeps once its programs are attached, and what it drops.
fn capabilities_after_start(keep: privilege::Keep) -> anyhow::Result<String> {
    let (_, permitted) = privilege::held()?;
    let dropped = privilege::load_only(permitted, keep);
    let list = |mask: u64| match privilege::names(mask) {
        names if names.is_empty() => "none".to_string(),
        names => names.join(", "),
    };
    let mut text = format!(
        "sonde run keeps {}; drops {} once its programs are attached",
        list(permitted & !dropped),
        list(dropped)
    );
    if keep.loads_later {
        text.push_str(" (custom programs are configured: a reload loads them again)");
    } else {
        text.push_str(" (nothing attaches later; adding a first custom program takes a restart)");
    }
    if keep.restores_sysctl {
        text.push_str("; CAP_SYS_ADMIN is kept to restore kernel.bpf_stats_enabled at exit");
    }
    Ok(text)
}

fn tracefs() -> anyhow::Result<String> {
    let dir = ensure_tracefs()?;
    let probe = dir.join("events/raw_syscalls/sys_enter/id");
    std::fs::read_to_string(&probe).map_err(|err| anyhow::anyhow!("{}: {err}", probe.display()))?;
    Ok(format!("{} (readable)", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up() {
        let rows = [
            Row::new("a", Ok("fine".into())),
            Row::new("longer", Err(anyhow::anyhow!("broken"))),
        ];
        assert_eq!(render(&rows), "a       ok    fine\nlonger  FAIL  broken\n");
    }
}
