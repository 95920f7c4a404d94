//! A real headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol, for tests of what a browser makes of the dashboard: a fresh
//! profile per browser, DevTools on a loopback port Chromium picks itself,
//! and a small WebSocket client (RFC 6455: one text frame per command,
//! masked as a client must; frames read whole, pings answered).
//!
//! Every event the page sends is kept, so a test can ask afterwards for the
//! console errors, uncaught exceptions and failed requests of a load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TempDir;

/// The flags every test browser starts with: no sandbox (tests run as
/// root), no GPU, and nothing that reaches the network on its own.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
];

/// A running Chromium, killed on drop.
pub struct Chromium {
    child: Child,
    pub port: u16,
    _profile: TempDir,
}

impl Chromium {
    /// Starts Chromium on `about:blank` with a fresh profile; returns once
    /// its DevTools port is known. Panics when Chromium is not installed.
    pub fn start() -> Chromium {
        let profile = TempDir::new("chromium");
        let child = Command::new("chromium")
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromium: `apt-get install chromium` (make test installs it)");
        // Chromium writes the port it bound into the profile.
        let active = profile.0.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse().ok())
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open DevTools in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Chromium {
            child,
            port,
            _profile: profile,
        }
    }

    /// A DevTools session on the browser's first page.
    pub fn page(&self) -> Page {
        let (status, body) = super::get(&format!("http://127.0.0.1:{}/json/list", self.port))
            .expect("DevTools /json/list");
        assert_eq!(status, 200, "{body}");
        let targets: Value = serde_json::from_str(&body).unwrap();
        let url = targets
            .as_array()
            .and_then(|list| list.iter().find(|t| t["type"] == "page"))
            .and_then(|page| page["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target in {body}"))
            .to_string();
        let mut page = Page {
            socket: WebSocket::connect(&url),
            next_id: 0,
            events: Vec::new(),
        };
        for domain in ["Page", "Runtime", "Log", "Network"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page
    }
}

impl Drop for Chromium {
    /// SIGTERM lets the browser take its helper processes down with it.
    fn drop(&mut self) {
        super::terminate(&mut self.child);
    }
}

/// One page's DevTools session: commands and the events seen so far.
pub struct Page {
    socket: WebSocket,
    next_id: u64,
    pub events: Vec<Value>,
}

impl Page {
    /// Sends a command and waits for its answer; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket.send(&message.to_string());
        loop {
            let message: Value = serde_json::from_str(&self.socket.receive()).unwrap();
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method}: {error}");
                }
                return message["result"].clone();
            }
            self.events.push(message);
        }
    }

    /// Waits until an event named `method` arrives after the last command
    /// (or was kept since `from`), at most `timeout`.
    pub fn wait_event(&mut self, method: &str, from: usize, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events[from..].iter().find(|e| e["method"] == method) {
                return event.clone();
            }
            assert!(Instant::now() < deadline, "no {method} in {timeout:?}");
            self.socket.set_timeout(deadline - Instant::now());
            let message: Value = serde_json::from_str(&self.socket.receive()).unwrap();
            self.events.push(message);
        }
    }

    /// Opens `url` and waits for its load event.
    pub fn open(&mut self, url: &str) {
        let from = self.events.len();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired", from, Duration::from_secs(60));
    }

    /// Evaluates a JavaScript expression in the page; its value as JSON.
    pub fn eval(&mut self, expression: &str) -> Value {
        let answer = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// The console errors, uncaught exceptions and failed or refused
    /// requests among the events from `from` on, each in a line.
    pub fn problems(&self, from: usize) -> Vec<String> {
        self.events[from..]
            .iter()
            .filter_map(|event| {
                let params = &event["params"];
                match event["method"].as_str()? {
                    "Runtime.exceptionThrown" => {
                        Some(format!("exception: {}", params["exceptionDetails"]))
                    }
                    "Runtime.consoleAPICalled" if params["type"] == "error" => {
                        Some(format!("console.error: {}", params["args"]))
                    }
                    "Log.entryAdded" if params["entry"]["level"] == "error" => {
                        Some(format!("log: {}", params["entry"]))
                    }
                    "Network.loadingFailed" => Some(format!("request failed: {params}")),
                    "Network.responseReceived"
                        if params["response"]["status"].as_u64().unwrap_or(0) >= 400 =>
                    {
                        Some(format!(
                            "HTTP {} for {}",
                            params["response"]["status"], params["response"]["url"]
                        ))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The URLs the page requested among the events from `from` on.
    pub fn requested(&self, from: usize) -> Vec<String> {
        self.events[from..]
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(String::from))
            .collect()
    }

    /// Sets the viewport (CSS pixels) as a phone's (`mobile`) or a desktop's.
    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// Asks for the light or the dark colour scheme.
    pub fn color_scheme(&mut self, scheme: &str) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    /// Writes a PNG of the whole page to `path`.
    pub fn screenshot(&mut self, path: &PathBuf) {
        use base64::Engine as _;
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// A mouse drag from (x0, y) to (x1, y) in CSS pixels of the viewport.
    pub fn drag(&mut self, x0: f64, x1: f64, y: f64) {
        let mouse = |kind: &str, x: f64, buttons: u8| json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1});
        self.call("Input.dispatchMouseEvent", mouse("mouseMoved", x0, 0));
        self.call("Input.dispatchMouseEvent", mouse("mousePressed", x0, 1));
        for step in 1..=5 {
            let x = x0 + (x1 - x0) * f64::from(step) / 5.0;
            self.call("Input.dispatchMouseEvent", mouse("mouseMoved", x, 1));
        }
        self.call("Input.dispatchMouseEvent", mouse("mouseReleased", x1, 0));
    }
}

/// A client WebSocket over plain TCP, as much of RFC 6455 as DevTools uses.
struct WebSocket {
    stream: BufReader<TcpStream>,
}

impl WebSocket {
    fn connect(url: &str) -> WebSocket {
        let rest = url.strip_prefix("ws://").expect("a ws:// URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut stream = TcpStream::connect(host).unwrap();
        // The key only proves the server speaks WebSocket; a fixed one does.
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: c29uZGUgdGVzdCBrZXkgMTY=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut stream = BufReader::new(stream);
        let mut status = String::new();
        stream.read_line(&mut status).unwrap();
        assert!(
            status.contains(" 101 "),
            "WebSocket upgrade refused: {status}"
        );
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut socket = WebSocket { stream };
        socket.set_timeout(Duration::from_secs(60));
        socket
    }

    fn set_timeout(&mut self, timeout: Duration) {
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x88];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.get_mut().write_all(&frame).unwrap();
    }

    fn send(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes());
    }

    /// The next text message, its fragments joined; pings are answered.
    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream
                .read_exact(&mut head)
                .expect("DevTools closed or went quiet");
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.stream.read_exact(&mut n).unwrap();
                    u64::from(u16::from_be_bytes(n))
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.stream.read_exact(&mut n).unwrap();
                    u64::from_be_bytes(n)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            match opcode {
                0x9 => self.send_frame(0xA, &payload),
                0x8 => panic!("DevTools closed the connection"),
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).unwrap();
                    }
                }
                _ => {}
            }
        }
    }
}
