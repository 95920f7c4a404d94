//! The events collector (`bpf/events.bpf.c`): loads the program, reads its
//! ring buffer on a thread of its own (rules must see an event when it
//! happens, not at the next round) and publishes each event, decoded and
//! attributed, on the [`crate::collect::events`] stream. Its rounds export
//! `sonde_events_total`; lost events are `sonde_bpf_map_full_total{map="events"}`.
//!
//! Opens for writing are events only under `[collect.bpf]
//! event_write_paths`; with none the open programs (openat, openat2, open,
//! creat) are not attached. They are tracefs tracepoints: when tracefs is
//! closed the other events still flow and the log says why opens do not.
//! The kernel compares absolute paths with the prefixes; a relative one
//! comes here with its directory fd, is resolved through /proc (while its
//! process lives) and is kept only under a prefix.
//!
//! Forcing a failure: `SONDE_BPF_REFUSE=events` (the collector),
//! `tp_btf` (the raw_tp fallback), `ringbuf` (no stream at all).

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{anyhow, Context};
use libbpf_rs::skel::{Skel, SkelBuilder};
use libbpf_rs::{Link, MapHandle};

use super::http::{u16_at, u32_at, u64_at};
use super::ring::{self, poll_until, RingReader, Stop};
use super::ringbuf::RingBuf;
use super::{
    attach_loading, check_refused, comm_label, object_storage, with_libbpf_log, AttachKind,
    Attached, Loaded, Variant,
};
use crate::collect::cgroup;
use crate::collect::events::{stream, Event, Kind, Parent, Process, ProcessId};
use crate::collect::Collector;
use crate::config::BpfConfig;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/events.skel.rs"));
}
use skel::{EventsSkel, EventsSkelBuilder};

pub const NAME: &str = "events";

/// Default of `[collect.bpf] event_ring_size`: its headroom under process
/// churn is in BENCHMARKS.md, "Idle: ring buffers and start".
pub const DEFAULT_RING_BYTES: u64 = 256 << 10;

const VARIANTS: &[Variant] = &[
    Variant {
        kind: AttachKind::TpBtf,
        programs: &[
            "ev_btf_exec",
            "ev_btf_exit",
            "ev_btf_signal",
            "ev_btf_oom_victim",
            "ev_btf_sock_state",
        ],
    },
    Variant {
        kind: AttachKind::RawTp,
        programs: &[
            "ev_raw_exec",
            "ev_raw_exit",
            "ev_raw_signal",
            "ev_raw_oom_victim",
            "ev_raw_sock_state",
        ],
    },
];

/// Attached apart, only with prefixes configured (module docs): each open
/// program and its tracepoint, openat first (the call every libc makes).
const OPEN_PROGRAMS: &[(&str, &str)] = &[
    ("ev_tp_openat", "sys_enter_openat"),
    ("ev_tp_openat2", "sys_enter_openat2"),
    ("ev_tp_open", "sys_enter_open"),
    ("ev_tp_creat", "sys_enter_creat"),
];

/// The bounded maps, in the order of `enum events_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &["events", "event_listeners"];

/// EVENT_PREFIXES and EVENT_PREFIX in sonde.h.
const MAX_PREFIXES: usize = 8;
const MAX_PREFIX_LEN: usize = 63;

/// Checks `[collect.bpf] event_write_paths` as the kernel side takes them.
pub fn check_write_paths(paths: &[String]) -> Result<(), String> {
    if paths.len() > MAX_PREFIXES {
        return Err(format!(
            "[collect.bpf] event_write_paths: {} paths, at most {MAX_PREFIXES}",
            paths.len()
        ));
    }
    for path in paths {
        if !path.starts_with('/') || path.len() > MAX_PREFIX_LEN || path.contains('\0') {
            return Err(format!(
                "[collect.bpf] event_write_paths: {path:?}: expected an absolute path prefix of at most {MAX_PREFIX_LEN} bytes"
            ));
        }
    }
    Ok(())
}

