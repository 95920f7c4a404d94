//! The http collector (`bpf/http.bpf.c`): loads the program, reads its ring
//! buffer on a thread of its own (events must not wait for a round: the
//! buffer holds a few thousand requests), and hands each event to
//! [`crate::collect::http::Red`], which the rounds export. The capture is
//! the socket one (programs at socket I/O, Linux 6.3+) where the kernel
//! has its tracepoints, else the syscall one (a program at every syscall
//! exit). With it the object loads the TLS uprobes (OpenSSL's and Go's),
//! attached per libssl file and Go executable by
//! [`crate::collect::http::tls`]: at load to the files found then, and with
//! `[collect.bpf] http_tls_late_attach` each round to those of the
//! processes MAPPED events named.
//!
//! Forcing a failure: `SONDE_BPF_REFUSE=sock_send_length` makes the
//! capture the syscall one, `SONDE_BPF_REFUSE=uprobe.multi` makes the
//! probes perf-event uprobes, `SONDE_BPF_REFUSE=uprobe` leaves TLS out
//! (plain HTTP is still seen); each is shown by `sonde doctor`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use libbpf_rs::skel::SkelBuilder;
use libbpf_rs::{MapCore, MapFlags, MapHandle, UprobeOpts};

use super::ring::{self, poll_until, RingReader, Stop};
use super::ringbuf::RingBuf;
use super::{
    attach, attach_loading, check_refused, object_storage, AttachKind, Attached, Loaded,
    ProgramHandle, Variant,
};
use crate::collect::http::h2::Chunk;
use crate::collect::http::tls::{Hook, Programs, TlsFiles};
use crate::collect::http::{Conn, Event, Red, Role};
use crate::collect::Collector;
use crate::config::HttpConfig;
use crate::model::Family;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/http.skel.rs"));
}
use skel::{types, HttpSkel, HttpSkelBuilder};

pub const NAME: &str = "http";

/// Default of `[collect.bpf] http_ring_size`: its headroom under wrk is
/// in BENCHMARKS.md, "Idle: ring buffers and start".
pub const DEFAULT_RING_BYTES: u64 = 2 << 20;

/// The socket capture's programs, and with MAPPED events wanted (`late`)
/// the one on sys_exit that sends them.
const SOCKETS: Variant = Variant {
    kind: AttachKind::TpBtf,
    programs: &["btf_sock_recv", "btf_sock_send", "btf_sock_state"],
};
const SOCKETS_AND_MAPPINGS: Variant = Variant {
    kind: AttachKind::TpBtf,
    programs: &[
        "btf_sock_recv",
        "btf_sock_send",
        "btf_sock_state",
        "btf_mmap_exit",
    ],
};

/// The syscall capture: tp_btf (the registers read directly), then raw_tp.
const SYSCALL_EXIT_BTF: Variant = Variant {
    kind: AttachKind::TpBtf,
    programs: &["btf_sys_exit"],
};
const SYSCALL_EXIT_RAW: Variant = Variant {
    kind: AttachKind::RawTp,
    programs: &["raw_sys_exit"],
};

/// The socket capture first, then the syscall capture.
const VARIANTS: &[Variant] = &[SOCKETS, SYSCALL_EXIT_BTF, SYSCALL_EXIT_RAW];
const VARIANTS_MAPPING: &[Variant] = &[SOCKETS_AND_MAPPINGS, SYSCALL_EXIT_BTF, SYSCALL_EXIT_RAW];

/// What `SONDE_BPF_REFUSE` names to refuse the socket capture.
const SOCKET_TRACEPOINT: &str = "sock_send_length";

/// The variants to try: `late` wants MAPPED events. Without the socket
/// capture's tracepoints (Linux before 6.3) its variant fails to load and
/// the next is tried.
fn variants(late: bool) -> &'static [Variant] {
    let all = if late { VARIANTS_MAPPING } else { VARIANTS };
    match check_refused(SOCKET_TRACEPOINT) {
        Ok(()) => all,
        Err(_) => &all[1..],
    }
}

