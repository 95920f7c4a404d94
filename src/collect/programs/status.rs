//! What became of each config, for the dashboard's Programs view: its
//! programs and whether each is attached (or why not), the metrics it
//! exports, or why the config is off. The collector publishes it when it
//! loads and on every reload ([`publish`]); the view reads the copy
//! ([`snapshot`]). The figures themselves (rates, decoder errors) come from
//! the store, like every view's.

use std::sync::{Mutex, OnceLock};

use super::load::Program;
use super::{ConfigState, Running, PREFIX};

/// One metric of a config, as the view charts it.
#[derive(Clone, Debug)]
pub struct Metric {
    /// The exported name (`ebpf_exporter_<name>`).
    pub name: String,
    pub help: String,
    pub histogram: bool,
    /// Label names in key order (a histogram's last, the bucket, left out).
    pub labels: Vec<String>,
}

/// One config: loaded with its programs and metrics, or off and why.
#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub state: Result<(), String>,
    pub programs: Vec<Program>,
    pub metrics: Vec<Metric>,
}

fn shared() -> &'static Mutex<Vec<Config>> {
    static CONFIGS: OnceLock<Mutex<Vec<Config>>> = OnceLock::new();
    CONFIGS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Every config as of the last load or reload, in the order they loaded.
pub fn snapshot() -> Vec<Config> {
    shared().lock().map(|c| c.clone()).unwrap_or_default()
}

/// Records what a load or reload made of every config.
pub(super) fn publish(states: &[ConfigState], running: &[Running]) {
    let configs = states
        .iter()
        .map(|(name, state)| {
            let loaded = running.iter().find(|r| &r.checked.name == name);
            Config {
                name: name.clone(),
                state: state.as_ref().map(|_| ()).map_err(Clone::clone),
                programs: loaded.map_or_else(Vec::new, |r| r.loaded.programs.clone()),
                metrics: loaded.map_or_else(Vec::new, metrics),
            }
        })
        .collect();
    if let Ok(mut shared) = shared().lock() {
        *shared = configs;
    }
}

fn metrics(running: &Running) -> Vec<Metric> {
    let names = |labels: &[super::config::Label]| -> Vec<String> {
        labels.iter().map(|l| l.name.clone()).collect()
    };
    let metrics = &running.checked.config.metrics;
    let counters = metrics.counters.iter().map(|c| Metric {
        name: format!("{PREFIX}{}", c.name),
        help: c.help.clone(),
        histogram: false,
        labels: names(&c.labels),
    });
    let histograms = metrics.histograms.iter().map(|h| Metric {
        name: format!("{PREFIX}{}", h.name),
        help: h.help.clone(),
        histogram: true,
        labels: names(&h.labels[..h.labels.len().saturating_sub(1)]),
    });
    counters.chain(histograms).collect()
}
