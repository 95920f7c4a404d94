//! Kernel metrics from eBPF programs, and the machinery every BPF collector
//! shares.
//!
//! # Adding a BPF collector
//! 1. Write `bpf/<name>.bpf.c`. Structs and constants that user space reads go
//!    in `bpf/sonde.h`. Put each hook in one program per attach variant (e.g.
//!    `raw_tp/...` and `tracepoint/...`) sharing an inline function. Bound every
//!    map; declare `SONDE_MAP_FULL_COUNTER(n)` and call `sonde_count_map_full`
//!    when an insert fails, so a full map shows up in `sonde_bpf_map_full_total`.
//!    A map keyed by who (process, cgroup, connection, route) must not grow
//!    with sonde's uptime: declare it with `SONDE_DOUBLE_BUFFERED` and write
//!    through `SONDE_HALF`, so it holds one interval's keys, and size it for
//!    the distinct keys one interval must absorb (say so beside it). A map
//!    of live objects (sockets, requests in flight) is bounded by what is
//!    alive: delete its entries when the object ends, or make it an LRU.
//!    Histograms are `struct sonde_hist` filled with `sonde_hist_slot(ns)`.
//!    `build.rs` compiles it into `<name>.skel.rs` in OUT_DIR.
//! 2. Write `src/collect/bpf/<name>.rs`: a `load` function that calls
//!    [`attach`] with the skeleton's opener and a list of [`Variant`]s in order
//!    of preference, and returns a [`Loaded`] whose collector reads the maps
//!    (helpers: [`read_map`], [`push_log2_histogram`], and [`who::Who`] for
//!    the `comm`, `unit` and `container` labels of a `struct proc_id`). A
//!    double-buffered map is read through [`drain::DoubleBuffered`]: swap
//!    its halves in `begin_round`, drain them in `collect` and export the
//!    totals, which forget a key idle for `[collect] forget_after`.
//!    A ring buffer of events is read on a [`ring::RingReader`] thread
//!    (started in `begin_round`, checked in `collect`) through a
//!    [`ringbuf::RingBuf`] with [`ring::poll_until`]; its size is a
//!    `[collect.bpf]` key, given to the object before it loads with
//!    [`ring::set_size`] (all of it is resident in sonde: measure what the
//!    default must hold).
//! 3. Add a [`Spec`] to [`SPECS`] and a key to `[collect.bpf]`
//!    ([`crate::config::BpfConfig`], documented in packaging/sonde.toml).
//!
//! [`load_all`] then loads it in `sonde run` and lists it in `sonde doctor`;
//! when it cannot load, the reason is logged and sonde runs on without it.
//! Program run time and run count, events lost and full maps of every loaded
//! collector are exported by one self-metrics collector ([`BpfSelfMetrics`]).
//!
//! # Forcing a failure
//! `SONDE_BPF_REFUSE` is a comma-separated list of names that sonde treats as
//! refused by the kernel: an attach kind (`raw_tp`, `tp_btf`, `tracepoint`,
//! `uprobe`, `ringbuf`; `uprobe.multi` makes the http collector's OpenSSL
//! probes perf-event uprobes; `thread_counts` makes the syscalls collector
//! keep every thread's counters in task storage), a collector name
//! (`syscalls`), `bpf` for the bpf()
//! syscall itself, `bpf_stats_enabled` for writing that sysctl ([`stats`]),
//! or `batch` for batch reads of maps ([`maps`]). Tests use it to show fallbacks and degraded runs; users can
//! use it to keep a probe off while they investigate it.

pub mod block;
pub mod drain;
pub mod errno_names;
pub mod events;
pub mod http;
pub mod maps;
pub mod net;
pub mod process;
pub mod ring;
pub mod ringbuf;
pub mod sched;
pub mod stats;
pub mod syscall_names;
pub mod syscalls;
pub mod who;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context};
use libbpf_rs::skel::{OpenSkel, Skel};
use libbpf_rs::{libbpf_sys, Link, MapCore, MapHandle, OpenObject};

use crate::collect::Collector;
use crate::config::{BpfConfig, CollectConfig};
use crate::model::Family;
pub use maps::read_map;
use stats::RunTimeStats;

