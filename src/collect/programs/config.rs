//! The YAML a program's `NAME.yaml` holds, in ebpf_exporter's v2 schema, and
//! the checks that can be made before its object is opened.
//!
//! Every key ebpf_exporter knows for metrics is accepted; a key it does not
//! know is refused, so a typo is an error naming the file, the key and what
//! was expected, never a metric that silently lacks a label. What sonde
//! cannot do yet (`tracing` spans) is refused the same way. Checks that need
//! the object (label sizes against the map's key size) are in
//! [`super::load`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::decode::Decoder;

/// One `NAME.yaml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    #[serde(default)]
    pub metrics: Metrics,
    /// Kernel symbols whose addresses the program reads from `kaddr_<symbol>`
    /// globals.
    #[serde(default)]
    pub kaddrs: Vec<String>,
    #[serde(default)]
    pub cgroup_id_map: Option<CgroupIdMap>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    #[serde(default)]
    pub counters: Vec<Counter>,
    #[serde(default)]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counter {
    pub name: String,
    pub help: String,
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Counted from events a program sends through a perf event array
    /// instead of read from a map of the same name.
    #[serde(default)]
    pub perf_event_array: bool,
    /// How often a perf event array counter's counts start again from 0
    /// (a duration such as "1m"; default an hour), as ebpf_exporter does.
    #[serde(default)]
    pub flush_interval: Option<String>,
}

/// A perf event array counter's flush interval when none is set.
pub const DEFAULT_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

impl Counter {
    pub fn flush_interval(&self) -> anyhow::Result<std::time::Duration> {
        match &self.flush_interval {
            None => Ok(DEFAULT_FLUSH_INTERVAL),
            Some(text) => match humantime::parse_duration(text) {
                Ok(interval) if !interval.is_zero() => Ok(interval),
                _ => bail!("flush_interval {text:?}: expected a duration such as \"1m\" or \"1h\""),
            },
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    pub name: String,
    pub help: String,
    #[serde(default)]
    pub labels: Vec<Label>,
    pub bucket_type: BucketType,
    #[serde(default)]
    pub bucket_min: i64,
    #[serde(default)]
    pub bucket_max: i64,
    /// Scales bucket bounds and the sum (e.g. 1e-6 for microseconds to
    /// seconds); 0 or absent means 1, as ebpf_exporter has it.
    #[serde(default)]
    pub bucket_multiplier: f64,
    /// The bucket keys of a `fixed` histogram, ascending.
    #[serde(default)]
    pub bucket_keys: Vec<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketType {
    /// Bucket key k holds values up to 2^k.
    Exp2,
    /// Bucket key 0 holds zeros, k > 0 values up to 2^(k-1).
    Exp2zero,
    /// Bucket key k holds values up to k.
    Linear,
    /// Bucket keys are the values listed in `bucket_keys`.
    Fixed,
}

/// One field of a map's key, decoded into a label value.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    pub name: String,
    pub size: usize,
    /// Bytes after the field that belong to no label (struct alignment).
    #[serde(default)]
    pub padding: usize,
    pub decoders: Vec<DecoderConfig>,
}

/// One step of a label's decoder chain, as written in the YAML.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    pub name: String,
    #[serde(default)]
    pub static_map: Option<serde_yaml::Mapping>,
    #[serde(default)]
    pub regexps: Option<Vec<String>>,
    #[serde(default)]
    pub allow_unknown: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupIdMap {
    pub name: String,
    /// `hash` (the default) or `cgrp_storage`.
    #[serde(rename = "type", default = "hash")]
    pub kind: String,
    pub regexps: Vec<String>,
}

fn hash() -> String {
    "hash".to_string()
}

impl Label {
    /// Bytes of the key this label takes, padding included.
    pub fn width(&self) -> usize {
        self.size + self.padding
    }
}

/// The bytes of key the labels of a metric describe.
pub fn key_width(labels: &[Label]) -> usize {
    labels.iter().map(Label::width).sum()
}

/// A config read and checked: its name (the file's stem), the object beside
/// it, and each metric's labels with their decoders built.
#[derive(Debug)]
pub struct Checked {
    pub name: String,
    pub yaml: PathBuf,
    pub object: PathBuf,
    pub config: ProgramConfig,
    /// Per metric, in the order counters then histograms: its decoder chains,
    /// one per label.
    pub decoders: BTreeMap<String, Vec<Vec<Decoder>>>,
}

/// The config names `dir` holds: every `NAME.yaml` with a `NAME.bpf.o`
/// beside it, sorted, or `names` when given.
pub fn names_in(dir: &Path, names: &[String]) -> anyhow::Result<Vec<String>> {
    if !names.is_empty() {
        return Ok(names.to_vec());
    }
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot list [programs] dir {}: create it or set [programs] dir",
            dir.display()
        )
    })?;
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(".yaml")?.to_string();
            dir.join(format!("{name}.bpf.o")).is_file().then_some(name)
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Reads and checks `dir/NAME.yaml`; its object must exist beside it.
pub fn read(dir: &Path, name: &str) -> anyhow::Result<Checked> {
    let yaml = dir.join(format!("{name}.yaml"));
    let object = dir.join(format!("{name}.bpf.o"));
    let text = std::fs::read_to_string(&yaml)
        .with_context(|| format!("config {name}: cannot read {}", yaml.display()))?;
    let config: ProgramConfig = serde_yaml::from_str(&text).map_err(|err| {
        anyhow::anyhow!(
            "config {name}: {}: {err} (the keys are ebpf_exporter v2's: metrics.counters, metrics.histograms, kaddrs, cgroup_id_map)",
            yaml.display()
        )
    })?;
    if !object.is_file() {
        bail!(
            "config {name}: {} has no object beside it: expected {} (compile NAME.bpf.c into NAME.bpf.o)",
            yaml.display(),
            object.display()
        );
    }
    let decoders = check(&config).with_context(|| format!("config {name}: {}", yaml.display()))?;
    Ok(Checked {
        name: name.to_string(),
        yaml,
        object,
        config,
        decoders,
    })
}

