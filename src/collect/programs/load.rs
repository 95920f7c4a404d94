//! Opening a config's object, checking its maps against the config,
//! loading it and attaching its programs one by one.
//!
//! A program the kernel refuses does not take the object down: the load is
//! retried with that program's autoload off, until the object loads with
//! every program the kernel takes. Each loaded program is then attached on
//! its own, and one that cannot attach is recorded, not fatal. What became
//! of every program is kept ([`Program`]) for the self-metrics, the log and
//! `sonde doctor`.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};
use libbpf_rs::{
    Link, MapCore, MapHandle, MapType, Object, ObjectBuilder, OpenObject, PerfBuffer,
    PerfBufferBuilder,
};

use super::config::{key_width, Checked, Label};
use super::{perf_event, xdp};
use crate::collect::bpf::{check_refused, libbpf_log, program_info, with_libbpf_log};

/// What became of one program of an object.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    /// The kernel's id and tag, once loaded.
    pub id: Option<u32>,
    pub tag: String,
    /// Ok once attached; else why it is not running.
    pub state: Result<(), String>,
}

/// A map a metric reads.
pub struct MetricMap {
    pub handle: MapHandle,
    pub percpu: bool,
    /// The key carries no labels but a u32 0 (a single-slot array).
    pub single_slot: bool,
}

/// Events a perf event array counter received since it was last taken:
/// a count per distinct event (cut to the bytes its labels describe).
#[derive(Default)]
pub struct PerfEvents {
    pub counts: HashMap<Vec<u8>, u64>,
    /// Events the kernel could not hand over (the buffer was full), and
    /// events beyond [`MAX_PERF_KEYS`] distinct ones.
    pub lost: u64,
}

/// Most distinct events kept between two rounds; more are counted as lost.
pub const MAX_PERF_KEYS: usize = 65_536;

/// Pages of each CPU's perf buffer: 256 KiB, some 8,000 small events per
/// CPU between two reads.
const PERF_PAGES: usize = 64;

/// A perf event array counter's buffer and what its callbacks gathered.
pub struct PerfSink {
    buffer: PerfBuffer<'static>,
    events: Arc<Mutex<PerfEvents>>,
}

impl PerfSink {
    /// Everything received since the last call.
    pub fn take(&self) -> anyhow::Result<PerfEvents> {
        self.buffer
            .consume()
            .map_err(|err| anyhow!("reading perf buffer: {err}"))?;
        let mut events = self.events.lock().map_err(|_| anyhow!("lock poisoned"))?;
        Ok(std::mem::take(&mut *events))
    }
}

/// A loaded object: its programs' links and the maps the metrics read.
pub struct Loaded {
    pub programs: Vec<Program>,
    pub maps: Vec<(String, MetricMap)>,
    /// Perf event array counters, by metric name.
    pub perf: Vec<(String, PerfSink)>,
    pub cgroup_map: Option<super::cgroups::CgroupIdMap>,
    _links: Vec<Link>,
    /// Holds the programs and maps; dropping it detaches everything. Last,
    /// so the perf buffers go before the maps they read.
    _object: Object,
}

/// Most times an object is loaded again with one more program left out:
/// bounds the work on an object of many refused programs.
const MAX_LOAD_ATTEMPTS: usize = 64;

/// Opens `checked`'s object with its `kaddrs` filled in.
fn open(checked: &Checked) -> anyhow::Result<OpenObject> {
    let mut object = ObjectBuilder::default()
        .open_file(&checked.object)
        .map_err(|err| anyhow!("{err}"))
        .with_context(|| format!("opening {}", checked.object.display()))?;
    set_kaddrs(&mut object, &checked.config.kaddrs).context("kaddrs")?;
    Ok(object)
}