/// The bounded maps, in the order of `enum http_bounded_map` (sonde.h).
const BOUNDED_MAPS: &[&str] = &[
    "http_conns",
    "http_servers",
    "http_events",
    "http_ssl_calls",
    "http_ssl_fds",
    "http_go_calls",
];

/// How TLS went at load, for `sonde doctor`: the hook and the files
/// attached, or why there is none.
static TLS_STATE: Mutex<Option<Result<String, String>>> = Mutex::new(None);

/// Which capture the last load attached, for `sonde doctor`.
static CAPTURE: Mutex<Option<String>> = Mutex::new(None);

/// Whether the last load attaches probes after start (`[collect.bpf]
/// http_tls_late_attach` and a working hook), so the capabilities for it
/// must stay.
static ATTACHES_LATER: AtomicBool = AtomicBool::new(false);

/// What `sonde doctor` says of TLS after the last load; None before any.
pub fn tls_state() -> Option<Result<String, String>> {
    TLS_STATE.lock().ok()?.clone()
}

/// What `sonde doctor` says of the capture after the last load.
pub fn capture() -> Option<String> {
    CAPTURE.lock().ok()?.clone()
}

pub fn attaches_later() -> bool {
    ATTACHES_LATER.load(Ordering::Relaxed)
}

fn set_tls_state(state: Result<String, String>) {
    if let Ok(mut slot) = TLS_STATE.lock() {
        *slot = Some(state);
    }
}

/// Opens the object; `watch_mappings`: send MAPPED events; `ring_bytes`:
/// the ring buffer's size.
fn open(watch_mappings: bool, ring_bytes: u64) -> anyhow::Result<skel::OpenHttpSkel<'static>> {
    let mut open = HttpSkelBuilder::default().open(object_storage())?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| anyhow!("the http object has no read-only data"))?;
    rodata.self_tgid = std::process::id();
    rodata.watch_mappings = watch_mappings;
    ring::set_size(
        &mut open.maps.http_events,
        &mut rodata.wakeup_shift,
        ring_bytes,
    )?;
    Ok(open)
}

/// Loads the object with the OpenSSL programs of `hook` and proves the hook
/// attaches: a probe on a function of sonde's own binary that nothing
/// calls here (a kernel without uprobe.multi loads its programs but
/// refuses the link).
fn attach_with_tls(
    hook: Hook,
    late: bool,
    ring_bytes: u64,
) -> anyhow::Result<Attached<HttpSkel<'static>>> {
    check_refused(hook.name())?;
    if hook == Hook::Multi {
        // Both kinds are uprobes: refusing "uprobe" refuses TLS altogether.
        check_refused(AttachKind::Uprobe.name())?;
    }
    let attached = attach_loading(NAME, variants(late), &hook.programs(), || {
        open(late, ring_bytes)
    })?;
    let [enter, ..] = tls_programs(&attached.skel, hook);
    let probe = match hook {
        Hook::Multi => enter.attach_uprobe_multi(-1, "/proc/self/exe", PROBE_TARGET, false, false),
        Hook::Perf => enter.attach_uprobe_with_opts(
            -1,
            "/proc/self/exe",
            0,
            UprobeOpts {
                func_name: Some(PROBE_TARGET.to_string()),
                ..Default::default()
            },
        ),
    };
    drop(probe.with_context(|| format!("attaching {} to sonde itself", hook.name()))?);
    Ok(attached)
}

/// The function of sonde's binary the hook check attaches to.
const PROBE_TARGET: &str = "sonde_doctor_uprobe_target";

/// The TLS programs of `hook` ([`Hook::programs`]).
fn tls_programs<'s>(skel: &'s HttpSkel<'static>, hook: Hook) -> Programs<'s, 'static> {
    let progs = &skel.progs;
    match hook {
        Hook::Multi => [
            &progs.ssl_enter_multi,
            &progs.ssl_return_multi,
            &progs.go_tls_multi,
        ],
        Hook::Perf => [
            &progs.ssl_enter_perf,
            &progs.ssl_return_perf,
            &progs.go_tls_perf,
        ],
    }
}