/// The checks a config needs before its object is opened; builds the
/// decoder chains on the way.
pub fn check(config: &ProgramConfig) -> anyhow::Result<BTreeMap<String, Vec<Vec<Decoder>>>> {
    let metrics = &config.metrics;
    if metrics.counters.is_empty() && metrics.histograms.is_empty() {
        bail!("no metrics: expected metrics.counters or metrics.histograms");
    }
    let mut decoders = BTreeMap::new();
    let named = metrics
        .counters
        .iter()
        .map(|c| ("counter", &c.name, &c.help, &c.labels))
        .chain(
            metrics
                .histograms
                .iter()
                .map(|h| ("histogram", &h.name, &h.help, &h.labels)),
        );
    for (kind, name, help, labels) in named {
        if !valid_metric_name(name) {
            bail!("{kind} name {name:?}: expected a metric name ([a-zA-Z_][a-zA-Z0-9_]*)");
        }
        if help.trim().is_empty() {
            bail!("{kind} {name}: help is empty: say what it counts");
        }
        let chains = labels
            .iter()
            .map(|label| check_label(label).with_context(|| format!("{kind} {name}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if decoders.insert(name.clone(), chains).is_some() {
            bail!("{kind} {name}: a second metric of that name (each reads the map of its name)");
        }
    }
    for counter in &metrics.counters {
        counter
            .flush_interval()
            .with_context(|| format!("counter {}", counter.name))?;
    }
    for histogram in &metrics.histograms {
        check_buckets(histogram).with_context(|| format!("histogram {}", histogram.name))?;
    }
    if let Some(map) = &config.cgroup_id_map {
        if !matches!(map.kind.as_str(), "hash" | "cgrp_storage") {
            bail!(
                "cgroup_id_map.type {:?}: expected hash or cgrp_storage",
                map.kind
            );
        }
        for expr in &map.regexps {
            regex::bytes::Regex::new(expr)
                .with_context(|| format!("cgroup_id_map.regexps: {expr:?}"))?;
        }
    }
    Ok(decoders)
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_label(label: &Label) -> anyhow::Result<Vec<Decoder>> {
    let name = &label.name;
    if !valid_metric_name(name) {
        bail!("label name {name:?}: expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
    }
    if label.size == 0 {
        bail!("label {name}: size is 0 or missing: expected the field's size in bytes");
    }
    if label.decoders.is_empty() {
        bail!("label {name}: no decoders: expected at least one (uint, string, ...)");
    }
    label
        .decoders
        .iter()
        .map(|config| Decoder::build(config, label.size))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("label {name}"))
}

fn check_buckets(histogram: &Histogram) -> anyhow::Result<()> {
    if histogram.labels.is_empty() {
        bail!("no labels: expected the bucket as the last label of the key");
    }
    match histogram.bucket_type {
        BucketType::Fixed => {
            if histogram.bucket_keys.is_empty() {
                bail!("bucket_type fixed without bucket_keys: expected the bucket keys, ascending");
            }
            if histogram.bucket_keys.windows(2).any(|w| w[0] >= w[1]) {
                bail!(
                    "bucket_keys {:?}: expected ascending keys",
                    histogram.bucket_keys
                );
            }
        }
        _ if histogram.bucket_max <= histogram.bucket_min => bail!(
            "bucket_min {} and bucket_max {}: expected bucket_max above bucket_min",
            histogram.bucket_min,
            histogram.bucket_max
        ),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> anyhow::Result<ProgramConfig> {
        let config: ProgramConfig = serde_yaml::from_str(yaml)?;
        check(&config)?;
        Ok(config)
    }

    #[test]
    fn reads_counters_and_histograms() {
        let config = parse(
            r#"
metrics:
  counters:
    - name: calls_total
      help: Calls
      labels:
        - name: syscall
          size: 8
          decoders: [{name: uint}, {name: syscall}]
  histograms:
    - name: latency_seconds
      help: Latency
      bucket_type: exp2
      bucket_min: 0
      bucket_max: 26
      bucket_multiplier: 0.000001
      labels:
        - name: bucket
          size: 4
          padding: 4
          decoders: [{name: uint}]
"#,
        )
        .unwrap();
        assert_eq!(config.metrics.counters[0].labels[0].size, 8);
        assert_eq!(key_width(&config.metrics.histograms[0].labels), 8);
    }

    #[test]
    fn refuses_unknown_keys_with_the_key() {
        let err = parse("metrics:\n  counters:\n    - name: a\n      help: b\n      lables: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `lables`"), "{err}");
        let err = parse("metric: {}\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `metric`"), "{err}");
    }

    #[test]
    fn refuses_unknown_decoders_and_bad_buckets() {
        let label = |decoder: &str| {
            format!("metrics:\n  counters:\n    - name: a\n      help: b\n      labels:\n        - name: x\n          size: 4\n          decoders: [{{name: {decoder}}}]\n")
        };
        let err = format!("{:#}", parse(&label("unit")).unwrap_err());
        assert!(err.contains("unknown decoder \"unit\""), "{err}");
        assert!(parse(&label("uint")).is_ok());
        let err = format!(
            "{:#}",
            parse("metrics:\n  histograms:\n    - name: h\n      help: b\n      bucket_type: exp2\n      bucket_max: 0\n      labels:\n        - {name: b, size: 8, decoders: [{name: uint}]}\n").unwrap_err()
        );
        assert!(
            err.contains("expected bucket_max above bucket_min"),
            "{err}"
        );
    }

    #[test]
    fn refuses_an_empty_config_and_zero_sizes() {
        assert!(format!("{:#}", parse("{}").unwrap_err()).contains("no metrics"));
        let err = format!(
            "{:#}",
            parse("metrics:\n  counters:\n    - name: a\n      help: b\n      labels:\n        - {name: x, size: 0, decoders: [{name: uint}]}\n").unwrap_err()
        );
        assert!(err.contains("label x: size is 0"), "{err}");
    }
}
