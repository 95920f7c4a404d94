//! sonde's configuration: one TOML file, every key optional with a default.
//! `packaging/sonde.toml` documents each key; keep the two in step.
//!
//! Unknown keys and bad values are refused at start with the file, the key and
//! what was expected, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Deserializer};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub collect: CollectConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds: dashboard, /metrics and the APIs.
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9977)),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The data directory; the database is `sonde.db` inside it.
    pub path: PathBuf,
    /// How long raw samples are kept.
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// How long the 1-minute rollups are kept.
    #[serde(deserialize_with = "duration")]
    pub rollup_minute_retention: Duration,
    /// How long the 1-hour rollups are kept.
    #[serde(deserialize_with = "duration")]
    pub rollup_hour_retention: Duration,
    /// Cap on the database's bytes on disk; 0 for none.
    #[serde(deserialize_with = "bytes")]
    pub retention_size: u64,
    /// Most series active at once; new ones beyond are refused.
    pub max_series: usize,
    /// Jitter of a series' timestamps absorbed by aligning them to its
    /// schedule; "0s" stores timestamps exactly as given.
    #[serde(deserialize_with = "duration")]
    pub timestamp_tolerance: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let store = crate::store::StoreOptions::default();
        StorageConfig {
            path: PathBuf::from("./data"),
            retention: store.retention,
            rollup_minute_retention: store.minute_retention,
            rollup_hour_retention: store.hour_retention,
            retention_size: store.retention_size,
            max_series: store.max_series,
            timestamp_tolerance: store.timestamp_tolerance,
        }
    }
}

impl StorageConfig {
    pub fn database_file(&self) -> PathBuf {
        self.path.join("sonde.db")
    }

    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            retention: self.retention,
            minute_retention: self.rollup_minute_retention,
            hour_retention: self.rollup_hour_retention,
            retention_size: self.retention_size,
            max_series: self.max_series,
            timestamp_tolerance: self.timestamp_tolerance,
        }
    }
}

/// Parses a size: a number of bytes, or a string such as `"512MB"` or
/// `"10GiB"` (KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024).
pub fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Number(n) => Ok(n),
        Size::Text(text) => parse_bytes(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a size such as \"512MB\" or \"10GiB\", got {text:?}"
            ))
        }),
    }
}

fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    let total = number * scale as f64;
    (total.is_finite() && total >= 0.0 && total < u64::MAX as f64).then_some(total as u64)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Time between two collection rounds.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Most series one metric may have; beyond it the smallest processes fold
    /// into `comm="other"` (see `collect::budget`).
    pub max_series_per_metric: usize,
    /// Which eBPF collectors to load (`[collect.bpf]`).
    pub bpf: BpfConfig,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            interval: Duration::from_secs(10),
            max_series_per_metric: crate::collect::budget::DEFAULT_MAX_SERIES,
            bpf: BpfConfig::default(),
        }
    }
}

/// One switch per eBPF collector; all on by default. A collector that is on
/// but cannot load is logged and skipped, so turning one off is only needed
/// to save its cost.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BpfConfig {
    /// Syscall counts per process, latency and errors per syscall.
    pub syscalls: bool,
    /// Block I/O latency per device, bytes and requests per process.
    pub block: bool,
    /// Execs, forks, exits by reason and OOM kills per process.
    pub process: bool,
}

impl Default for BpfConfig {
    fn default() -> Self {
        BpfConfig {
            syscalls: true,
            block: true,
            process: true,
        }
    }
}

/// Shortest collection interval accepted: below it the collectors' own cost
/// would dominate what they measure.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Parses a Prometheus-style duration string such as `"10s"` or `"1m30s"`.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|err| {
        serde::de::Error::custom(format!(
            "expected a duration such as \"10s\" or \"1m\", got {text:?} ({err})"
        ))
    })
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).map_err(|err| anyhow::anyhow!("{err}"))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.storage.max_series == 0 {
            bail!("key storage.max_series: expected at least 1, got 0");
        }
        if self.storage.retention.is_zero() {
            bail!("key storage.retention: expected more than 0s");
        }
        if self.collect.interval < MIN_INTERVAL {
            bail!(
                "key collect.interval: expected at least {}, got {}",
                humantime::format_duration(MIN_INTERVAL),
                humantime::format_duration(self.collect.interval)
            );
        }
        if self.collect.max_series_per_metric == 0 {
            bail!("key collect.max_series_per_metric: expected at least 1, got 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:9977");
        assert_eq!(
            config.storage.database_file(),
            PathBuf::from("./data/sonde.db")
        );
        assert_eq!(config.collect.interval, Duration::from_secs(10));
    }

    #[test]
    fn packaged_config_parses_to_the_defaults() {
        let text = include_str!("../packaging/sonde.toml");
        let config = Config::parse(text).unwrap();
        assert_eq!(config.collect.interval, Duration::from_secs(10));
    }

    #[test]
    fn storage_sizes_and_durations_parse() {
        let config = Config::parse(
            "[storage]\nretention = \"30d\"\nretention_size = \"2GiB\"\nmax_series = 5000\n",
        )
        .unwrap();
        assert_eq!(config.storage.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.storage.retention_size, 2 << 30);
        assert_eq!(config.storage.max_series, 5000);
        assert_eq!(parse_bytes("512MB"), Some(512_000_000));
        assert_eq!(parse_bytes("1.5KiB"), Some(1536));
        let err = format!(
            "{:#}",
            Config::parse("[storage]\nretention_size = \"lots\"\n").unwrap_err()
        );
        assert!(err.contains("expected a size"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = format!(
            "{:#}",
            Config::parse("[server]\nlisten_on = \"x\"\n").unwrap_err()
        );
        assert!(err.contains("listen_on"), "{err}");
        let err = format!(
            "{:#}",
            Config::parse("[collect.bpf]\nsyscall = false\n").unwrap_err()
        );
        assert!(err.contains("syscall"), "{err}");
    }

    #[test]
    fn bpf_collectors_can_be_turned_off() {
        assert!(Config::default().collect.bpf.syscalls);
        let config = Config::parse("[collect.bpf]\nsyscalls = false\n").unwrap();
        assert!(!config.collect.bpf.syscalls);
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let err = format!(
            "{:#}",
            Config::parse("[collect]\ninterval = \"soon\"\n").unwrap_err()
        );
        assert!(err.contains("expected a duration"), "{err}");
        let err = format!(
            "{:#}",
            Config::parse("[collect]\ninterval = \"100ms\"\n").unwrap_err()
        );
        assert!(err.contains("collect.interval"), "{err}");
    }
}
