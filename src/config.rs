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
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("./data"),
        }
    }
}

impl StorageConfig {
    pub fn database_file(&self) -> PathBuf {
        self.path.join("sonde.db")
    }
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