/// `forget_after`: how long a series outlives its last request; `tls`:
/// load the TLS probes at all (`[collect.bpf] http_tls`); `late`: attach
/// them to files mapped after start too (`http_tls_late_attach`); `ring_bytes`: the ring buffer's size
/// (`http_ring_size`); `http`: which connections are measured and the
/// route patterns (`[collect.http]`).
pub fn load(
    forget_after: Duration,
    tls: bool,
    late: bool,
    ring_bytes: u64,
    http: &HttpConfig,
) -> anyhow::Result<Loaded> {
    let red = Red::new(forget_after, http)?;
    let mut reasons = Vec::new();
    let mut loaded = None;
    let hooks: &[Hook] = if tls { &[Hook::Multi, Hook::Perf] } else { &[] };
    for &hook in hooks {
        match attach_with_tls(hook, late, ring_bytes) {
            Ok(attached) => {
                loaded = Some((attached, Some(hook)));
                break;
            }
            Err(err) => reasons.push(format!("{}: {err:#}", hook.name())),
        }
    }
    let (attached, hook) = match loaded {
        Some(loaded) => loaded,
        None => (
            attach(NAME, variants(false), || open(false, ring_bytes))?,
            None,
        ),
    };
    let sockets = attached.attaches(SOCKETS.programs[0]);
    let capture = if sockets {
        "at socket I/O (sock_recv_length, sock_send_length, inet_sock_set_state)"
    } else {
        "at every syscall exit: no socket tracepoints (Linux 6.3+), each syscall costs more"
    };
    tracing::info!("http capture: {capture}");
    if let Ok(mut slot) = CAPTURE.lock() {
        *slot = Some(capture.to_string());
    }
    ATTACHES_LATER.store(late && hook.is_some(), Ordering::Relaxed);
    let mut tls_files = TlsFiles::default();
    let mut programs = attached.program_handles()?;
    match hook {
        Some(hook) => {
            let tls = tls_programs(&attached.skel, hook);
            tls_files.attach(tls, hook, TlsFiles::at_start());
            let mut summary = tls_summary(hook, &tls_files);
            if !late {
                summary
                    .push_str("; not to files mapped later ([collect.bpf] http_tls_late_attach)");
            }
            set_tls_state(Ok(summary));
            // Their run time too: the cost of a TLS request.
            for (name, program) in hook.programs().into_iter().zip(tls) {
                let fd = program.as_fd().try_clone_to_owned()?;
                programs.push(ProgramHandle { name, fd });
            }
        }
        None if !tls => set_tls_state(Ok("off: [collect.bpf] http_tls = false".to_string())),
        None => set_tls_state(Err(format!("no TLS probes: {}", reasons.join("; ")))),
    }
    let events = MapHandle::try_from(&attached.skel.maps.http_events)?;
    let asleep = MapHandle::try_from(&attached.skel.maps.reader_asleep)?;
    let conns = MapHandle::try_from(&attached.skel.maps.conns)?;
    let mapped = Arc::new(Mutex::new(HashSet::new()));
    let red = Arc::new(Mutex::new(red));
    let reader = {
        let (red, mapped) = (Arc::clone(&red), Arc::clone(&mapped));
        RingReader::new("sonde-http", move |stop| {
            read_events(&events, &asleep, &conns, &red, &mapped, stop)
        })?
    };
    Ok(Loaded {
        kind: attached.kind,
        programs,
        map_full: Some(attached.map_full_counter(BOUNDED_MAPS)?),
        collector: Box::new(Http {
            attached,
            hook,
            tls_files,
            mapped,
            red,
            reader,
            sockets,
        }),
    })
}