/// How a program hooks into the kernel. The names are the rows of
/// `sonde doctor` and what `SONDE_BPF_REFUSE` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachKind {
    /// Raw tracepoint: no tracefs, no argument copying; the cheapest hook.
    RawTp,
    /// BTF-typed raw tracepoint: typed arguments, needs kernel BTF.
    TpBtf,
    /// Classic tracepoint through tracefs (needs it mounted and readable).
    /// The kernel skips such a program when it fires while another
    /// tracepoint program runs on the same CPU (an interrupt's completion
    /// landing in a syscall's program): those events are counted in
    /// `sonde_bpf_events_lost_total`, not in the collector's metrics.
    Tracepoint,
    /// User-space function probe.
    Uprobe,
    /// BPF ring buffer to stream events to user space.
    Ringbuf,
}

impl AttachKind {
    pub const ALL: [AttachKind; 5] = [
        AttachKind::RawTp,
        AttachKind::TpBtf,
        AttachKind::Tracepoint,
        AttachKind::Uprobe,
        AttachKind::Ringbuf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttachKind::RawTp => "raw_tp",
            AttachKind::TpBtf => "tp_btf",
            AttachKind::Tracepoint => "tracepoint",
            AttachKind::Uprobe => "uprobe",
            AttachKind::Ringbuf => "ringbuf",
        }
    }
}

/// The environment variable naming probes to treat as refused (module docs).
pub const REFUSE_ENV: &str = "SONDE_BPF_REFUSE";

/// Fails as the kernel would if `SONDE_BPF_REFUSE` names `what`.
pub fn check_refused(what: &str) -> anyhow::Result<()> {
    let listed = std::env::var(REFUSE_ENV).unwrap_or_default();
    if listed.split(',').any(|name| name.trim() == what) {
        bail!("refused: {REFUSE_ENV} names {what:?} (simulating a kernel that refuses it)");
    }
    Ok(())
}

/// One way to attach a collector: which attach kind, and the programs of its
/// object that make it up (all others stay unloaded).
pub struct Variant {
    pub kind: AttachKind,
    pub programs: &'static [&'static str],
}

/// A loaded skeleton with its programs attached.
pub struct Attached<S> {
    pub skel: S,
    pub kind: AttachKind,
    pub links: Vec<Link>,
    programs: &'static [&'static str],
}

/// Storage for one opened BPF object. A skeleton borrows it for its whole
/// life and a collector lives as long as sonde, so it is leaked: a few bytes
/// per load attempt, once per process.
pub fn object_storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

/// Loads and attaches a collector's object with the first variant that works,
/// trying them in order. The error lists why each variant failed.
pub fn attach<O, S>(
    collector: &str,
    variants: &'static [Variant],
    open: impl FnMut() -> anyhow::Result<O>,
) -> anyhow::Result<Attached<S>>
where
    O: OpenSkel<'static, Output = S>,
    S: Skel<'static>,
{
    attach_loading(collector, variants, &[], open)
}

/// [`attach`], also loading the programs `unattached` names, which the
/// collector attaches itself (uprobes, to files it finds as it runs).
pub fn attach_loading<O, S>(
    collector: &str,
    variants: &'static [Variant],
    unattached: &[&str],
    mut open: impl FnMut() -> anyhow::Result<O>,
) -> anyhow::Result<Attached<S>>
where
    O: OpenSkel<'static, Output = S>,
    S: Skel<'static>,
{
    check_refused(collector)?;
    check_refused("bpf")?;
    let mut reasons = Vec::new();
    for variant in variants {
        match attach_variant(variant, unattached, &mut open) {
            Ok(attached) => return Ok(attached),
            Err(err) => reasons.push(format!("{}: {err:#}", variant.kind.name())),
        }
    }
    bail!("{}", reasons.join("; "))
}

fn attach_variant<O, S>(
    variant: &'static Variant,
    unattached: &[&str],
    open: &mut impl FnMut() -> anyhow::Result<O>,
) -> anyhow::Result<Attached<S>>
where
    O: OpenSkel<'static, Output = S>,
    S: Skel<'static>,
{
    check_refused(variant.kind.name())?;
    if variant.kind == AttachKind::Tracepoint {
        ensure_tracefs()?;
    }
    let mut open_skel = open()?;
    for mut program in open_skel.open_object_mut().progs_mut() {
        let wanted = variant
            .programs
            .iter()
            .chain(unattached)
            .any(|name| program.name() == std::ffi::OsStr::new(name));
        program.set_autoload(wanted);
    }
    let skel = with_libbpf_log(|| open_skel.load()).context("loading into the kernel")?;
    let mut links = Vec::new();
    for name in variant.programs {
        let program = find_program(skel.object(), name)?;
        let link =
            with_libbpf_log(|| program.attach()).with_context(|| format!("attaching {name}"))?;
        links.push(link);
    }
    Ok(Attached {
        skel,
        kind: variant.kind,
        links,
        programs: variant.programs,
    })
}