fn open(paths: &[String], ring_bytes: u64) -> anyhow::Result<skel::OpenEventsSkel<'static>> {
    let mut open = EventsSkelBuilder::default().open(object_storage())?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| anyhow!("the events object has no read-only data"))?;
    for (slot, path) in rodata.write_prefixes.iter_mut().zip(paths) {
        for (byte, &from) in slot.iter_mut().zip(path.as_bytes()) {
            *byte = from as _;
        }
    }
    rodata.write_prefix_count = paths.len() as u32;
    ring::set_size(&mut open.maps.events, &mut rodata.wakeup_shift, ring_bytes)?;
    Ok(open)
}

pub fn load(config: &BpfConfig) -> anyhow::Result<Loaded> {
    check_write_paths(&config.event_write_paths).map_err(anyhow::Error::msg)?;
    check_refused(AttachKind::Ringbuf.name())?;
    stream().set_capacity(config.recent_events);
    let paths = config.event_write_paths.clone();
    let unattached: Vec<&str> = if paths.is_empty() {
        Vec::new()
    } else {
        OPEN_PROGRAMS.iter().map(|(program, _)| *program).collect()
    };
    let attached = attach_loading(NAME, VARIANTS, &unattached, || {
        open(&paths, config.event_ring_size)
    })?;
    let mut programs = attached.program_handles()?;
    let mut open_links = Vec::new();
    if !paths.is_empty() {
        match attach_opens(&attached) {
            Ok((links, handles)) => {
                open_links = links;
                programs.extend(handles);
            }
            Err(err) => tracing::warn!("bpf collector events: no open_write events: {err:#}"),
        }
    }
    let events = MapHandle::try_from(&attached.skel.maps.events)?;
    let asleep = MapHandle::try_from(&attached.skel.maps.reader_asleep)?;
    Ok(Loaded {
        kind: attached.kind,
        programs,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Events {
            _attached: attached,
            _open_links: open_links,
            reader: RingReader::new("sonde-events", move |stop| {
                read_events(&events, &asleep, stop, &paths)
            })?,
        }),
    })
}

/// Attaches the open programs whose tracepoints this kernel has (an
/// architecture without the legacy open and creat has none for them); fails
/// only when openat's cannot be attached.
fn attach_opens(
    attached: &Attached<EventsSkel<'static>>,
) -> anyhow::Result<(Vec<Link>, Vec<super::ProgramHandle>)> {
    check_refused(AttachKind::Tracepoint.name())?;
    let tracefs = super::ensure_tracefs()?;
    let mut links = Vec::new();
    let mut handles = Vec::new();
    for &(name, tracepoint) in OPEN_PROGRAMS {
        if name != OPEN_PROGRAMS[0].0 && !tracefs.join("events/syscalls").join(tracepoint).is_dir()
        {
            tracing::info!("bpf collector events: no tracepoint {tracepoint}: {name} left out");
            continue;
        }
        let program = super::find_program(attached.skel.object(), name)?;
        let link = with_libbpf_log(|| program.attach())
            .with_context(|| format!("attaching tracepoint/syscalls/{tracepoint}"))?;
        links.push(link);
        handles.push(super::ProgramHandle {
            name,
            fd: std::os::fd::AsFd::as_fd(&program).try_clone_to_owned()?,
        });
    }
    Ok((links, handles))
}

/// Reads the ring until `stop`; a relative open for writing (resolved as it
/// is decoded) is published only when it falls under one of `write_paths`,
/// as the kernel filters the absolute ones.
fn read_events(
    events: &MapHandle,
    asleep: &MapHandle,
    stop: &Stop,
    write_paths: &[String],
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let on_record = |bytes: &[u8]| {
        let Some(event) = decode(bytes, &clock) else {
            return;
        };
        let watched = event.kind != Kind::OpenWrite
            || event.path.as_deref().is_some_and(|path| {
                write_paths
                    .iter()
                    .any(|prefix| path.starts_with(prefix.as_str()))
            });
        if watched {
            stream().publish(event);
        }
    };
    poll_until(&mut RingBuf::new(events)?, on_record, asleep, stop)
}

/// Turns the kernel's CLOCK_MONOTONIC stamps into Unix ms: the offset
/// between the two clocks, read once (it moves only when the wall clock is
/// set, which moves the events' times by as much).
struct Clock {
    offset_ns: i128,
}

impl Clock {
    fn new() -> Clock {
        let read = |clock| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid clock id and a timespec to fill.
            unsafe { libc::clock_gettime(clock, &mut ts) };
            i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
        };
        Clock {
            offset_ns: read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC),
        }
    }

    fn unix_ms(&self, monotonic_ns: u64) -> i64 {
        ((i128::from(monotonic_ns) + self.offset_ns) / 1_000_000) as i64
    }
}