/// One line on TLS: the hook and the libssl files probed, or refused.
fn tls_summary(hook: Hook, tls_files: &TlsFiles) -> String {
    let files = |paths: &mut dyn Iterator<Item = &Path>| {
        paths
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut summary = format!(
        "TLS probes by {} on {} libssl file(s) and {} Go program(s) at start: {}",
        hook.name(),
        tls_files.attached.len() - tls_files.go_programs,
        tls_files.go_programs,
        files(&mut tls_files.attached.iter().map(|p| p.as_path()))
    );
    if !tls_files.failures.is_empty() {
        let refused: Vec<String> = tls_files
            .failures
            .iter()
            .map(|(path, why)| format!("{}: {why}", path.display()))
            .collect();
        summary.push_str(&format!("; refused: {}", refused.join("; ")));
    }
    summary
}

/// The reader thread: polls the ring buffer until `stop`. MAPPED events
/// only note the process in `mapped`, for the next round to read its maps;
/// a connection `[collect.http]` leaves out is marked so in `conns`.
fn read_events(
    events: &MapHandle,
    asleep: &MapHandle,
    conns: &MapHandle,
    red: &Mutex<Red>,
    mapped: &Mutex<HashSet<u32>>,
    stop: &Stop,
) -> anyhow::Result<()> {
    let on_record = |bytes: &[u8]| {
        let Some(event) = decode(bytes) else { return };
        if let Event::Mapped { tgid } = event {
            if let Ok(mut mapped) = mapped.lock() {
                mapped.insert(tgid);
            }
        }
        let left_out = red.lock().ok().and_then(|mut red| red.observe(event));
        if let Some((key, conn)) = left_out {
            leave_out(conns, key, conn);
        }
    };
    poll_until(&mut RingBuf::new(events)?, on_record, asleep, stop)
}

/// `enum conn_state`'s CONN_NOT_HTTP (bpf/http.bpf.c).
const CONN_NOT_HTTP: u32 = 3;

/// Marks connection `key` left out in `conns` (`left_out`, CONN_NOT_HTTP),
/// so the program stops at its lookup instead of following its requests;
/// its close still sends CLOSED for `owner`. Only an entry still there is
/// replaced: one closed meanwhile must not come back under a key a new
/// socket may take.
fn leave_out(conns: &MapHandle, key: u64, owner: Conn) {
    use std::mem::{offset_of, size_of};
    use types::conn;
    let mut value = vec![0u8; size_of::<conn>()];
    value[offset_of!(conn, state)..][..4].copy_from_slice(&CONN_NOT_HTTP.to_ne_bytes());
    value[offset_of!(conn, opened)] = 1;
    value[offset_of!(conn, left_out)] = 1;
    value[offset_of!(conn, key)..][..8].copy_from_slice(&key.to_ne_bytes());
    let done = offset_of!(conn, done);
    value[done + TGID..][..4].copy_from_slice(&owner.tgid.to_ne_bytes());
    value[done + FD..][..4].copy_from_slice(&owner.fd.to_ne_bytes());
    // ENOENT: closed already; nothing else can fail on a hash map's update.
    let _ = conns.update(&key.to_ne_bytes(), &value, MapFlags::EXIST);
}

/// Offsets in `struct http_open` and `struct http_done` (bpf/sonde.h),
/// both starting with kind, tgid and fd.
const KIND: usize = 0;
const TGID: usize = 4;
const FD: usize = 8;
const LISTEN_FD: usize = 12;
const CGROUP: usize = 16;
const COMM: usize = 24;
const SERVER_ADDR: usize = 40;
const SERVER_PORT: usize = 56;
const SERVER_FAMILY: usize = 58;
const ROLE: usize = 60;
const PARENT: usize = 64;
const KEY: usize = 72;
const REQ_LEN: usize = 12;
const RESP_LEN: usize = 14;
const START_NS: usize = 16;
const END_NS: usize = 24;
const REQ_BYTES: usize = 32;
const RESP_BYTES: usize = 40;
const FLAGS: usize = 48;
const DATA: usize = 56;
/// Offsets in `struct http_chunk`, after kind, tgid and fd.
const RECEIVED: usize = 12;
const LOST: usize = 13;
const COPIED: usize = 14;
const CHUNK_NS: usize = 16;
const CHUNK_LEN: usize = 24;
const CHUNK_DATA: usize = 32;

/// `HTTP_DONE_CLOSED`: the connection closed after the request.
const DONE_CLOSED: u32 = 1;

/// AF_INET and AF_INET6 (SONDE_AF_* in bpf/sonde.h).
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

pub(super) fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

pub(super) fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

pub(super) fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

/// OPEN's server end (`struct http_addr`); None when the program did not
/// know it (family 0).
fn server(bytes: &[u8]) -> Option<SocketAddr> {
    let addr: [u8; 16] = bytes.get(SERVER_ADDR..SERVER_ADDR + 16)?.try_into().ok()?;
    let ip = match u16_at(bytes, SERVER_FAMILY)? {
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(addr)).to_canonical(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, u16_at(bytes, SERVER_PORT)?))
}