fn find_program<'o>(
    object: &'o libbpf_rs::Object,
    name: &str,
) -> anyhow::Result<libbpf_rs::ProgramMut<'o>> {
    object
        .progs_mut()
        .find(|program| program.name() == std::ffi::OsStr::new(name))
        .ok_or_else(|| anyhow!("the BPF object has no program {name}"))
}

impl<S: Skel<'static>> Attached<S> {
    /// Runs the attached BPF iterator `program` over every object it walks,
    /// for its side effects on maps (it writes no output).
    pub fn run_iterator(&self, program: &str) -> anyhow::Result<()> {
        let link = self
            .programs
            .iter()
            .position(|name| *name == program)
            .and_then(|index| self.links.get(index))
            .ok_or_else(|| anyhow!("the iterator {program} is not attached"))?;
        let mut iter = libbpf_rs::Iter::new(link).with_context(|| format!("starting {program}"))?;
        std::io::copy(&mut iter, &mut std::io::sink())
            .with_context(|| format!("running {program}"))?;
        Ok(())
    }

    /// Whether `program` is one of those attached.
    pub fn attaches(&self, program: &str) -> bool {
        self.programs.contains(&program)
    }

    /// Handles on the attached programs, for their run-time statistics.
    pub fn program_handles(&self) -> anyhow::Result<Vec<ProgramHandle>> {
        self.programs
            .iter()
            .map(|name| {
                let program = find_program(self.skel.object(), name)?;
                Ok(ProgramHandle {
                    name,
                    fd: program.as_fd().try_clone_to_owned()?,
                })
            })
            .collect()
    }

    /// The object's `map_full` counter; `maps` names its slots in order.
    pub fn map_full_counter(
        &self,
        maps: &'static [&'static str],
    ) -> anyhow::Result<MapFullCounter> {
        let map = self
            .skel
            .object()
            .maps()
            .find(|map| map.name() == "map_full")
            .ok_or_else(|| anyhow!("the BPF object has no map_full counter"))?;
        Ok(MapFullCounter {
            map: MapHandle::try_from(&map)?,
            maps,
        })
    }
}

/// A loaded BPF program, kept to read the kernel's statistics of it.
pub struct ProgramHandle {
    pub name: &'static str,
    fd: OwnedFd,
}

/// A collector's per-CPU count of inserts refused by full maps.
pub struct MapFullCounter {
    map: MapHandle,
    maps: &'static [&'static str],
}

/// What loading one BPF collector gives: the collector, how it attached, and
/// what the self-metrics need.
pub struct Loaded {
    pub collector: Box<dyn Collector>,
    pub kind: AttachKind,
    pub programs: Vec<ProgramHandle>,
    pub map_full: Option<MapFullCounter>,
}

/// A BPF collector sonde knows: its name, whether the config turns it on,
/// how to load it, and what it lacks when attached with a given kind.
pub struct Spec {
    pub name: &'static str,
    pub enabled: fn(&BpfConfig) -> bool,
    pub load: fn(&CollectConfig) -> anyhow::Result<Loaded>,
    pub degraded: &'static [Degraded],
}

/// What a collector cannot measure when attached with `kind` (shown by
/// `sonde doctor` and in the log beside its state).
pub struct Degraded {
    pub kind: AttachKind,
    pub lacks: &'static str,
}

