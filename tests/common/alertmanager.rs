//! A real Alertmanager 0.25 (the Debian package's
//! `/usr/bin/prometheus-alertmanager`) on a free loopback port, clustering
//! off, routing everything to a receiver that sends nowhere (or as the
//! test's own config says); killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, get, TempDir};

pub struct Alertmanager {
    child: Child,
    pub base_url: String,
    dir: TempDir,
}

impl Alertmanager {
    /// Starts it; returns once /-/ready is 200.
    pub fn start() -> Alertmanager {
        Alertmanager::start_with(
            "route:\n  receiver: nowhere\n  group_wait: 1s\nreceivers:\n  - name: nowhere\n",
            &[],
        )
    }

    /// Starts it with `config` (YAML) and extra flags such as
    /// `--web.external-url=…`.
    pub fn start_with(config_text: &str, extra_args: &[&str]) -> Alertmanager {
        let dir = TempDir::new("alertmanager");
        let config = dir.0.join("alertmanager.yml");
        std::fs::write(&config, config_text).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.0.join("alertmanager.log")).unwrap();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "cannot start alertmanager: install the Debian package `prometheus-alertmanager`",
            );
        let mut alertmanager = Alertmanager {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = alertmanager.child.try_wait().unwrap() {
                panic!(
                    "alertmanager exited with {status}:\n{}",
                    alertmanager.log_text()
                );
            }
            if matches!(
                get(&format!("{}/-/ready", alertmanager.base_url)),
                Ok((200, _))
            ) {
                return alertmanager;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "alertmanager not ready after 60 s:\n{}",
            alertmanager.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("alertmanager.log")).unwrap_or_default()
    }

    /// POSTs alerts (API v2 JSON) to it; panics unless it takes them.
    pub fn post_alerts(&self, alerts: &serde_json::Value) {
        let url = format!("{}/api/v2/alerts", self.base_url);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(alerts.to_string().as_bytes())
            .unwrap_or_else(|err| panic!("POST {url}: {err}"));
        assert_eq!(
            response.status().as_u16(),
            200,
            "POST {url}\n{}",
            self.log_text()
        );
    }

    /// The alerts it holds as active (not resolved), from its API v2.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v2/alerts", self.base_url);
        match get(&url) {
            Ok((200, body)) => serde_json::from_str(&body).unwrap(),
            other => panic!("GET {url}: {other:?}\n{}", self.log_text()),
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