/// One event; None when it is too short or of no known kind.
fn decode(bytes: &[u8]) -> Option<Event<'_>> {
    let conn = Conn {
        tgid: u32_at(bytes, TGID)?,
        fd: u32_at(bytes, FD)? as i32,
    };
    // DONE's and RESPONSE's heads: the request's, then the response's.
    let heads = || {
        let request = u16_at(bytes, REQ_LEN)? as usize;
        let response = u16_at(bytes, RESP_LEN)? as usize;
        let data = bytes.get(DATA..DATA + request + response)?;
        Some(data.split_at(request))
    };
    match u32_at(bytes, KIND)? {
        0 => Some(Event::Open {
            conn,
            key: u64_at(bytes, KEY)?,
            parent: u32_at(bytes, PARENT)?,
            cgroup: u64_at(bytes, CGROUP)?,
            comm: bytes.get(COMM..COMM + 16)?,
            listen_fd: u32_at(bytes, LISTEN_FD)? as i32,
            role: match *bytes.get(ROLE)? {
                0 => Role::Server,
                _ => Role::Client,
            },
            server: server(bytes),
        }),
        1 => Some(Event::Response {
            conn,
            start_ns: u64_at(bytes, START_NS)?,
            ns: u64_at(bytes, END_NS)?,
            before: u64_at(bytes, RESP_BYTES)?,
            head: heads()?.1,
        }),
        2 => {
            let (request_head, response_head) = heads()?;
            Some(Event::Done {
                conn,
                start_ns: u64_at(bytes, START_NS)?,
                end_ns: u64_at(bytes, END_NS)?,
                request_bytes: u64_at(bytes, REQ_BYTES)?,
                response_bytes: u64_at(bytes, RESP_BYTES)?,
                request_head,
                response_head,
                closed: u32_at(bytes, FLAGS)? & DONE_CLOSED != 0,
            })
        }
        3 => Some(Event::Closed { conn }),
        4 => Some(Event::Mapped { tgid: conn.tgid }),
        5 => {
            let copied = u16_at(bytes, COPIED)? as usize;
            Some(Event::H2 {
                conn,
                received: *bytes.get(RECEIVED)? != 0,
                ns: u64_at(bytes, CHUNK_NS)?,
                chunk: Chunk {
                    len: u64_at(bytes, CHUNK_LEN)?,
                    pieces: bytes.get(CHUNK_DATA..CHUNK_DATA + copied)?,
                    lost: *bytes.get(LOST)? != 0,
                },
            })
        }
        _ => None,
    }
}

struct Http {
    attached: Attached<HttpSkel<'static>>,
    /// How the OpenSSL probes attach; None: TLS is off (`sonde doctor` says why).
    hook: Option<Hook>,
    tls_files: TlsFiles,
    /// Processes that mapped a file executable since the last round.
    mapped: Arc<Mutex<HashSet<u32>>>,
    red: Arc<Mutex<Red>>,
    reader: RingReader,
    /// The socket capture: its connections leave `conns` as their sockets
    /// close, whatever became of their process.
    sockets: bool,
}