/// Every BPF collector.
pub const SPECS: &[Spec] = &[
    Spec {
        name: syscalls::NAME,
        enabled: |config| config.syscalls,
        load: |config| {
            let latency = config
                .bpf
                .syscall_latency
                .then_some(config.bpf.syscall_latency_sample);
            syscalls::load(latency, config.forget_after)
        },
        degraded: &[],
    },
    Spec {
        name: block::NAME,
        enabled: |config| config.block,
        load: |config| block::load(config.forget_after),
        degraded: block::DEGRADED,
    },
    Spec {
        name: net::NAME,
        enabled: |config| config.net,
        load: |config| net::load(config.forget_after),
        degraded: &[],
    },
    Spec {
        name: process::NAME,
        enabled: |config| config.process,
        load: |config| process::load(config.forget_after),
        degraded: process::DEGRADED,
    },
    Spec {
        name: sched::NAME,
        enabled: |config| config.sched,
        load: |config| sched::load(config.forget_after),
        degraded: sched::DEGRADED,
    },
    Spec {
        name: http::NAME,
        enabled: |config| config.http,
        load: |config| {
            http::load(
                config.forget_after,
                config.bpf.http_tls,
                config.bpf.http_tls_late_attach,
                config.bpf.http_ring_size,
                &config.http,
            )
        },
        degraded: &[],
    },
    Spec {
        name: events::NAME,
        enabled: |config| config.events,
        load: |config| events::load(&config.bpf),
        degraded: &[],
    },
];

/// What became of one BPF collector at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Attached with this kind; what the collector lacks with it, if anything.
    Attached(AttachKind, Option<&'static str>),
    /// Turned off in `[collect.bpf]`.
    Disabled,
    /// Could not load or attach; the reason.
    Failed(String),
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Attached(kind, None) => write!(f, "on ({})", kind.name()),
            State::Attached(kind, Some(lacks)) => {
                write!(f, "on ({}; degraded: {lacks})", kind.name())
            }
            State::Disabled => write!(f, "off: disabled in [collect.bpf]"),
            State::Failed(reason) => write!(f, "off: {reason}"),
        }
    }
}

/// The BPF collectors that loaded (plus their self-metrics collector), and
/// the state of every known one.
pub struct LoadedSet {
    pub collectors: Vec<Box<dyn Collector>>,
    pub states: Vec<(&'static str, State)>,
    /// How run-time statistics were turned on ([`stats`]); None when no
    /// collector loaded.
    pub stats: Option<Result<String, String>>,
    /// Whether sonde holds `kernel.bpf_stats_enabled` on and may restore it
    /// at exit ([`crate::privilege::drop_after_load`] keeps CAP_SYS_ADMIN).
    pub restores_sysctl: bool,
}

/// Loads every enabled BPF collector; one that fails is recorded with its
/// reason and the others still load.
pub fn load_all(config: &CollectConfig) -> LoadedSet {
    capture_libbpf_log();
    let mut collectors = Vec::new();
    let mut states = Vec::new();
    let mut self_metrics = BpfSelfMetrics::default();
    for spec in SPECS {
        if !(spec.enabled)(&config.bpf) {
            states.push((spec.name, State::Disabled));
            continue;
        }
        match (spec.load)(config) {
            Ok(loaded) => {
                let lacks = spec
                    .degraded
                    .iter()
                    .find(|degraded| degraded.kind == loaded.kind)
                    .map(|degraded| degraded.lacks);
                states.push((spec.name, State::Attached(loaded.kind, lacks)));
                collectors.push(loaded.collector);
                self_metrics.programs.extend(loaded.programs);
                self_metrics.map_full.extend(loaded.map_full);
            }
            Err(err) => {
                let reason = match crate::privilege::missing_for_loading() {
                    Some(lacks) => format!("{lacks}; {err:#}"),
                    None => format!("{err:#}"),
                };
                states.push((spec.name, State::Failed(reason)));
            }
        }
    }
    let mut stats = None;
    let mut restores_sysctl = false;
    if !collectors.is_empty() {
        if let Err(err) = drain::prepare_barrier() {
            // Each round then says so, for every double-buffered collector.
            tracing::warn!("{err:#}");
        }
        if config.bpf.run_time_stats {
            let enabled = RunTimeStats::enable();
            stats = Some(enabled.summary.clone());
            restores_sysctl = enabled.restores_sysctl();
            self_metrics.stats = Some(enabled);
        } else {
            let off =
                "off ([collect.bpf] run_time_stats = false): no program run time or run count";
            tracing::info!("bpf run-time statistics: {off}");
            stats = Some(Ok(off.to_string()));
        }
        collectors.push(Box::new(self_metrics));
    }
    LoadedSet {
        collectors,
        states,
        stats,
        restores_sysctl,
    }
}

/// Loads every enabled BPF collector as [`load_all`] does, and logs each
/// one's state (or the reason it is off).
pub fn collectors(config: &CollectConfig) -> LoadedSet {
    let set = load_all(config);
    for (name, state) in &set.states {
        match state {
            State::Attached(..) => tracing::info!("bpf collector {name}: {state}"),
            _ => tracing::warn!("bpf collector {name}: {state}"),
        }
    }
    set
}

/// Self-metrics of every loaded BPF collector: program run time and count,
/// events lost, inserts refused by full maps.
#[derive(Default)]
pub struct BpfSelfMetrics {
    programs: Vec<ProgramHandle>,
    map_full: Vec<MapFullCounter>,
    stats: Option<RunTimeStats>,
}

impl Collector for BpfSelfMetrics {
    fn name(&self) -> &'static str {
        "bpf"
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        // Without run-time statistics the kernel counts neither run time nor
        // runs: no zeros that would read as "never ran".
        let mut run_time = self.stats.is_some().then(|| {
            (
                Family::counter(
                    "sonde_bpf_program_run_seconds_total",
                    "Time the kernel spent running the BPF program (counted while sonde runs).",
                ),
                Family::counter(
                    "sonde_bpf_program_runs_total",
                    "Times the kernel ran the BPF program (counted while sonde runs).",
                ),
            )
        });
        let mut lost = Family::counter(
            "sonde_bpf_events_lost_total",
            "Events the BPF program missed: the kernel skipped it because it was already running on that CPU.",
        );
        for program in &self.programs {
            let info = program_info(&program.fd)
                .with_context(|| format!("reading statistics of {}", program.name))?;
            let labels = [("program", program.name)];
            if let Some((run_seconds, runs)) = &mut run_time {
                run_seconds.push(&labels, info.run_time_ns as f64 / 1e9);
                runs.push(&labels, info.run_cnt as f64);
            }
            lost.push(&labels, info.recursion_misses as f64);
        }
        if let Some((run_seconds, runs)) = run_time {
            out.extend([run_seconds, runs]);
        }
        let mut full = Family::counter(
            "sonde_bpf_map_full_total",
            "Inserts a BPF program could not make because the map was full (the event is then not counted).",
        );
        for counter in &self.map_full {
            let slots = read_map(&counter.map, 1)?;
            for (slot, map) in counter.maps.iter().enumerate() {
                let key = u32::try_from(slot)?.to_ne_bytes();
                let total = slots
                    .iter()
                    .find(|entry| entry.key == key)
                    .map_or(0, |entry| entry.value[0]);
                full.push(&[("map", map)], total as f64);
            }
        }
        out.extend([lost, full]);
        Ok(())
    }
}

