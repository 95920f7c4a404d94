//! Custom eBPF programs in Cloudflare ebpf_exporter's (v2) format: a
//! directory of `NAME.yaml` + `NAME.bpf.o` pairs (`[programs] dir`), each
//! object loaded as it is and its maps read into the metrics its YAML names
//! (`ebpf_exporter_<name>`), stored and queried like every other.
//!
//! - [`config`] owns the YAML schema and the checks made before an object
//!   is opened; [`decode`] the decoders that turn key fields into labels.
//! - [`load`] opens an object (filling in `kaddrs`), checks its maps against
//!   the config, loads it leaving out programs the kernel refuses, attaches
//!   each program on its own ([`perf_event`] and [`xdp`] for the sections
//!   libbpf does not know) and opens perf event array counters' buffers.
//! - [`read`] reads the maps into families each round; [`cgroups`] keeps a
//!   `cgroup_id_map` filled.
//! - This module runs the configs: loading them all, reloading on SIGHUP and
//!   `POST /-/reload` ([`Reload`]: unchanged configs keep running), and the
//!   self-metrics; [`status`] keeps what became of each config for the
//!   dashboard.
//!
//! A config that cannot load (bad YAML, a key size the labels do not add up
//! to, no program the kernel takes, a metric name another config has) is
//! logged, listed by `sonde doctor` and left out; the others and sonde run
//! on. Besides the configs' metrics the collector exports ebpf_exporter's
//! own: `ebpf_exporter_enabled_configs`, `ebpf_exporter_ebpf_program_info`,
//! `ebpf_exporter_ebpf_program_attached` and
//! `ebpf_exporter_decoder_errors_total` (by config and decoder).
//!
//! # Forcing a failure
//! tests/programs.rs compiles tests/programs/*.bpf.c at test time and runs
//! sonde on them. A program the kernel refuses at load is an fentry on a
//! kernel without fentry (`mixed.bpf.c`); one that loads but cannot attach
//! is a kprobe where kprobes are off, or a tracepoint that does not exist;
//! `SONDE_BPF_REFUSE=bpf` refuses every object. A bad config is made by
//! editing a good YAML (tests/programs.rs shows each refusal).

pub mod cgroups;
pub mod config;
pub mod decode;
pub mod load;
pub mod perf_event;
pub mod read;
pub mod status;
pub mod xdp;

use std::collections::BTreeMap;

use anyhow::Context;

use crate::collect::Collector;
use crate::config::ProgramsConfig;
use crate::model::Family;
use config::Checked;
use load::Loaded;
use read::{Errors, MetricState};

/// Prefix of every metric of a config, as ebpf_exporter names them.
pub const PREFIX: &str = "ebpf_exporter_";

/// One config that loaded.
struct Running {
    /// What it was loaded from ([`fingerprint`]): a reload keeps it running,
    /// its counters unbroken, while this stays the same.
    fingerprint: u64,
    checked: Checked,
    loaded: Loaded,
    states: BTreeMap<String, MetricState>,
    /// Decoder errors since the config loaded, by decoder.
    errors: Errors,
    /// Perf event array counters: counts by label set since their last
    /// flush, events lost since the config loaded, when they were flushed.
    perf: BTreeMap<String, PerfTotals>,
}

#[derive(Default)]
struct PerfTotals {
    counts: BTreeMap<Vec<String>, u64>,
    lost: u64,
    flushed: Option<std::time::Instant>,
}

/// What became of one config: loaded (with one line on its programs), or
/// why not.
pub type ConfigState = (String, Result<String, String>);

/// Every loaded config, read each round.
pub struct Programs {
    running: Vec<Running>,
    max_series: usize,
    reload: Reload,
}

/// A reload asked for by SIGHUP or `POST /-/reload` (through the alerting
/// service, which reads the config file): the new `[programs]`, taken by
/// the collector at the start of its next round.
#[derive(Clone, Default)]
pub struct Reload(std::sync::Arc<std::sync::Mutex<Option<ProgramsConfig>>>);

impl Reload {
    pub fn request(&self, config: ProgramsConfig) {
        if let Ok(mut pending) = self.0.lock() {
            *pending = Some(config);
        }
    }

    fn take(&self) -> Option<ProgramsConfig> {
        self.0.lock().ok().and_then(|mut pending| pending.take())
    }
}

