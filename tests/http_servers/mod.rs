//! What the HTTP RED tests share: real servers on loopback ports (Debian's
//! nginx, Python's ThreadingHTTPServer), plain or with TLS from a
//! self-signed certificate made with `openssl` at test time, and a Python
//! http.client client that makes a planned number of requests.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::server::wait_listening;
pub use crate::common::server::Server;
use crate::common::{Sonde, TempDir};
use crate::kernel::{attached, NamedProgram};

/// Only the http collector: the others would only add load.
pub const CONFIG: &str =
    "[collect.bpf]\nsyscalls = false\nblock = false\nnet = false\nprocess = false\nsched = false\n";

/// Which of the http collector's two captures a test runs on.
#[derive(Clone, Copy)]
pub enum Capture {
    /// At socket I/O (Linux 6.3+), the one this kernel gets.
    Sockets,
    /// At every syscall exit, the one older kernels get: the socket
    /// tracepoint refused.
    SyscallExits,
}

impl Capture {
    /// Appended to the names of a test's servers and clients: the same test
    /// on both captures runs at once, and each sonde sees both.
    pub fn tag(self) -> &'static str {
        match self {
            Capture::Sockets => "",
            Capture::SyscallExits => "x",
        }
    }

    /// Starts sonde with `config` on this capture and checks sonde says it
    /// attached it; None when the collector cannot load here (a skip).
    pub fn start(self, config: &str) -> Option<Sonde> {
        let (env, says): (&[(&str, &str)], &str) = match self {
            Capture::Sockets => (&[], "http capture: at socket I/O"),
            Capture::SyscallExits => (
                &[("SONDE_BPF_REFUSE", "sock_send_length")],
                "http capture: at every syscall exit",
            ),
        };
        let sonde = Sonde::start_with_env(TempDir::new("data"), config, env);
        if !attached(&sonde, "http") {
            return None;
        }
        let log = sonde.log_text();
        assert!(log.contains(says), "sonde did not log {says:?}:\n{log}");
        Some(sonde)
    }
}

/// The static file nginx serves, of a size that lands in the 1024 bucket.
pub const PAGE_BYTES: usize = 1000;
/// How long the Python server's /sleep route sleeps.
pub const SLEEP: Duration = Duration::from_millis(200);
/// The Python server's /chunked response: three chunks of 1,000 bytes
/// ("3e8\r\n", the bytes, "\r\n"), 10 ms apart, then the last "0\r\n\r\n".
pub const CHUNKED_WIRE_BYTES: usize = 3 * (5 + 1000 + 2) + 5;
pub const CHUNK_PAUSES: Duration = Duration::from_millis(30);

/// Starts `command` (output dropped) and waits until it listens on `port`.
fn spawn_listening(command: &mut Command, port: u16) -> Server {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?} (make test-deps installs it): {e}"));
    let mut server = Server(child);
    wait_listening(port, &mut server);
    server
}

/// A self-signed certificate and its key for `localhost`, made by openssl.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Cert {
    pub fn new(dir: &Path) -> Cert {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cannot run openssl (make test-deps installs it)");
        assert!(status.success(), "openssl req failed");
        Cert { cert, key }
    }
}

/// nginx in the foreground with its own prefix: a static page, a 404 and a
/// `return 500` location; sendfile on, so plain bodies go out by sendfile;
/// with `tls`, the port speaks HTTPS only; with `http2`, HTTP/2 only (in
/// cleartext: to clients that know it beforehand).
pub fn nginx(
    dir: &Path,
    program: &NamedProgram,
    port: u16,
    tls: Option<&Cert>,
    http2: bool,
) -> Server {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("www/page.html"), vec![b'x'; PAGE_BYTES]).unwrap();
    let d = dir.display();
    let ssl = match tls {
        Some(cert) => format!(
            " ssl{};\n  ssl_certificate {};\n  ssl_certificate_key {}",
            if http2 { " http2" } else { "" },
            cert.cert.display(),
            cert.key.display()
        ),
        None if http2 => " http2".into(),
        None => String::new(),
    };
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n sendfile on;\n client_body_temp_path {d}/tmp;\n\
         proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n\
         scgi_temp_path {d}/tmp;\n\
         server {{\n  listen 127.0.0.1:{port}{ssl};\n  root {d}/www;\n\
         location = /missing {{ return 404; }}\n  location = /fail {{ return 500; }}\n }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut command = Command::new(&program.path);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("logs/error.log"));
    spawn_listening(&mut command, port)
}