pub fn program_info(fd: &OwnedFd) -> anyhow::Result<libbpf_sys::bpf_prog_info> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = u32::try_from(std::mem::size_of::<libbpf_sys::bpf_prog_info>())?;
    // SAFETY: `info` is a bpf_prog_info of `len` bytes the kernel fills in.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(-rc).into());
    }
    Ok(info)
}

/// Slots of a `struct sonde_hist` (bpf/sonde.h): the last one is overflow.
pub const HIST_SLOTS: usize = 26;

/// Words of a `struct sonde_hist`: the slots, then the sum in nanoseconds.
pub const HIST_WORDS: usize = HIST_SLOTS + 1;

/// Adds one `struct sonde_hist` (summed over CPUs, [`HIST_WORDS`] words) to a
/// histogram family: slot i becomes the bucket `le` = 2^i µs, cumulative, the
/// overflow slot only counts in `+Inf`. Returns false (adding nothing) when
/// the histogram is empty, so idle series stay absent.
pub fn push_log2_histogram(family: &mut Family, labels: &[(&str, &str)], hist: &[u64]) -> bool {
    let (slots, sum_ns) = (&hist[..HIST_SLOTS], hist[HIST_SLOTS]);
    let count: u64 = slots.iter().sum();
    if count == 0 {
        return false;
    }
    let mut cumulative = 0;
    let buckets = slots[..HIST_SLOTS - 1].iter().enumerate().map(|(i, n)| {
        cumulative += n;
        ((1u64 << i) as f64 * 1e-6, cumulative)
    });
    family.push_histogram(labels, buckets, sum_ns as f64 / 1e9, count);
    true
}

