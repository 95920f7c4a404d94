//! sonde's configuration: one TOML file, every key optional with a default.
//! `packaging/sonde.toml` documents each key; keep the two in step.
//!
//! Unknown keys and bad values are refused at start with the file, the key and
//! what was expected, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
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
    /// `[[remote_write]]` tables: where to ship every stored sample.
    pub remote_write: Vec<RemoteWriteConfig>,
    pub alerting: AlertingConfig,
    /// `[notify]`: the built-in notifier's receivers, routes and inhibition.
    pub notify: crate::alert::notify::NotifyConfig,
    pub programs: ProgramsConfig,
}

/// `[programs]`: custom eBPF programs in ebpf_exporter's format
/// (`crate::collect::programs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramsConfig {
    /// The directory of `NAME.yaml` and `NAME.bpf.o` pairs; a missing
    /// directory loads nothing.
    pub dir: PathBuf,
    /// The configs to load; empty: every `NAME.yaml` with a `NAME.bpf.o`.
    pub names: Vec<String>,
}

impl Default for ProgramsConfig {
    fn default() -> Self {
        ProgramsConfig {
            dir: PathBuf::from("/etc/sonde/programs"),
            names: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds: dashboard, /metrics and the APIs.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: with both, the server speaks
    /// HTTPS only, and reloads them when they change
    /// ([`crate::serve::guard`]).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// User name → bcrypt hash of the password. With any, every endpoint
    /// but `/-/healthy` asks for HTTP basic auth.
    pub basic_auth_users: BTreeMap<String, String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9977)),
            tls_cert_file: None,
            tls_key_file: None,
            basic_auth_users: BTreeMap::new(),
        }
    }
}

impl ServerConfig {
    /// The URL sonde answers at, as `[server]` makes it.
    pub fn url(&self) -> String {
        let scheme = if self.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.listen)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            bail!("[server]: set both tls_cert_file and tls_key_file, or neither");
        }
        for (name, hash) in &self.basic_auth_users {
            if name.is_empty() || name.contains(':') {
                bail!("key server.basic_auth_users: {name:?} is not a user name (expected one without ':')");
            }
            hash.parse::<bcrypt::HashParts>().map_err(|err| {
                anyhow::anyhow!(
                    "key server.basic_auth_users.{name}: expected a bcrypt hash such as \"$2y$10$...\" (htpasswd -nBC 10 {name}), got one that is not ({err})"
                )
            })?;
        }
        Ok(())
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
    /// Retired: the store once aligned timestamps within this much of a
    /// series' schedule. Accepted, and ignored with a warning, so that
    /// config files written for it still load.
    #[serde(rename = "timestamp_tolerance")]
    retired_timestamp_tolerance: Option<toml::Value>,
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
            retired_timestamp_tolerance: None,
        }
    }
}

impl StorageConfig {
    pub fn database_file(&self) -> PathBuf {
        self.path.join("sonde.db")
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
    /// Most series one metric may have; beyond it the least active processes
    /// fold into `comm="other"` (see `collect::budget`).
    pub max_series_per_metric: usize,
    /// How long a process, cgroup or connection with no new event keeps its
    /// running totals and its series (see `collect::bpf::drain`).
    #[serde(deserialize_with = "duration")]
    pub forget_after: Duration,
    /// Which eBPF collectors to load (`[collect.bpf]`).
    pub bpf: BpfConfig,
    /// Containers and systemd units from their cgroups (`[collect.containers]`).
    pub containers: ContainersConfig,
    /// Which connections the http collector measures and how it names
    /// routes (`[collect.http]`).
    pub http: HttpConfig,
}

/// `[collect.http]`: the http collector's selection of connections
/// (`collect::http::select`) and routes (`collect::http::routes`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `[[collect.http.instrument]]`: with any, only the connections one of
    /// them selects are measured.
    pub instrument: Vec<crate::collect::http::select::SelectorConfig>,
    /// `[[collect.http.exclude]]`: connections never measured.
    pub exclude: Vec<crate::collect::http::select::SelectorConfig>,
    /// Route patterns (`/users/{id}`), tried in order before the heuristic.
    pub route_patterns: Vec<String>,
    /// Distinct heuristic routes per service; later ones are `/**`.
    pub max_routes_per_service: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            instrument: Vec::new(),
            exclude: Vec::new(),
            route_patterns: Vec::new(),
            max_routes_per_service: crate::collect::http::routes::DEFAULT_MAX_ROUTES,
        }
    }
}