/// What a config is loaded from: its YAML's and its object's bytes and
/// where they are. None when either cannot be read (loading then says why).
fn fingerprint(dir: &std::path::Path, name: &str) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in [format!("{name}.yaml"), format!("{name}.bpf.o")] {
        let path = dir.join(file);
        path.hash(&mut hasher);
        std::fs::read(&path).ok()?.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Loads every config of `[programs]`; one that fails is recorded with its
/// reason and the others still load. `kept` are configs already running:
/// one whose files did not change stays as it is.
fn load_configs(
    config: &ProgramsConfig,
    mut kept: Vec<Running>,
) -> (Vec<Running>, Vec<ConfigState>) {
    crate::collect::bpf::capture_libbpf_log();
    let mut running = Vec::new();
    let mut states = Vec::new();
    let names = match config::names_in(&config.dir, &config.names) {
        Ok(names) => names,
        Err(err) if config.names.is_empty() && !config.dir.exists() => {
            tracing::debug!("{err:#}");
            Vec::new()
        }
        Err(err) => {
            states.push(("[programs]".to_string(), Err(format!("{err:#}"))));
            Vec::new()
        }
    };
    for name in names {
        let fingerprint = fingerprint(&config.dir, &name);
        if let Some(at) = kept
            .iter()
            .position(|r| Some(r.fingerprint) == fingerprint && r.checked.name == name)
        {
            let same = kept.swap_remove(at);
            states.push((
                name,
                Ok(format!(
                    "unchanged ({})",
                    load::describe(&same.loaded.programs)
                )),
            ));
            running.push(same);
            continue;
        }
        let loaded = config::read(&config.dir, &name).and_then(|checked| {
            let loaded =
                load::load(&checked).map_err(|err| anyhow::anyhow!("config {name}: {err:#}"))?;
            // Checked once the config is known sound, so its own errors come
            // first; the object loaded for nothing is dropped.
            if let Some((metric, owner)) = taken(&running, &checked) {
                anyhow::bail!(
                    "config {name}: metric {metric} is already config {owner}'s: every metric name must be unique across configs"
                );
            }
            Ok((checked, loaded))
        });
        match loaded {
            Ok((checked, loaded)) => {
                states.push((name, Ok(load::describe(&loaded.programs))));
                running.push(Running {
                    fingerprint: fingerprint.unwrap_or_default(),
                    checked,
                    loaded,
                    states: BTreeMap::new(),
                    errors: Errors::new(),
                    perf: BTreeMap::new(),
                });
            }
            Err(err) => {
                let mut reason = format!("{err:#}");
                if let Some(at) = kept.iter().position(|r| r.checked.name == name) {
                    reason.push_str("; the version loaded before keeps running");
                    running.push(kept.swap_remove(at));
                }
                states.push((name, Err(reason)));
            }
        }
    }
    // What is left of `kept` is removed or replaced: dropping it detaches
    // its programs.
    (running, states)
}

/// A metric of `checked` that a running config already exports, and that
/// config's name: the first loaded keeps the name.
fn taken<'r>(running: &'r [Running], checked: &Checked) -> Option<(String, &'r str)> {
    checked.decoders.keys().find_map(|metric| {
        running
            .iter()
            .find(|r| r.checked.decoders.contains_key(metric))
            .map(|r| (metric.clone(), r.checked.name.as_str()))
    })
}

/// Loads every config of `[programs]` (see [`load_configs`]).
pub fn load_all(config: &ProgramsConfig, max_series: usize) -> (Programs, Vec<ConfigState>) {
    let (running, states) = load_configs(config, Vec::new());
    let programs = Programs {
        running,
        max_series,
        reload: Reload::default(),
    };
    (programs, states)
}

fn log_states(states: &[ConfigState]) {
    for (name, state) in states {
        match state {
            Ok(programs) => tracing::info!("programs config {name}: on ({programs})"),
            Err(reason) => tracing::warn!("programs config {name}: off: {reason}"),
        }
    }
}

/// `sonde programs check`: every config of `dir` (or `names`) read and
/// checked against its object, without loading anything into the kernel.
pub fn check_dir(dir: &std::path::Path, names: &[String]) -> Vec<(String, Result<(), String>)> {
    let names = match config::names_in(dir, names) {
        Ok(names) => names,
        Err(err) => return vec![(dir.display().to_string(), Err(format!("{err:#}")))],
    };
    names
        .into_iter()
        .map(|name| {
            let checked = config::read(dir, &name).and_then(|checked| {
                load::check_object(&checked).with_context(|| format!("config {name}"))
            });
            let result = checked.map_err(|err| format!("{err:#}"));
            (name, result)
        })
        .collect()
}

/// Whether any custom program is configured (its YAML and object found):
/// then a reload may load programs again, so the capabilities loading needs
/// are kept ([`crate::privilege::Keep::loads_later`]).
pub fn configured(config: &ProgramsConfig) -> bool {
    config::names_in(&config.dir, &config.names).is_ok_and(|names| !names.is_empty())
}

/// The collector of `[programs]`, each config's state logged; `reload`
/// brings it a new `[programs]` (SIGHUP, `POST /-/reload`).
pub fn collector(config: &ProgramsConfig, max_series: usize, reload: Reload) -> Box<dyn Collector> {
    let (mut programs, states) = load_all(config, max_series);
    log_states(&states);
    status::publish(&states, &programs.running);
    programs.reload = reload;
    Box::new(programs)
}