/// Offsets in `struct sonde_event` (bpf/sonde.h).
const KIND: usize = 0;
const DETAIL: usize = 4;
const NS: usize = 8;
const START_NS: usize = 16;
const PARENT_START_NS: usize = 24;
const CGROUP: usize = 32;
const PID: usize = 40;
const PPID: usize = 44;
const COMM: usize = 48;
const PARENT_COMM: usize = 64;
const SENDER_PID: usize = 80;
const PORT: usize = 84;
const LOCAL_PORT: usize = 86;
const FAMILY: usize = 88;
const LEN: usize = 92;
const ADDR: usize = 96;
const DATA: usize = 112;
/// EVENT_DATA in sonde.h; exec's arguments start halfway.
const DATA_LEN: usize = 512;

/// A NUL-terminated string at the start of `bytes`.
/// The absolute path of `path`, relative to directory fd `dirfd` of
/// process `pid` (AT_FDCWD: its working directory), as /proc shows them
/// now; None once the process or the descriptor is gone. `..` and `.` are
/// folded by name, not through symbolic links.
fn resolve_relative(pid: u32, dirfd: i32, path: &str) -> Option<String> {
    const AT_FDCWD: i32 = -100;
    let base = if dirfd == AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{dirfd}")
    };
    let base = std::fs::read_link(base).ok()?;
    let mut parts: Vec<&str> = Vec::new();
    let base = base.to_string_lossy();
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn c_string(bytes: &[u8]) -> String {
    CStr::from_bytes_until_nul(bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned())
}

fn peer(bytes: &[u8]) -> Option<SocketAddr> {
    let addr: [u8; 16] = bytes.get(ADDR..ADDR + 16)?.try_into().ok()?;
    let ip = match u16_at(bytes, FAMILY)? {
        2 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        10 => IpAddr::V6(Ipv6Addr::from(addr)).to_canonical(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, u16_at(bytes, PORT)?))
}

