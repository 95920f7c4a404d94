//! A real SMTP server (aiosmtpd, from Debian's `python3-aiosmtpd`) on a
//! free loopback port that requires STARTTLS and AUTH, with a certificate
//! signed by a CA made here with openssl; killed on drop. What it receives
//! (AUTH attempts, messages, each with whether it came over TLS) is read
//! back as JSON. The server itself is `smtp_server.py` beside this file.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, sh, TempDir};

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    /// The CA that signed the server's certificate (for `ca_file`).
    pub ca_file: PathBuf,
    record: PathBuf,
    _dir: TempDir,
}

impl SmtpServer {
    /// Starts it for one account, `user` with `password`; returns once it
    /// listens. A CA and a server certificate for 127.0.0.1 rather than one
    /// self-signed certificate: webpki refuses a CA certificate as a
    /// server's, and openssl's self-signed ones are CA certificates.
    pub fn start(user: &str, password: &str) -> SmtpServer {
        let dir = TempDir::new("smtp");
        let d = dir.0.display();
        let key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        sh(&format!(
            "set -e; cd {d}\n\
             openssl req -x509 {key} -keyout ca.key -out ca.pem -days 1 -subj /CN=sonde-test-ca 2>/dev/null\n\
             openssl req {key} -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null\n\
             printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > server.ext\n\
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext -out server.pem 2>/dev/null"
        ));
        let port = free_port();
        let record = dir.0.join("record.jsonl");
        let mut child = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/common/smtp_server.py"
            ))
            .arg(port.to_string())
            .arg(dir.0.join("server.pem"))
            .arg(dir.0.join("server.key"))
            .args([user, password])
            .arg(&record)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.0.join("server.log")).unwrap())
            .spawn()
            .expect("cannot start python3: make test-deps installs python3-aiosmtpd");
        // The ready line, read on a thread so the wait is bounded.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let server = SmtpServer {
            child,
            port,
            ca_file: dir.0.join("ca.pem"),
            record,
            _dir: dir,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.trim() == "ready" => server,
            other => panic!(
                "the SMTP server did not start ({other:?}; make test-deps installs python3-aiosmtpd):\n{}",
                server.log_text()
            ),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("server.log")).unwrap_or_default()
    }

    /// Everything recorded so far, one JSON object per AUTH attempt or
    /// message (a line still being written is left for the next read).
    pub fn record(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits (at most `limit`) until `check` holds for the record.
    pub fn wait_for(
        &self,
        limit: Duration,
        check: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let record = self.record();
            if check(&record) || Instant::now() >= deadline {
                return record;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