/// A kernel `comm` (NUL-padded, at most 16 bytes) as a label value.
pub fn comm_label(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Where tracefs may be mounted, in order of preference.
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where tracefs is mounted, if it is.
pub fn tracefs_dir() -> Option<&'static Path> {
    TRACEFS_DIRS
        .into_iter()
        .map(Path::new)
        .find(|dir| dir.join("events").is_dir())
}

/// Makes sure tracefs is mounted, mounting it at /sys/kernel/tracing when it
/// is not (classic tracepoints are looked up there).
pub fn ensure_tracefs() -> anyhow::Result<&'static Path> {
    if let Some(dir) = tracefs_dir() {
        return Ok(dir);
    }
    // Mounted but closed to this user (tracefs is mode 0700): mounting
    // again would not help.
    for dir in TRACEFS_DIRS {
        let events = Path::new(dir).join("events");
        if let Err(err) = std::fs::metadata(&events) {
            if err.kind() == std::io::ErrorKind::PermissionDenied {
                bail!(
                    "{}: {err}; reading tracefs takes root or CAP_DAC_READ_SEARCH",
                    events.display()
                );
            }
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: constant NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({}); mount it or grant CAP_SYS_ADMIN",
            std::io::Error::last_os_error()
        );
    }
    tracefs_dir().ok_or_else(|| anyhow!("tracefs mounted at /sys/kernel/tracing has no events/"))
}

/// libbpf's warnings during the current load, so an error can say what the
/// kernel refused (libbpf otherwise prints them to stderr).
static LIBBPF_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Routes libbpf's messages into [`LIBBPF_LOG`] and the debug log.
pub fn capture_libbpf_log() {
    fn keep(_level: libbpf_rs::PrintLevel, message: String) {
        let message = message.trim_end().to_string();
        tracing::debug!("{message}");
        if let Ok(mut log) = LIBBPF_LOG.lock() {
            log.push(message);
        }
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Warn, keep)));
}

/// libbpf's messages since the last [`with_libbpf_log`] call began.
pub fn libbpf_log() -> Vec<String> {
    LIBBPF_LOG.lock().map(|log| log.clone()).unwrap_or_default()
}

/// Runs a libbpf call; on failure the error carries libbpf's last warning
/// (the line naming the program and the kernel's answer).
pub fn with_libbpf_log<T>(call: impl FnOnce() -> libbpf_rs::Result<T>) -> anyhow::Result<T> {
    if let Ok(mut log) = LIBBPF_LOG.lock() {
        log.clear();
    }
    call().map_err(|err| {
        let detail = LIBBPF_LOG.lock().ok().and_then(|log| {
            log.iter()
                .rev()
                .find(|line| line.starts_with("libbpf:") && !line.contains("-- END"))
                .cloned()
        });
        match detail {
            Some(line) => anyhow!("{err} ({line})"),
            None => anyhow!("{err}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_histogram_is_cumulative_with_overflow_only_in_inf() {
        let mut hist = vec![0u64; HIST_WORDS];
        hist[0] = 2; // <= 1 us
        hist[3] = 1; // <= 8 us
        hist[HIST_SLOTS - 1] = 4; // > 2^24 us
        hist[HIST_SLOTS] = 3_000_000_000;
        let mut family = Family::histogram("h", "help");
        assert!(push_log2_histogram(&mut family, &[("k", "v")], &hist));
        let value = |le: &str| {
            family
                .series
                .iter()
                .find(|s| s.labels.get("le") == Some(le))
                .map(|s| s.value)
        };
        assert_eq!(value("1e-6"), Some(2.0));
        assert_eq!(value("4e-6"), Some(2.0));
        assert_eq!(value("8e-6"), Some(3.0));
        assert_eq!(value("16.777216"), Some(3.0));
        assert_eq!(value("+Inf"), Some(7.0));
        let sum = family
            .series
            .iter()
            .find(|s| s.labels.metric_name() == "h_sum");
        assert_eq!(sum.map(|s| s.value), Some(3.0));
    }

    #[test]
    fn empty_histogram_adds_nothing() {
        let mut family = Family::histogram("h", "help");
        assert!(!push_log2_histogram(&mut family, &[], &[0; HIST_WORDS]));
        assert!(family.series.is_empty());
    }

    #[test]
    fn comm_stops_at_nul() {
        assert_eq!(comm_label(b"getppid-loop\0\0\0\0"), "getppid-loop");
        assert_eq!(comm_label(b"0123456789abcdef"), "0123456789abcdef");
    }
}