/// Writes the address of each symbol `kaddrs` names into the object's
/// `const volatile u64 kaddr_<symbol>` in .rodata, as ebpf_exporter does,
/// before the object loads.
fn set_kaddrs(object: &mut OpenObject, kaddrs: &[String]) -> anyhow::Result<()> {
    use libbpf_rs::btf::types::{DataSec, Var};
    use libbpf_rs::AsRawLibbpf;
    if kaddrs.is_empty() {
        return Ok(());
    }
    let mut slots = Vec::new();
    {
        // SAFETY: the object outlives this block, and its BTF is only read.
        let raw = unsafe { object.as_libbpf_object().as_ref() };
        let btf = libbpf_rs::btf::Btf::from_bpf_object(raw)
            .map_err(|err| anyhow!("reading the object's BTF: {err}"))?
            .ok_or_else(|| anyhow!("the object has no BTF: compile it with -g"))?;
        let section: Option<DataSec<'_>> = btf.type_by_name(".rodata");
        for info in section.iter().flat_map(|section| section.iter()) {
            let var: Option<Var<'_>> = btf.type_by_id(info.ty);
            let name = var
                .and_then(|v| v.name())
                .map(|n| n.to_string_lossy().into_owned());
            if let Some(symbol) = name.as_deref().and_then(|n| n.strip_prefix("kaddr_")) {
                slots.push((symbol.to_string(), info.offset as usize, info.size));
            }
        }
    }
    let mut rodata = object
        .maps_mut()
        .find(|map| map.name().to_string_lossy().ends_with(".rodata"));
    let values = rodata.as_mut().and_then(|map| map.initial_value_mut());
    let Some(values) = values else {
        bail!("the object has no .rodata: expected a const volatile u64 kaddr_<symbol> per symbol");
    };
    for symbol in kaddrs {
        let (_, offset, size) = slots.iter().find(|(s, ..)| s == symbol).ok_or_else(|| {
            anyhow!("{symbol}: the object has no const volatile u64 kaddr_{symbol} to receive its address")
        })?;
        let addr = super::decode::address_of(symbol).ok_or_else(|| {
            anyhow!("{symbol}: not in /proc/kallsyms (or its addresses are hidden: run as root)")
        })?;
        let slot = values
            .get_mut(*offset..offset + size)
            .filter(|slot| slot.len() == 8)
            .ok_or_else(|| anyhow!("kaddr_{symbol}: expected a u64"))?;
        slot.copy_from_slice(&addr.to_ne_bytes());
    }
    Ok(())
}

/// The maps the metrics read: each counter (but perf event array ones) and
/// histogram reads the map of its name.
fn metric_labels(checked: &Checked) -> Vec<(&str, &[Label])> {
    let metrics = &checked.config.metrics;
    metrics
        .counters
        .iter()
        .filter(|c| !c.perf_event_array)
        .map(|c| (c.name.as_str(), c.labels.as_slice()))
        .chain(
            metrics
                .histograms
                .iter()
                .map(|h| (h.name.as_str(), h.labels.as_slice())),
        )
        .collect()
}

/// The key size the labels describe for a map of `kind`, as ebpf_exporter
/// reads it: a per-CPU map's `cpu` label (last) is the CPU, not key bytes;
/// a key of no labels is a u32 0.
fn expected_key(labels: &[Label], percpu: bool) -> usize {
    let in_key = match labels.split_last() {
        Some((last, rest)) if percpu && last.name == "cpu" => rest,
        _ => labels,
    };
    match key_width(in_key) {
        0 => 4,
        width => width,
    }
}

