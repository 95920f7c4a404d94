//! What integration tests share: start a real sonde on a free loopback port
//! with its own data directory, talk HTTP to it, read its /metrics, run the
//! real node_exporter beside it, and find out whether eBPF tests must run (`SONDE_REQUIRE_BPF=1`) or may skip.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod alertmanager;
pub mod chromium;
pub mod podman;
pub mod prometheus;
pub mod promql;
pub mod recorder;
pub mod remote;
pub mod server;
pub mod smtp;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sonde binary cargo built for these tests.
pub const SONDE: &str = env!("CARGO_BIN_EXE_sonde");

/// A free TCP port on 127.0.0.1 (free when asked; tests bind it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free loopback port")
        .port()
}

/// sonde run as `nobody` holding only the capabilities `caps` (setpriv's
/// syntax, "-all,+bpf"), inheritable, ambient and bounding, for
/// [`Sonde::start_command`].
pub fn unprivileged_sonde(caps: &str) -> Command {
    let mut setpriv = Command::new("setpriv");
    setpriv.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        &format!("--inh-caps={caps}"),
        &format!("--ambient-caps={caps}"),
        &format!("--bounding-set={caps}"),
        SONDE,
    ]);
    setpriv
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sonde-{what}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The default rule pack, evaluated every second by every test's sonde
/// (unless the test brings its own `[alerting]`), so each test runs the
/// pack against live data.
pub fn shipped_rules() -> String {
    format!(
        "[alerting]\nrule_files = [\"{}/packaging/rules/*.yml\"]\nevaluation_interval = \"1s\"\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A running `sonde run`, killed on drop.
pub struct Sonde {
    pub child: Child,
    pub base_url: String,
    pub data: TempDir,
    pub log: PathBuf,
}

impl Sonde {
    /// Starts sonde with a 1 s interval, a free port and a fresh data
    /// directory; `extra` is appended to the config file (more tables).
    /// Returns once /-/ready answers 200.
    pub fn start(extra: &str) -> Sonde {
        Sonde::start_in(TempDir::new("data"), extra)
    }

    /// As [`Sonde::start`], on an existing data directory (to test restarts).
    pub fn start_in(data: TempDir, extra: &str) -> Sonde {
        Sonde::start_with_env(data, extra, &[])
    }

    /// As [`Sonde::start_in`], with extra environment variables for sonde.
    pub fn start_with_env(data: TempDir, extra: &str, env: &[(&str, &str)]) -> Sonde {
        Sonde::start_program(Path::new(SONDE), data, extra, env)
    }

    /// As [`Sonde::start_with_env`], running the sonde binary at `program`
    /// (another build, to compare with).
    pub fn start_program(
        program: &Path,
        data: TempDir,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Sonde {
        let mut command = Command::new(program);
        command.envs(env.iter().copied());
        Sonde::start_command(data, extra, command)
    }

    /// As [`Sonde::start_in`], with `command` as the program (a wrapper
    /// such as setpriv followed by a sonde binary); `run --config FILE`
    /// is appended to it.
    pub fn start_command(data: TempDir, extra: &str, mut command: Command) -> Sonde {
        let port = free_port();
        let config = data.0.join("sonde.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[collect]\ninterval = \"1s\"\n{extra}\n{}",
                data.0.join("store").display(),
                if extra.contains("[alerting]") { String::new() } else { shipped_rules() },
            ),
        )
        .unwrap();
        let log = data.0.join("sonde.log");
        let child = command
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start sonde");
        let mut sonde = Sonde {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            data,
            log,
        };
        sonde.wait_ready();
        sonde
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sonde exited with {status}:\n{}", self.log_text());
            }
            if matches!(get(&format!("{}/-/ready", self.base_url)), Ok((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sonde not ready after 60 s:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path; panics unless the answer is 200.
    pub fn get_ok(&self, path: &str) -> String {
        match get(&format!("{}{path}", self.base_url)) {
            Ok((200, body)) => body,
            other => panic!("GET {path}: {other:?}\nlog:\n{}", self.log_text()),
        }
    }

    /// The current /metrics, parsed.
    pub fn metrics(&self) -> Vec<ExposedSample> {
        parse_exposition(&self.get_ok("/metrics"))
    }

    /// Waits for the next collection rounds to be published (interval 1 s).
    pub fn wait_rounds(&self, rounds: u32) {
        std::thread::sleep(Duration::from_millis(1100 * u64::from(rounds)));
    }

    /// Stops sonde with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> TempDir {
        unsafe_kill(self.child.id(), "TERM");
        let _ = self.child.wait();
        let data = std::mem::replace(&mut self.data, TempDir(PathBuf::new()));
        std::mem::forget(self);
        data
    }
}

impl Drop for Sonde {
    /// SIGTERM first, so sonde restores what it changed on the machine
    /// (kernel.bpf_stats_enabled); SIGKILL if it has not exited in 5 s.
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Stops a child: SIGTERM, so it can clean up, then SIGKILL if it has not
/// exited in 5 s; waits for it either way.
pub fn terminate(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        unsafe_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(None) = child.try_wait() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.wait();
}

pub fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// GET a URL; (status, body) for any status, Err only when no answer came.
pub fn get(url: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// The sum of the samples of `name` whose labels include `labels`.
pub fn total(samples: &[ExposedSample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .sum()
}

/// One sample line of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct ExposedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ExposedSample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of text exposition format 0.0.4 (comments skipped).
pub fn parse_exposition(text: &str) -> Vec<ExposedSample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            parse_sample_line(line).unwrap_or_else(|| panic!("bad exposition line: {line}"))
        })
        .collect()
}

fn parse_sample_line(line: &str) -> Option<ExposedSample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let label = rest[..eq].trim().to_string();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    c => value.push(c),
                }
            };
            rest = &rest[end + 1..];
            labels.push((label, value));
        }
    }
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(ExposedSample {
        name,
        labels,
        value,
    })
}