const PYTHON_SERVER: &str = r#"
import http.server, os, socketserver, ssl, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/sleep":
            time.sleep(float(sys.argv[2]))
            self.reply(200, b"slept")
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(3):
                self.wfile.write(b"3e8\r\n" + b"c" * 1000 + b"\r\n")
                time.sleep(0.01)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/users/"):
            self.reply(200, b"user " + self.path[7:].encode())
        else:
            self.reply(404, b"no")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(200, body)

# SERVER_FORKS: a child per connection, forked after the accept.
class Forking(socketserver.ForkingMixIn, http.server.HTTPServer):
    pass

kind = Forking if os.environ.get("SERVER_FORKS") else http.server.ThreadingHTTPServer
server = kind(("127.0.0.1", int(sys.argv[1])), Handler)
if len(sys.argv) > 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// The Python server as `service` (OTEL_SERVICE_NAME), with TLS when
/// `tls` is given; `env` is added to its environment.
pub fn python(dir: &Path, service: &str, port: u16, tls: Option<&Cert>) -> Server {
    python_with_env(dir, service, port, tls, &[])
}

pub fn python_with_env(
    dir: &Path,
    service: &str,
    port: u16,
    tls: Option<&Cert>,
    env: &[(&str, &Path)],
) -> Server {
    let script = dir.join("server.py");
    std::fs::write(&script, PYTHON_SERVER).unwrap();
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(port.to_string())
        .arg(SLEEP.as_secs_f64().to_string());
    if let Some(cert) = tls {
        command.arg(&cert.cert).arg(&cert.key);
    }
    command
        .envs(env.iter().copied())
        .env("OTEL_SERVICE_NAME", service);
    spawn_listening(&mut command, port)
}

/// Debian's prometheus (a stripped Go executable: Go's crypto/tls) serving
/// HTTPS with `cert` as `service`, its configuration `dir/prometheus.yml`
/// (no scrape jobs until a test writes some and POSTs /-/reload).
pub fn prometheus_tls(dir: &Path, service: &str, port: u16, cert: &Cert) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            cert.cert.display(),
            cert.key.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1s\n",
    )
    .unwrap();
    let mut command = Command::new("prometheus");
    command
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", web.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.enable-lifecycle")
        .env("OTEL_SERVICE_NAME", service);
    spawn_listening(&mut command, port)
}

const PYTHON_CLIENT: &str = r#"
import http.client, ssl, sys

context = ssl._create_unverified_context()
statuses = []
for step in sys.argv[1:]:
    scheme, port, connections, method, path, body, times = step.split(",")
    port, body, times = int(port), int(body), int(times)

    def connect():
        if scheme == "https":
            return http.client.HTTPSConnection("127.0.0.1", port, context=context)
        return http.client.HTTPConnection("127.0.0.1", port)

    conn = connect()
    for i in range(times):
        conn.request(method, path, body=b"b" * body if body else None)
        response = conn.getresponse()
        response.read()
        statuses.append(str(response.status))
        if connections == "fresh" or response.will_close:
            conn.close()
            conn = connect()
    conn.close()
print(" ".join(statuses))
"#;

/// One step of a client's plan: `times` requests over one keep-alive
/// connection (or a fresh one each, `keep_alive` false).
pub struct Step<'a> {
    pub https: bool,
    pub port: u16,
    pub keep_alive: bool,
    pub method: &'a str,
    pub path: &'a str,
    pub body: usize,
    pub times: usize,
    /// The status every response must have.
    pub status: u16,
}

/// Runs the Python client as `service` through `steps`; checks each status.
pub fn python_client(dir: &Path, service: &str, steps: &[Step]) {
    let script = dir.join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).unwrap();
    let args = steps.iter().map(|s| {
        let scheme = if s.https { "https" } else { "http" };
        let connections = if s.keep_alive { "keep" } else { "fresh" };
        format!(
            "{scheme},{},{connections},{},{},{},{}",
            s.port, s.method, s.path, s.body, s.times
        )
    });
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .env("OTEL_SERVICE_NAME", service)
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot start python3");
    assert!(out.status.success(), "the python client failed");
    let want: Vec<String> = steps
        .iter()
        .flat_map(|s| std::iter::repeat_n(s.status.to_string(), s.times))
        .collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.join(" "));
}

/// One request by curl over HTTP/2 (`how`: `--http2` over TLS,
/// `--http2-prior-knowledge` in cleartext), on a connection of its own;
/// checks the status and that HTTP/2 carried it.
pub fn curl_http2(how: &str, url: &str, status: u16) {
    let out = Command::new("curl")
        .args([
            "-sk",
            how,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{response_code}",
        ])
        .arg(url)
        .output()
        .expect("cannot run curl (make test-deps installs it)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("2 {status}"),
        "{url}"
    );
}