/// Checks the config against its object without loading it: every map a
/// metric reads exists with the key the labels describe and u64 values.
/// What `sonde programs check` runs.
pub fn check_object(checked: &Checked) -> anyhow::Result<()> {
    let object = open(checked)?;
    for counter in checked
        .config
        .metrics
        .counters
        .iter()
        .filter(|c| c.perf_event_array)
    {
        let name = &counter.name;
        let map = object.maps().find(|map| map.name() == name.as_str());
        match map.map(|map| map.map_type()) {
            Some(MapType::PerfEventArray) => {}
            Some(other) => bail!(
                "metric {name}: perf_event_array is set but map {name} is a {other:?}: expected a BPF_MAP_TYPE_PERF_EVENT_ARRAY"
            ),
            None => bail!(
                "metric {name}: {} has no perf event array named {name}",
                checked.object.display()
            ),
        }
    }
    if let Some(config) = &checked.config.cgroup_id_map {
        let map = object
            .maps()
            .find(|map| map.name() == config.name.as_str())
            .ok_or_else(|| anyhow!("cgroup_id_map: the object has no map {}", config.name))?;
        let expected = if config.kind == "cgrp_storage" { 4 } else { 8 };
        if map.key_size() as usize != expected || map.value_size() != 8 {
            bail!(
                "cgroup_id_map {}: key of {} and value of {} bytes: expected a {expected}-byte key and a u64 value",
                config.name,
                map.key_size(),
                map.value_size()
            );
        }
    }
    for (metric, labels) in metric_labels(checked) {
        let map = object
            .maps()
            .find(|map| map.name() == metric)
            .ok_or_else(|| {
                let names: Vec<String> = object
                    .maps()
                    .map(|m| m.name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect();
                anyhow!(
                    "metric {metric}: {} has no map named {metric} (its maps: {}); a metric reads the map of its name",
                    checked.object.display(),
                    names.join(", ")
                )
            })?;
        let percpu = map.map_type().is_percpu();
        let (key, expected) = (map.key_size() as usize, expected_key(labels, percpu));
        if key != expected {
            let sizes: Vec<String> = labels
                .iter()
                .map(|l| format!("{} {}+{}", l.name, l.size, l.padding))
                .collect();
            bail!(
                "metric {metric}: labels describe a {expected}-byte key ({}) but map {metric}'s key is {key} bytes: make size + padding of the labels add up to the key's struct",
                sizes.join(", ")
            );
        }
        if map.value_size() < 8 {
            bail!(
                "metric {metric}: map {metric}'s value is {} bytes: expected a u64 (8 bytes)",
                map.value_size()
            );
        }
    }
    Ok(())
}

/// Loads `checked`'s object, leaving out programs the kernel refuses, and
/// attaches every program that loaded.
pub fn load(checked: &Checked) -> anyhow::Result<Loaded> {
    check_refused("bpf")?;
    check_object(checked)?;
    let mut refused: Vec<Program> = Vec::new();
    // Programs in xdp/IFNAME sections: their refusals get a hint.
    let mut xdp_programs = Vec::new();
    let object = loop {
        let mut open = open(checked)?;
        for mut program in open.progs_mut() {
            let name = program.name().to_string_lossy().into_owned();
            if refused.iter().any(|p| p.name == name) {
                program.set_autoload(false);
            }
            let section = program.section().to_string_lossy().into_owned();
            if section.starts_with(perf_event::PREFIX) {
                program.set_prog_type(libbpf_rs::ProgramType::PerfEvent);
            } else if xdp::interface(&section).is_some() {
                program.set_prog_type(libbpf_rs::ProgramType::Xdp);
                program.set_attach_type(libbpf_rs::ProgramAttachType::Xdp);
                xdp_programs.push(name);
            }
        }
        let error = match with_libbpf_log(|| open.load()) {
            Ok(object) => break object,
            Err(err) => err,
        };
        let Some((name, mut why)) = refused_program(&libbpf_log()) else {
            bail!("loading {}: {error:#}", checked.object.display());
        };
        if xdp_programs.contains(&name) {
            why.push_str(xdp::LOAD_HINT);
        }
        if refused.iter().any(|p| p.name == name) || refused.len() >= MAX_LOAD_ATTEMPTS {
            bail!("loading {}: {error:#}", checked.object.display());
        }
        tracing::warn!(
            "config {}: program {name} refused by this kernel, left out: {why}",
            checked.name
        );
        refused.push(Program {
            name,
            id: None,
            tag: String::new(),
            state: Err(format!("refused at load: {why}")),
        });
    };
    let mut programs = refused;
    let mut links = Vec::new();
    for program in object.progs_mut() {
        let name = program.name().to_string_lossy().into_owned();
        if programs.iter().any(|p| p.name == name) {
            continue;
        }
        let fd = program.as_fd().try_clone_to_owned()?;
        let info = program_info(&fd).with_context(|| format!("reading program {name}"))?;
        let tag: String = info.tag.iter().map(|b| format!("{b:02x}")).collect();
        let section = program.section().to_string_lossy().into_owned();
        let attached = match (
            section.strip_prefix(perf_event::PREFIX),
            xdp::interface(&section),
        ) {
            (Some(spec), _) => {
                perf_event::parse(spec).and_then(|spec| perf_event::attach(&program, &spec))
            }
            (None, Some(interface)) => xdp::attach(&program, interface).map(|link| vec![link]),
            (None, None) => with_libbpf_log(|| program.attach()).map(|link| vec![link]),
        };
        let state = match attached {
            Ok(attached) => {
                links.extend(attached);
                Ok(())
            }
            Err(err) => {
                tracing::warn!(
                    "config {}: program {name} ({section}) cannot attach, left out: {err:#}",
                    checked.name
                );
                Err(format!("cannot attach ({section}): {err:#}"))
            }
        };
        programs.push(Program {
            name,
            id: Some(info.id),
            tag,
            state,
        });
    }
    if links.is_empty() {
        bail!(
            "no program of {} runs: {}",
            checked.object.display(),
            describe(&programs)
        );
    }
    let maps = metric_labels(checked)
        .into_iter()
        .map(|(metric, labels)| {
            let map = object
                .maps()
                .find(|map| map.name() == metric)
                .ok_or_else(|| anyhow!("map {metric} vanished after load"))?;
            let percpu = map.map_type().is_percpu();
            let in_key = match labels.last() {
                Some(last) if percpu && last.name == "cpu" => labels.len() - 1,
                _ => labels.len(),
            };
            let single_slot = in_key == 0;
            let handle = MapHandle::try_from(&map)?;
            Ok((
                metric.to_string(),
                MetricMap {
                    handle,
                    percpu,
                    single_slot,
                },
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let perf = checked
        .config
        .metrics
        .counters
        .iter()
        .filter(|c| c.perf_event_array)
        .map(|counter| {
            let map = object
                .maps()
                .find(|map| map.name() == counter.name.as_str())
                .ok_or_else(|| anyhow!("map {} vanished after load", counter.name))?;
            Ok((
                counter.name.clone(),
                perf_sink(&map, key_width(&counter.labels))?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let cgroup_map = match &checked.config.cgroup_id_map {
        Some(config) => {
            let map = object
                .maps()
                .find(|map| map.name() == config.name.as_str())
                .ok_or_else(|| anyhow!("map {} vanished after load", config.name))?;
            let mut cgroups = super::cgroups::CgroupIdMap::new(&map, config)?;
            cgroups.sync()?;
            Some(cgroups)
        }
        None => None,
    };
    Ok(Loaded {
        programs,
        maps,
        perf,
        cgroup_map,
        _links: links,
        _object: object,
    })
}

/// A perf buffer on `map` whose events, cut to `width` bytes (what the
/// labels describe; the kernel pads samples), are counted as they arrive.
fn perf_sink(map: &libbpf_rs::Map<'_>, width: usize) -> anyhow::Result<PerfSink> {
    let events = Arc::new(Mutex::new(PerfEvents::default()));
    let (samples, losses) = (events.clone(), events.clone());
    let buffer = PerfBufferBuilder::new(map)
        .pages(PERF_PAGES)
        .sample_cb(move |_cpu, data: &[u8]| {
            let Ok(mut events) = samples.lock() else {
                return;
            };
            let key = &data[..width.min(data.len())];
            if let Some(count) = events.counts.get_mut(key) {
                *count += 1;
            } else if events.counts.len() < MAX_PERF_KEYS {
                events.counts.insert(key.to_vec(), 1);
            } else {
                events.lost += 1;
            }
        })
        .lost_cb(move |_cpu, lost| {
            if let Ok(mut events) = losses.lock() {
                events.lost += lost;
            }
        })
        .build()
        .map_err(|err| anyhow!("opening perf buffer of {:?}: {err}", map.name()))?;
    Ok(PerfSink { buffer, events })
}

/// The program libbpf's log says failed to load, and the kernel's reason
/// (the verifier's last line, or libbpf's).
fn refused_program(log: &[String]) -> Option<(String, String)> {
    let failed = log.iter().position(|line| {
        line.contains("prog '") && (line.contains("failed") || line.contains("fail"))
    })?;
    let line = &log[failed];
    let start = line.find("prog '")? + "prog '".len();
    let name = line[start..].split('\'').next()?.to_string();
    let detail = log[failed..]
        .iter()
        .take_while(|l| !l.contains("-- END") && !l.contains("failed to load object"))
        .filter(|l| !l.contains("-- BEGIN") && !l.trim().is_empty())
        .last()
        .unwrap_or(line)
        .trim()
        .to_string();
    Some((name, detail))
}

/// One line on every program: which run, which do not and why.
pub fn describe(programs: &[Program]) -> String {
    programs
        .iter()
        .map(|p| match &p.state {
            Ok(()) => format!("{} attached", p.name),
            Err(why) => format!("{} off: {why}", p.name),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_refused_program_in_libbpf_log() {
        let log: Vec<String> = [
            "libbpf: prog 'on_kprobe': BPF program load failed: Invalid argument",
            "libbpf: prog 'on_kprobe': -- BEGIN PROG LOAD LOG --",
            "0: R1=ctx() R10=fp0",
            "attach to unsupported member of a struct",
            "libbpf: prog 'on_kprobe': -- END PROG LOAD LOG --",
            "libbpf: prog 'on_kprobe': failed to load: -22",
            "libbpf: failed to load object 'mixed'",
        ]
        .map(String::from)
        .to_vec();
        let (name, why) = refused_program(&log).unwrap();
        assert_eq!(name, "on_kprobe");
        assert_eq!(why, "attach to unsupported member of a struct");
        assert!(refused_program(&log[6..]).is_none());
        let prepare = [
            "libbpf: prog 'on_fentry': failed to find kernel BTF type ID of 'x': -ESRCH",
            "libbpf: failed to load object 'mixed'",
        ]
        .map(String::from);
        let (name, why) = refused_program(&prepare).unwrap();
        assert_eq!(name, "on_fentry");
        assert!(why.contains("BTF type ID"), "{why}");
    }
}