/// The real node_exporter on a free loopback port, killed on drop.
pub struct NodeExporter {
    child: Child,
    pub url: String,
}

impl NodeExporter {
    pub fn start() -> NodeExporter {
        NodeExporter::start_with(&[])
    }

    /// Starts node_exporter with extra flags (`--collector.disable-defaults`, ...).
    pub fn start_with(flags: &[&str]) -> NodeExporter {
        let port = free_port();
        let child = Command::new("/usr/bin/prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter is missing: make test-deps installs prometheus-node-exporter");
        let exporter = NodeExporter {
            child,
            url: format!("http://127.0.0.1:{port}/metrics"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(get(&exporter.url), Ok((200, _))) {
                return exporter;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "node_exporter did not answer on {} within 30 s",
            exporter.url
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET /metrics; panics unless the answer is 200.
    pub fn scrape(&self) -> String {
        match get(&self.url) {
            Ok((200, body)) => body,
            other => panic!("GET {}: {other:?}", self.url),
        }
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether eBPF tests must run. With `SONDE_REQUIRE_BPF=1` (CI) a test that
/// cannot load BPF fails; otherwise it prints why and skips.
pub fn bpf_required() -> bool {
    std::env::var("SONDE_REQUIRE_BPF").is_ok_and(|v| v == "1")
}

/// Runs a shell command to completion; panics with its output on failure.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The functions of `binary` (text symbols with a size) as (address, size,
/// name), by address, from `nm` (binutils).
pub fn text_symbols(binary: &Path) -> Vec<(u64, u64, String)> {
    let out = Command::new("nm")
        .args(["--defined-only", "--print-size", "--numeric-sort"])
        .arg(binary)
        .output()
        .expect("nm (binutils) runs");
    assert!(out.status.success(), "nm {} failed", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            let [address, size, kind, name] = fields[..] else {
                return None;
            };
            let text = matches!(kind, "t" | "T" | "W" | "w");
            let address = u64::from_str_radix(address, 16).ok()?;
            let size = u64::from_str_radix(size, 16).ok()?;
            (text && size > 0).then(|| (address, size, name.to_string()))
        })
        .collect()
}