impl Running {
    fn collect(&mut self, max_series: usize, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let metrics = &self.checked.config.metrics;
        for (name, map) in &self.loaded.maps {
            let state = self.states.entry(name.clone()).or_default();
            let decoders = &self.checked.decoders[name];
            let counter = metrics.counters.iter().find(|c| &c.name == name);
            let histogram = metrics.histograms.iter().find(|h| &h.name == name);
            let labels = match (counter, histogram) {
                (Some(c), _) => &c.labels,
                (_, Some(h)) => &h.labels,
                _ => continue,
            };
            let sets = read::values(map, labels, decoders, state, &mut self.errors)?;
            let full_name = format!("{PREFIX}{name}");
            if let Some(counter) = counter {
                let sets = read::fold(sets, state, max_series, |t, v| *t = t.wrapping_add(v));
                let mut family = Family::counter(&full_name, &counter.help);
                read::push_counter(&mut family, labels, sets);
                out.push(family);
            } else if let Some(histogram) = histogram {
                let grouped = read::buckets(histogram, sets)?;
                let grouped = read::fold(grouped, state, max_series, |total, buckets| {
                    for (bucket, count) in buckets {
                        *total.entry(bucket).or_default() += count;
                    }
                });
                let mut family = Family::histogram(&full_name, &histogram.help);
                for (values, counts) in &grouped {
                    read::push_histogram(&mut family, histogram, values, counts);
                }
                out.push(family);
            }
        }
        for (name, sink) in &self.loaded.perf {
            let Some(counter) = metrics.counters.iter().find(|c| &c.name == name) else {
                continue;
            };
            let events = sink.take()?;
            let state = self.states.entry(name.clone()).or_default();
            let totals = self.perf.entry(name.clone()).or_default();
            let now = std::time::Instant::now();
            let interval = counter.flush_interval()?;
            if totals
                .flushed
                .is_none_or(|at| now.duration_since(at) >= interval)
            {
                // Counts start again, as ebpf_exporter's do: a counter reset.
                totals.counts.clear();
                totals.flushed = Some(now);
            }
            totals.lost += events.lost;
            let decoders = &self.checked.decoders[name];
            for (key, count) in events.counts {
                read::add(
                    &mut totals.counts,
                    key,
                    count,
                    &counter.labels,
                    decoders,
                    state,
                    &mut self.errors,
                );
            }
            let sets = read::fold(totals.counts.clone(), state, max_series, |t, v| {
                *t = t.wrapping_add(v)
            });
            let mut family = Family::counter(format!("{PREFIX}{name}"), &counter.help);
            read::push_counter(&mut family, &counter.labels, sets);
            let mut lost = Family::counter(
                format!("dropped_perf_event_map_events_{name}"),
                "Dropped perf map events",
            );
            lost.push(&[], totals.lost as f64);
            out.extend([family, lost]);
        }
        Ok(())
    }
}

impl Collector for Programs {
    fn name(&self) -> &'static str {
        "programs"
    }

    fn begin_round(&mut self) -> anyhow::Result<()> {
        if let Some(config) = self.reload.take() {
            let kept = std::mem::take(&mut self.running);
            let (running, states) = load_configs(&config, kept);
            tracing::info!("programs: reloaded {}", config.dir.display());
            log_states(&states);
            status::publish(&states, &running);
            self.running = running;
        }
        for running in &mut self.running {
            if let Some(cgroups) = &mut running.loaded.cgroup_map {
                cgroups
                    .sync()
                    .with_context(|| format!("config {}: cgroup_id_map", running.checked.name))?;
            }
        }
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for running in &mut self.running {
            if let Err(err) = running.collect(self.max_series, out) {
                failed.push(format!("config {}: {err:#}", running.checked.name));
            }
        }
        out.extend(self.self_metrics());
        if !failed.is_empty() {
            anyhow::bail!("{}", failed.join("; "));
        }
        Ok(())
    }
}

impl Programs {
    /// ebpf_exporter's own metrics, with its names and labels.
    fn self_metrics(&self) -> Vec<Family> {
        let mut enabled = Family::gauge(
            "ebpf_exporter_enabled_configs",
            "The set of enabled configs",
        );
        let mut info = Family::gauge(
            "ebpf_exporter_ebpf_program_info",
            "Info about ebpf programs",
        );
        let mut attached = Family::gauge(
            "ebpf_exporter_ebpf_program_attached",
            "Whether a program is attached",
        );
        let mut errors = Family::counter(
            "ebpf_exporter_decoder_errors_total",
            "How many times has decoders encountered errors",
        );
        for running in &self.running {
            let config = running.checked.name.as_str();
            enabled.push(&[("name", config)], 1.0);
            for program in &running.loaded.programs {
                // A program refused at load has no kernel id: it is named by
                // config and program instead, so it still shows as 0.
                let id = match program.id {
                    Some(id) => id.to_string(),
                    None => format!("{config}/{}", program.name),
                };
                info.push(
                    &[
                        ("config", config),
                        ("program", &program.name),
                        ("tag", &program.tag),
                        ("id", &id),
                    ],
                    1.0,
                );
                attached.push(&[("id", &id)], f64::from(u8::from(program.state.is_ok())));
            }
            for (decoder, count) in &running.errors {
                errors.push(&[("config", config), ("decoder", decoder)], *count as f64);
            }
        }
        vec![enabled, info, attached, errors]
    }
}