impl HttpConfig {
    /// The selection and route patterns, or what is wrong, naming the key.
    pub fn compile(
        &self,
    ) -> anyhow::Result<(
        crate::collect::http::select::Selection,
        Vec<crate::collect::http::routes::Pattern>,
    )> {
        let selection =
            crate::collect::http::select::Selection::new(&self.instrument, &self.exclude)
                .map_err(|err| anyhow::anyhow!("key collect.http.{err}"))?;
        let patterns = self
            .route_patterns
            .iter()
            .enumerate()
            .map(|(i, text)| {
                crate::collect::http::routes::Pattern::new(text)
                    .map_err(|err| anyhow::anyhow!("key collect.http.route_patterns[{i}]: {err}"))
            })
            .collect::<anyhow::Result<_>>()?;
        if self.max_routes_per_service == 0 {
            bail!("key collect.http.max_routes_per_service: expected at least 1, got 0");
        }
        Ok((selection, patterns))
    }
}

/// The containers collector (`collect::containers`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// Whether to report containers and systemd units.
    pub enabled: bool,
    /// Most cgroups reported a round; beyond, the deepest units are left out.
    pub max_cgroups: usize,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            enabled: true,
            max_cgroups: crate::collect::containers::DEFAULT_MAX_CGROUPS,
        }
    }
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            interval: Duration::from_secs(10),
            max_series_per_metric: crate::collect::budget::DEFAULT_MAX_SERIES,
            forget_after: crate::store::StoreOptions::default().idle_after,
            bpf: BpfConfig::default(),
            containers: ContainersConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

/// Default of `[collect.bpf] syscall_latency_sample`: one syscall in 16
/// timed (BENCHMARKS.md, "Syscalls collector").
pub const DEFAULT_SYSCALL_LATENCY_SAMPLE: u32 = 16;

/// One switch per eBPF collector; all on by default. A collector that is on
/// but cannot load is logged and skipped, so turning one off is only needed
/// to save its cost.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BpfConfig {
    /// Syscall counts per process, latency and errors per syscall.
    pub syscalls: bool,
    /// Whether the syscalls collector also times syscalls (latency
    /// histogram) and counts their errors; off, it only counts.
    pub syscall_latency: bool,
    /// The syscalls collector times about one call in this many per thread
    /// (1: every call); the histogram is scaled to the exact counts.
    pub syscall_latency_sample: u32,
    /// Block I/O latency per device, bytes and requests per process.
    pub block: bool,
    /// Network bytes and TCP connections per process.
    pub net: bool,
    /// Execs, forks, exits by reason and OOM kills per process.
    pub process: bool,
    /// Run-queue latency and context switches per process.
    pub sched: bool,
    /// HTTP RED metrics of every local HTTP/1.x server and of the calls
    /// local processes make, plain or through OpenSSL or Go's crypto/tls
    /// (Beyla's names).
    pub http: bool,
    /// With http: the TLS probes (OpenSSL's and Go's), which see HTTPS's
    /// plaintext; each of their hits is a trap into the kernel (~9 µs on
    /// the development VM), so a cheap HTTPS handler may want them off.
    pub http_tls: bool,
    /// Attaches the TLS probes to libssl files processes map after start
    /// (a container's own) and to Go programs started after sonde, not
    /// only to those found at start; keeps CAP_BPF and CAP_PERFMON for it.
    pub http_tls_late_attach: bool,
    /// Turns on the kernel's run-time statistics while sonde runs, for
    /// `sonde_bpf_program_run_seconds_total` and `..._runs_total`. They add
    /// two scheduler-clock reads to every run of every BPF program on the
    /// machine (BENCHMARKS.md).
    pub run_time_stats: bool,
    /// The kernel event stream (exec, exit, fatal signal, OOM kill, TCP
    /// connect, accept, listen): recent events for the API and dashboard,
    /// and what event rules match.
    pub events: bool,
    /// Path prefixes whose opens for writing are events too (at most 8).
    pub event_write_paths: Vec<String>,
    /// Events kept in memory for `/api/v1/events` and the Kernel view.
    pub recent_events: usize,
    /// Bytes of the http collector's ring buffer (a power of two).
    #[serde(deserialize_with = "bytes")]
    pub http_ring_size: u64,
    /// Bytes of the event stream's ring buffer (a power of two).
    #[serde(deserialize_with = "bytes")]
    pub event_ring_size: u64,
}

