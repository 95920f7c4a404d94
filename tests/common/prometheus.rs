//! A real Prometheus (the Debian package's `/usr/bin/prometheus`) for
//! side-by-side tests: started on a free loopback port with its own storage
//! directory and config, killed on drop, restartable on the same storage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, get, TempDir};

pub struct Prometheus {
    child: Child,
    pub base_url: String,
    pub port: u16,
    pub dir: TempDir,
    args: Vec<String>,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) and extra flags such as
    /// `--web.enable-remote-write-receiver`; returns once /-/ready is 200.
    pub fn start(config: &str, extra_args: &[&str]) -> Prometheus {
        let dir = TempDir::new("prometheus");
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let mut prometheus = Prometheus {
            child: Command::new("true").spawn().unwrap(),
            base_url: String::new(),
            port: free_port(),
            log: dir.0.join("prometheus.log"),
            dir,
            args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        prometheus.base_url = format!("http://127.0.0.1:{}", prometheus.port);
        prometheus.spawn();
        prometheus
    }

    fn spawn(&mut self) {
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                self.dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start prometheus: install the Debian package `prometheus`");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("prometheus exited with {status}:\n{}", self.log_text());
            }
            if matches!(get(&format!("{}/-/ready", self.base_url)), Ok((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("prometheus not ready after 60 s:\n{}", self.log_text());
    }

    /// Stops Prometheus (SIGTERM, so it flushes) and leaves it down.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET an API path (with its query string); panics unless the answer is
    /// 200 with `status: success`; returns the `data` field.
    pub fn api(&self, path_and_query: &str) -> serde_json::Value {
        let url = format!("{}{path_and_query}", self.base_url);
        match get(&url) {
            Ok((200, body)) => {
                let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(value["status"], "success", "{url}: {body}");
                value["data"].take()
            }
            other => panic!("GET {url}: {other:?}\nlog:\n{}", self.log_text()),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query string value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