/// One `struct sonde_event`; None when it is short or of no known kind.
fn decode(bytes: &[u8], clock: &Clock) -> Option<Event> {
    let kind = *Kind::ALL.get(u32_at(bytes, KIND)? as usize)?;
    let detail = u32_at(bytes, DETAIL)? as i32;
    let placement = cgroup::placement(u64_at(bytes, CGROUP)?);
    let data = bytes.get(DATA..DATA + DATA_LEN)?;
    let process = Process {
        id: ProcessId {
            pid: u32_at(bytes, PID)?,
            start_ns: u64_at(bytes, START_NS)?,
        },
        comm: comm_label(bytes.get(COMM..COMM + 16)?),
        unit: placement.unit.map(|u| u.to_string()),
        container: placement.container.map(|c| c.to_string()),
    };
    let parent = Parent {
        id: ProcessId {
            pid: u32_at(bytes, PPID)?,
            start_ns: u64_at(bytes, PARENT_START_NS)?,
        },
        comm: comm_label(bytes.get(PARENT_COMM..PARENT_COMM + 16)?),
    };
    let mut event = Event::new(kind, clock.unix_ms(u64_at(bytes, NS)?), process, parent);
    match kind {
        Kind::Exec => {
            event.exe = Some(c_string(&data[..DATA_LEN / 2]));
            let len = (u32_at(bytes, LEN)? as usize).min(DATA_LEN / 2);
            event.args = data[DATA_LEN / 2..DATA_LEN / 2 + len]
                .split(|&b| b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
        }
        // wait(2)'s status: the signal in the low 7 bits, else the code.
        Kind::Exit if detail & 0x7f != 0 => event.signal = Some((detail & 0x7f) as u32),
        Kind::Exit => event.exit_code = Some((detail >> 8) & 0xff),
        Kind::Signal => {
            event.signal = Some(detail as u32);
            event.sender_pid = u32_at(bytes, SENDER_PID);
        }
        Kind::Connect | Kind::Accept => {
            event.peer = peer(bytes);
            // A connect has no local port yet when its SYN is about to go.
            event.local_port = u16_at(bytes, LOCAL_PORT).filter(|&port| port != 0);
        }
        Kind::Listen => event.local_port = u16_at(bytes, PORT),
        Kind::OpenWrite => {
            let path = c_string(data);
            event.path = if path.starts_with('/') {
                Some(path)
            } else {
                let dirfd = u32_at(bytes, SENDER_PID)? as i32;
                resolve_relative(event.process.id.pid, dirfd, &path)
            };
        }
        Kind::OomKill => {}
    }
    Some(event)
}

struct Events {
    /// Kept for the programs' and the ring's lifetime.
    _attached: Attached<EventsSkel<'static>>,
    _open_links: Vec<Link>,
    reader: RingReader,
}

impl Collector for Events {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        self.reader.start()
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        self.reader.check().context("the event reader stopped")?;
        out.extend(stream().families());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; DATA + DATA_LEN];
        bytes[KIND..KIND + 4].copy_from_slice(&kind.to_ne_bytes());
        bytes[PID..PID + 4].copy_from_slice(&42u32.to_ne_bytes());
        bytes[START_NS..START_NS + 8].copy_from_slice(&7u64.to_ne_bytes());
        bytes[COMM..COMM + 2].copy_from_slice(b"sh");
        bytes[PARENT_COMM..PARENT_COMM + 5].copy_from_slice(b"nginx");
        bytes
    }

    #[test]
    fn relative_paths_resolve_through_proc() {
        let cwd = std::env::current_dir().unwrap();
        let pid = std::process::id();
        assert_eq!(
            resolve_relative(pid, -100, "a/../b/./c"),
            Some(format!("{}/b/c", cwd.display()))
        );
        let dir = std::fs::File::open("/usr/lib").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
        assert_eq!(
            resolve_relative(pid, fd, "../../etc/x"),
            Some("/etc/x".to_string())
        );
        assert_eq!(resolve_relative(pid, 1 << 20, "x"), None);
    }

    #[test]
    fn decodes_exec_connect_exit_and_refuses_short_ones() {
        let clock = Clock { offset_ns: 0 };
        let mut exec = raw(0);
        exec[DATA..DATA + 8].copy_from_slice(b"/bin/sh\0");
        let args = b"sh\0-c\0true\0";
        exec[DATA + 256..DATA + 256 + args.len()].copy_from_slice(args);
        exec[LEN..LEN + 4].copy_from_slice(&(args.len() as u32).to_ne_bytes());
        let event = decode(&exec, &clock).unwrap();
        assert_eq!(event.kind, Kind::Exec);
        assert_eq!(event.exe.as_deref(), Some("/bin/sh"));
        assert_eq!(event.args, ["sh", "-c", "true"]);
        assert_eq!(
            event.process.id,
            ProcessId {
                pid: 42,
                start_ns: 7
            }
        );
        assert_eq!(event.parent.comm, "nginx");

        let mut connect = raw(4);
        connect[FAMILY..FAMILY + 2].copy_from_slice(&2u16.to_ne_bytes());
        connect[ADDR..ADDR + 4].copy_from_slice(&[192, 0, 2, 1]);
        connect[PORT..PORT + 2].copy_from_slice(&80u16.to_ne_bytes());
        let event = decode(&connect, &clock).unwrap();
        assert_eq!(event.peer, Some("192.0.2.1:80".parse().unwrap()));

        let mut killed = raw(1);
        killed[DETAIL..DETAIL + 4].copy_from_slice(&9i32.to_ne_bytes());
        assert_eq!(decode(&killed, &clock).unwrap().signal, Some(9));
        let mut failed = raw(1);
        failed[DETAIL..DETAIL + 4].copy_from_slice(&(3i32 << 8).to_ne_bytes());
        assert_eq!(decode(&failed, &clock).unwrap().exit_code, Some(3));

        assert!(decode(&raw(99), &clock).is_none());
        assert!(decode(&exec[..100], &clock).is_none());
    }

    #[test]
    fn write_paths_are_checked_as_the_kernel_takes_them() {
        assert!(check_write_paths(&["/etc/".into()]).is_ok());
        let err = check_write_paths(&["etc".into()]).unwrap_err();
        assert!(err.contains("event_write_paths"), "{err}");
        assert!(check_write_paths(&vec!["/a".to_string(); 9]).is_err());
    }
}