/// The kernel's bound on pids (include/linux/threads.h).
const PID_MAX_LIMIT: u64 = 1 << 22;

fn alive(tgid: u32) -> bool {
    Path::new(&format!("/proc/{tgid}")).exists()
}

/// Deletes the entries of processes that are gone from a map whose keys
/// start (u64 keys: end) with a tgid: a process that exits does not close
/// its fds through the syscall the program sees.
fn forget_gone(map: &impl MapCore, tgid_of: impl Fn(&[u8]) -> Option<u32>) {
    let gone: Vec<Vec<u8>> = map
        .keys()
        .filter(|key| tgid_of(key).is_some_and(|tgid| !alive(tgid)))
        .collect();
    for key in gone {
        // Already deleted by a close in between: nothing to do.
        let _ = map.delete(&key);
    }
}

impl Http {
    /// Attaches the OpenSSL probes to libssl files that processes mapped
    /// since the last round and no probe covers yet.
    fn attach_new_tls_files(&mut self) {
        let Some(hook) = self.hook else { return };
        let tgids: Vec<u32> = match self.mapped.lock() {
            Ok(mut mapped) => mapped.drain().collect(),
            Err(_) => return,
        };
        let files: Vec<_> = tgids.into_iter().flat_map(TlsFiles::mapped_by).collect();
        if !files.is_empty() {
            let programs = tls_programs(&self.attached.skel, hook);
            self.tls_files.attach(programs, hook, files);
        }
    }
}