impl Default for BpfConfig {
    fn default() -> Self {
        BpfConfig {
            syscalls: true,
            syscall_latency: true,
            syscall_latency_sample: DEFAULT_SYSCALL_LATENCY_SAMPLE,
            block: true,
            net: true,
            process: true,
            sched: true,
            http: true,
            http_tls: true,
            http_tls_late_attach: false,
            run_time_stats: true,
            events: true,
            event_write_paths: Vec::new(),
            recent_events: crate::collect::events::DEFAULT_RECENT,
            http_ring_size: crate::collect::bpf::http::DEFAULT_RING_BYTES,
            event_ring_size: crate::collect::bpf::events::DEFAULT_RING_BYTES,
        }
    }
}

/// One remote-write destination: a Prometheus, Mimir, VictoriaMetrics... that
/// receives every sample sonde stores, through a durable queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// The receiver's endpoint, `http://` or `https://`.
    pub url: String,
    /// Names the destination in logs, self-metrics (`remote` label) and its
    /// queue position; defaults to the URL. Renaming one restarts its queue.
    pub name: Option<String>,
    /// Time one request may take before it is retried.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Extra HTTP headers sent with every request (a tenant ID, say).
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: Bearer <token>`; or read from `bearer_token_file`.
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls: TlsConfig,
    /// Most samples in one request (a request holds whole collection rounds,
    /// so one round larger than this is still sent in one request).
    pub max_samples_per_send: usize,
    /// First wait after a failed request; doubled after each failure up to
    /// `max_backoff`.
    #[serde(deserialize_with = "duration")]
    pub min_backoff: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Samples queued longer than this are dropped (and counted as failed),
    /// so a receiver gone for good does not fill the disk.
    #[serde(deserialize_with = "duration")]
    pub max_queue_age: Duration,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            name: None,
            timeout: Duration::from_secs(30),
            headers: BTreeMap::new(),
            basic_auth: None,
            bearer_token: None,
            bearer_token_file: None,
            tls: TlsConfig::default(),
            max_samples_per_send: 2000,
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            max_queue_age: Duration::from_secs(2 * 3600),
        }
    }
}

impl RemoteWriteConfig {
    /// The destination's name: `name`, or the URL.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.url)
    }
}

/// `[alerting]`: Prometheus rule files evaluated inside sonde, and the
/// Alertmanagers their alerts go to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Rule files in Prometheus's format; a `*` or `?` in the file name
    /// matches as a shell glob does.
    pub rule_files: Vec<String>,
    /// How often a group without its own `interval` is evaluated.
    #[serde(deserialize_with = "duration")]
    pub evaluation_interval: Duration,
    /// Labels added to every alert sent (not to stored series), as
    /// Prometheus's `global.external_labels`.
    pub external_labels: BTreeMap<String, String>,
    /// The URL sonde is reached at, for alerts' links back to its graph
    /// page; defaults to `http://` and `[server] listen`.
    pub external_url: Option<String>,
    /// Alertmanagers (`http://host:9093`) that receive every alert through
    /// their API v2.
    pub alertmanagers: Vec<String>,
    /// Firing and resolved alerts are sent again this often.
    #[serde(deserialize_with = "duration")]
    pub resend_delay: Duration,
    /// After a restart, alert state older than this is not restored.
    #[serde(deserialize_with = "duration")]
    pub outage_tolerance: Duration,
    /// After a restart, a pending alert waits at least this long before it
    /// fires.
    #[serde(deserialize_with = "duration")]
    pub for_grace_period: Duration,
    /// `[[alerting.actions]]`: commands firing alerts run; none by default.
    pub actions: Vec<crate::alert::action::ActionConfig>,
    /// Action commands running at once, at most.
    pub max_running_actions: usize,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            rule_files: vec!["/etc/sonde/rules/*.yml".to_string()],
            evaluation_interval: Duration::from_secs(60),
            external_labels: BTreeMap::new(),
            external_url: None,
            alertmanagers: Vec::new(),
            resend_delay: Duration::from_secs(60),
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            actions: Vec::new(),
            max_running_actions: 4,
        }
    }
}