impl Collector for Http {
    fn name(&self) -> &'static str {
        NAME
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        self.reader.start()
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        self.reader
            .check()
            .context("the http event reader stopped")?;
        self.attach_new_tls_files();
        let maps = &self.attached.skel.maps;
        // Keyed by tgid << 32 | fd (the syscall capture's conns, Go's TLS
        // connections on either capture) or thread id; the socket capture's
        // own keys are kernel addresses, above every tgid << 32, and leave
        // with their sockets.
        let tgid_of = |key: &[u8]| {
            let tgid = u64_at(key, 0)? >> 32;
            (tgid <= PID_MAX_LIMIT).then_some(tgid as u32)
        };
        if !self.sockets || self.tls_files.go_programs > 0 {
            forget_gone(&maps.conns, tgid_of);
        }
        forget_gone(&maps.ssl_calls, tgid_of);
        forget_gone(&maps.go_calls, |key| u32_at(key, 0));
        forget_gone(&maps.servers, |key| u32_at(key, 0));
        let mut red = self
            .red
            .lock()
            .map_err(|_| anyhow!("http state poisoned"))?;
        red.retain(alive);
        out.extend(red.families());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_and_refuses_short_ones() {
        let mut bytes = vec![0u8; 80];
        bytes[TGID..TGID + 4].copy_from_slice(&42u32.to_ne_bytes());
        bytes[FD..FD + 4].copy_from_slice(&7i32.to_ne_bytes());
        bytes[LISTEN_FD..LISTEN_FD + 4].copy_from_slice(&3i32.to_ne_bytes());
        bytes[PARENT..PARENT + 4].copy_from_slice(&41u32.to_ne_bytes());
        bytes[KEY..KEY + 8].copy_from_slice(&0xffff_8880_1234_5678u64.to_ne_bytes());
        match decode(&bytes) {
            Some(Event::Open {
                conn,
                key: 0xffff_8880_1234_5678,
                parent: 41,
                listen_fd: 3,
                role: Role::Server,
                server: None,
                ..
            }) => assert_eq!(conn, Conn { tgid: 42, fd: 7 }),
            other => panic!("{other:?}"),
        }
        // The server end: a client's peer (a server's own address alike).
        bytes[ROLE] = 1;
        bytes[SERVER_FAMILY..SERVER_FAMILY + 2].copy_from_slice(&AF_INET.to_ne_bytes());
        bytes[SERVER_ADDR..SERVER_ADDR + 4].copy_from_slice(&[10, 0, 0, 1]);
        bytes[SERVER_PORT..SERVER_PORT + 2].copy_from_slice(&8080u16.to_ne_bytes());
        match decode(&bytes) {
            Some(Event::Open { role, server, .. }) => {
                assert_eq!(role, Role::Client);
                assert_eq!(server, Some("10.0.0.1:8080".parse().unwrap()));
            }
            other => panic!("{other:?}"),
        }
        bytes[SERVER_FAMILY..SERVER_FAMILY + 2].copy_from_slice(&AF_INET6.to_ne_bytes());
        let v6: std::net::Ipv6Addr = "::ffff:10.0.0.2".parse().unwrap();
        bytes[SERVER_ADDR..SERVER_ADDR + 16].copy_from_slice(&v6.octets());
        assert!(matches!(
            decode(&bytes),
            Some(Event::Open { server: Some(server), .. }) if server.to_string() == "10.0.0.2:8080"
        ));
        // DONE: the request's head, then the response's, as long as they say.
        let mut bytes = vec![0u8; DATA];
        bytes[KIND] = 2;
        bytes[TGID..TGID + 4].copy_from_slice(&42u32.to_ne_bytes());
        bytes[REQ_LEN..REQ_LEN + 2].copy_from_slice(&3u16.to_ne_bytes());
        bytes[RESP_LEN..RESP_LEN + 2].copy_from_slice(&4u16.to_ne_bytes());
        bytes[START_NS..START_NS + 8].copy_from_slice(&10u64.to_ne_bytes());
        bytes[END_NS..END_NS + 8].copy_from_slice(&25u64.to_ne_bytes());
        bytes[FLAGS] = 1;
        bytes.extend_from_slice(b"GETHTTP");
        assert!(matches!(
            decode(&bytes),
            Some(Event::Done {
                start_ns: 10,
                end_ns: 25,
                request_head: b"GET",
                response_head: b"HTTP",
                closed: true,
                ..
            })
        ));
        assert!(decode(&bytes[..DATA + 6]).is_none(), "heads cut short");
        bytes[KIND] = 1;
        bytes[REQ_LEN..REQ_LEN + 2].copy_from_slice(&0u16.to_ne_bytes());
        bytes[RESP_LEN..RESP_LEN + 2].copy_from_slice(&3u16.to_ne_bytes());
        assert!(matches!(
            decode(&bytes),
            Some(Event::Response {
                start_ns: 10,
                ns: 25,
                head: b"GET",
                ..
            })
        ));
        bytes[KIND] = 3;
        assert!(matches!(decode(&bytes), Some(Event::Closed { .. })));
        bytes[KIND] = 4;
        assert!(matches!(decode(&bytes), Some(Event::Mapped { tgid: 42 })));
        // H2: the pieces copied, of all that moved.
        let mut bytes = vec![0u8; CHUNK_DATA];
        bytes[KIND] = 5;
        bytes[RECEIVED] = 1;
        bytes[LOST] = 1;
        bytes[COPIED..COPIED + 2].copy_from_slice(&3u16.to_ne_bytes());
        bytes[CHUNK_LEN..CHUNK_LEN + 8].copy_from_slice(&900u64.to_ne_bytes());
        assert!(decode(&bytes).is_none(), "fewer bytes than COPIED says");
        bytes.extend_from_slice(b"PRI");
        assert!(matches!(
            decode(&bytes),
            Some(Event::H2 {
                received: true,
                chunk: Chunk {
                    len: 900,
                    pieces: b"PRI",
                    lost: true,
                },
                ..
            })
        ));
        bytes[KIND] = 9;
        assert!(decode(&bytes).is_none());
        assert!(decode(&bytes[..10]).is_none());
    }
}