/// `Authorization: Basic`; the password inline or read from a file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// TLS for an `https://` destination. By default the server is verified
/// against the Mozilla root certificates built into sonde.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and key, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Skips verifying the server's certificate: for tests only.
    pub insecure_skip_verify: bool,
}

/// Headers sonde sets itself on a remote-write request.
const RESERVED_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "x-prometheus-remote-write-version",
    "user-agent",
];

impl RemoteWriteConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let key = format!("remote_write {:?}", self.name());
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            bail!(
                "{key}: key url: expected an http:// or https:// URL, got {:?}",
                self.url
            );
        }
        let auths = [
            self.basic_auth.is_some(),
            self.bearer_token.is_some(),
            self.bearer_token_file.is_some(),
        ];
        if auths.iter().filter(|&&a| a).count() > 1 {
            bail!("{key}: set at most one of basic_auth, bearer_token and bearer_token_file");
        }
        if let Some(auth) = &self.basic_auth {
            if auth.username.is_empty() {
                bail!("{key}: key basic_auth.username: expected a user name");
            }
            if auth.password.is_some() == auth.password_file.is_some() {
                bail!("{key}: basic_auth: set exactly one of password and password_file");
            }
        }
        for name in self.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str())
                || (lower == "authorization" && auths.contains(&true))
            {
                bail!("{key}: header {name:?} is set by sonde and cannot be overridden");
            }
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                bail!("{key}: {name:?} is not a valid HTTP header name");
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            bail!("{key}: tls: set both cert_file and key_file, or neither");
        }
        if self.max_samples_per_send == 0 {
            bail!("{key}: key max_samples_per_send: expected at least 1, got 0");
        }
        if self.min_backoff > self.max_backoff || self.min_backoff.is_zero() {
            bail!("{key}: expected 0 < min_backoff <= max_backoff");
        }
        Ok(())
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
    /// The store's options: `[storage]`, series closed after
    /// `[collect] forget_after`, and an outbox when there is a
    /// `[[remote_write]]` destination to queue for.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        let storage = &self.storage;
        crate::store::StoreOptions {
            retention: storage.retention,
            minute_retention: storage.rollup_minute_retention,
            hour_retention: storage.rollup_hour_retention,
            retention_size: storage.retention_size,
            max_series: storage.max_series,
            idle_after: self.collect.forget_after,
            outbox: !self.remote_write.is_empty(),
        }
    }

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
        if config.storage.retired_timestamp_tolerance.is_some() {
            tracing::warn!(
                "key storage.timestamp_tolerance is ignored: sonde stores every timestamp as given, and collection rounds are stamped on their schedule; delete the key"
            );
        }
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.server.validate()?;
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
        if self.collect.forget_after < self.collect.interval {
            bail!(
                "key collect.forget_after: expected at least collect.interval ({}), got {}",
                humantime::format_duration(self.collect.interval),
                humantime::format_duration(self.collect.forget_after)
            );
        }
        if self.collect.bpf.syscall_latency_sample == 0 {
            bail!("key collect.bpf.syscall_latency_sample: expected at least 1 (1 times every syscall), got 0");
        }
        for (key, bytes) in [
            ("http_ring_size", self.collect.bpf.http_ring_size),
            ("event_ring_size", self.collect.bpf.event_ring_size),
        ] {
            crate::collect::bpf::ring::check_size(bytes)
                .map_err(|expected| anyhow::anyhow!("key collect.bpf.{key}: {expected}"))?;
        }
        self.notify.validate().context("[notify]")?;
        for url in &self.alerting.alertmanagers {
            crate::alert::alertmanager::check_url(url)
                .map_err(|err| anyhow::anyhow!("key alerting.alertmanagers: {err}"))?;
        }
        if self.alerting.evaluation_interval.is_zero() {
            bail!("key alerting.evaluation_interval: expected more than 0s");
        }
        crate::alert::action::config::build(&self.alerting.actions).map_err(anyhow::Error::msg)?;
        if self.alerting.max_running_actions == 0 {
            bail!("key alerting.max_running_actions: expected at least 1, got 0");
        }
        let mut names = std::collections::HashSet::new();
        for remote in &self.remote_write {
            remote.validate()?;
            if !names.insert(remote.name()) {
                bail!(
                    "two [[remote_write]] tables are named {:?}: give each a distinct name",
                    remote.name()
                );
            }
        }
        if self.collect.containers.max_cgroups == 0 {
            bail!("key collect.containers.max_cgroups: expected at least 1, got 0");
        }
        self.collect.http.compile()?;
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
        assert_eq!(config.storage.path, PathBuf::from("/var/lib/sonde"));
        let defaults = AlertingConfig::default();
        assert_eq!(config.alerting.rule_files, defaults.rule_files);
        assert_eq!(
            config.alerting.evaluation_interval,
            defaults.evaluation_interval
        );
        assert_eq!(config.alerting.resend_delay, defaults.resend_delay);
        assert_eq!(config.alerting.outage_tolerance, defaults.outage_tolerance);
        assert_eq!(config.alerting.for_grace_period, defaults.for_grace_period);
        assert_eq!(
            config.alerting.max_running_actions,
            defaults.max_running_actions
        );
        assert!(config.alerting.actions.is_empty());
    }

    #[test]
    fn retired_timestamp_tolerance_still_loads() {
        let config = Config::parse("[storage]\ntimestamp_tolerance = \"50ms\"\n").unwrap();
        assert_eq!(config.storage.max_series, 100_000);
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
    fn remote_write_tables_parse_and_are_checked() {
        let config = Config::parse(
            "[[remote_write]]\nurl = \"https://a/api/v1/write\"\nbearer_token = \"t\"\n\
             headers = { \"X-Scope-OrgID\" = \"x\" }\n\
             [[remote_write]]\nurl = \"http://b/w\"\nname = \"b\"\n\
             basic_auth = { username = \"u\", password = \"p\" }\n\
             tls = { insecure_skip_verify = true }\n",
        )
        .unwrap();
        assert_eq!(config.remote_write.len(), 2);
        assert_eq!(config.remote_write[0].name(), "https://a/api/v1/write");
        assert_eq!(config.remote_write[1].name(), "b");
        let refused = [
            "[[remote_write]]\nurl = \"ftp://x\"\n",
            "[[remote_write]]\nurl = \"http://x\"\nbearer_token = \"t\"\nbasic_auth = { username = \"u\", password = \"p\" }\n",
            "[[remote_write]]\nurl = \"http://x\"\nheaders = { \"Content-Type\" = \"x\" }\n",
            "[[remote_write]]\nurl = \"http://x\"\ntls = { cert_file = \"c\" }\n",
            "[[remote_write]]\nurl = \"http://x\"\n[[remote_write]]\nurl = \"http://x\"\n",
            "[[remote_write]]\nurl = \"http://x\"\nmin_backoff = \"10s\"\nmax_backoff = \"1s\"\n",
        ];
        for text in refused {
            assert!(Config::parse(text).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn packaged_remote_write_example_parses() {
        let text = include_str!("../packaging/sonde.toml");
        let example: String = text[text.find("# [[remote_write]]\n# url").unwrap()..]
            .lines()
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        let config = Config::parse(&example).unwrap();
        assert_eq!(config.remote_write[0].name(), "central");
        assert!(config.remote_write[0].tls.ca_file.is_some());
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
    fn server_tls_and_basic_auth_are_checked() {
        let hash = "$2y$04$AAAAAAAAAAAAAAAAAAAAAOjRGYR45O6y8CeFnB8n.H3Qf9VQn6n8e";
        let config = Config::parse(&format!(
            "[server]\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n[server.basic_auth_users]\nops = \"{hash}\"\n"
        ))
        .unwrap();
        assert_eq!(config.server.url(), "https://127.0.0.1:9977");
        assert_eq!(config.server.basic_auth_users["ops"], hash);
        let err = format!(
            "{:#}",
            Config::parse("[server.basic_auth_users]\nops = \"secret\"\n").unwrap_err()
        );
        assert!(err.contains("server.basic_auth_users.ops"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = format!(
            "{:#}",
            Config::parse("[server]\ntls_cert_file = \"c.pem\"\n").unwrap_err()
        );
        assert!(err.contains("tls_key_file"), "{err}");
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
        let err = format!(
            "{:#}",
            Config::parse("[collect.bpf]\nsyscall_latency_sample = 0\n").unwrap_err()
        );
        assert!(err.contains("collect.bpf.syscall_latency_sample"), "{err}");
        for (ring, wrong) in [
            ("http_ring_size", "\"1000KB\""),
            ("event_ring_size", "4096"),
        ] {
            let err = format!(
                "{:#}",
                Config::parse(&format!("[collect.bpf]\n{ring} = {wrong}\n")).unwrap_err()
            );
            assert!(err.contains(&format!("collect.bpf.{ring}")), "{err}");
            assert!(err.contains("power of two"), "{err}");
        }
        let config = Config::parse("[collect.bpf]\nhttp_ring_size = \"4MiB\"\n").unwrap();
        assert_eq!(config.collect.bpf.http_ring_size, 4 << 20);
    }

    #[test]
    fn http_selection_and_routes_are_checked_naming_the_key() {
        let config = Config::parse(
            "[collect.http]\nroute_patterns = [\"/users/{id}\"]\nmax_routes_per_service = 20\n\
             [[collect.http.instrument]]\nports = \"80,8000-8999\"\nexe_path = \"/usr/sbin/*\"\n\
             [[collect.http.exclude]]\nunit = \"ssh.service\"\n",
        )
        .unwrap();
        assert_eq!(config.collect.http.instrument.len(), 1);
        assert_eq!(config.collect.http.max_routes_per_service, 20);
        for (text, key) in [
            (
                "route_patterns = [\"/a\", \"b/{id}\"]",
                "collect.http.route_patterns[1]",
            ),
            (
                "max_routes_per_service = 0",
                "collect.http.max_routes_per_service",
            ),
            (
                "[[collect.http.instrument]]\nports = \"80-\"",
                "collect.http.instrument[0]: ports",
            ),
            (
                "[[collect.http.exclude]]",
                "collect.http.exclude[0]: an empty selector",
            ),
            (
                "[[collect.http.exclude]]\nexe = \"x\"",
                "unknown field `exe`",
            ),
        ] {
            let err = format!(
                "{:#}",
                Config::parse(&format!("[collect.http]\n{text}\n")).unwrap_err()
            );
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
