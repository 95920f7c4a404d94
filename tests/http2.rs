//! HTTP/2 and gRPC end to end, on both captures: Debian's nginx serving
//! HTTP/2 in cleartext (to a client that knows it beforehand) and over TLS
//! (OpenSSL's probes), curl calling it on a fresh connection each time;
//! Debian's python3-grpcio serving a gRPC service and calling it over one
//! channel (one connection, its HPACK tables carried from call to call),
//! first a batch of concurrent calls with bodies of several DATA frames
//! (reads and writes of many frames, streams interleaved).
//! sonde's /metrics must count each label set exactly on both ends, size
//! nginx's bodies, time the sleeping gRPC method within 10 %, and count no
//! gRPC call as an HTTP request; the request log and the Services view
//! show the gRPC calls served.

mod common;
mod http_servers;
mod kernel;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{wait_listening, Server};
use common::{bpf_required, free_port, ExposedSample, TempDir};
use http_servers::{curl_http2, nginx, Capture, Cert, CONFIG, PAGE_BYTES};
use kernel::{poll, value, wait_for, NamedProgram, NO_BUDGET};

/// Debian's Python, which python3-grpcio is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// How long `/shop.Cart/Slow` takes.
const SLOW: Duration = Duration::from_millis(300);
/// The concurrent calls of the client's first batch, and their bodies'
/// size (each two DATA frames of HTTP/2's default 16 KiB frames).
const BATCH: usize = 32;
const BATCH_BODY: usize = 20_000;

/// A gRPC service without generated code: `Add` echoes, `Fail` ends with
/// NOT_FOUND (5), `Slow` sleeps argv[2] seconds first.
const GRPC_SERVER: &str = r#"
import sys, time
from concurrent import futures
import grpc

def add(request, context):
    return request

def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such cart")

def slow(request, context):
    time.sleep(float(sys.argv[2]))
    return request

handlers = {
    "Add": grpc.unary_unary_rpc_method_handler(add),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("shop.Cart", handlers),))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
server.wait_for_termination()
"#;

/// Calls `/shop.Cart/Add` argv[2] times at once with a body of argv[3]
/// bytes, then `/shop.Cart/<method>` argv[4..] times each, one after the
/// other, over one channel; prints each call's status code.
const GRPC_CLIENT: &str = r#"
import sys
import grpc

channel = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
grpc.channel_ready_future(channel).result(timeout=10)
codes = []
add = channel.unary_unary("/shop.Cart/Add")
batch = [add.future(b"y" * int(sys.argv[3])) for _ in range(int(sys.argv[2]))]
for call in batch:
    codes.append("0" if len(call.result(timeout=30)) == int(sys.argv[3]) else "short")
for method, times in zip(["Add", "Fail", "Slow"], map(int, sys.argv[4:])):
    call = channel.unary_unary("/shop.Cart/" + method)
    for _ in range(times):
        try:
            call(b"x" * 10)
            codes.append("0")
        except grpc.RpcError as e:
            codes.append(str(e.code().value[0]))
print(" ".join(codes))
"#;

#[test]
fn counts_http2_and_grpc_at_socket_io() {
    counts_http2_and_grpc(Capture::Sockets);
}

#[test]
fn counts_the_same_through_the_syscall_capture() {
    counts_http2_and_grpc(Capture::SyscallExits);
}

fn counts_http2_and_grpc(capture: Capture) {
    if !grpc_installed() {
        return;
    }
    let Some(sonde) = capture.start(&format!("{NO_BUDGET}{CONFIG}")) else {
        return;
    };
    let tag = capture.tag();
    let dir = TempDir::new("http2");
    let cert = Cert::new(&dir.0);
    let program = NamedProgram::new("/usr/sbin/nginx", &format!("h2ngx{tag}"));
    let (plain_port, tls_port, grpc_port) = (free_port(), free_port(), free_port());
    let _plain = nginx(&dir.0.join("plain"), &program, plain_port, None, true);
    let _tls = nginx(&dir.0.join("tls"), &program, tls_port, Some(&cert), true);
    let shop = format!("grpc-shop{}{tag}", std::process::id());
    let buyer = format!("grpc-buyer{}{tag}", std::process::id());
    let _grpc = grpc_server(&dir.0, &shop, grpc_port);

    for (port, scheme, how) in [
        (plain_port, "http", "--http2-prior-knowledge"),
        (tls_port, "https", "--http2"),
    ] {
        for (path, status, times) in [("/page.html", 200, 3), ("/missing", 404, 2)] {
            for _ in 0..times {
                curl_http2(how, &format!("{scheme}://127.0.0.1:{port}{path}"), status);
            }
        }
    }
    let codes = grpc_client(&dir.0, &buyer, grpc_port, [5, 2, 1]);
    assert_eq!(codes, format!("{}0 0 0 0 0 5 5 0", "0 ".repeat(BATCH)));

    let grpc_port_label = grpc_port.to_string();
    let calls = |samples: &[ExposedSample], side: &str, service: &str, method: &str, code: &str| {
        let labels = [
            ("service_name", service),
            ("rpc_method", method),
            ("rpc_grpc_status_code", code),
            ("rpc_system", "grpc"),
            ("server_port", grpc_port_label.as_str()),
        ];
        value(
            samples,
            &format!("rpc_{side}_duration_seconds_count"),
            &labels,
        )
    };
    let samples = wait_for(&sonde, |s| {
        calls(s, "client", &buyer, "/shop.Cart/Slow", "0") >= 1.0
            && calls(s, "server", &shop, "/shop.Cart/Slow", "0") >= 1.0
    });
    for (side, service) in [("server", &shop), ("client", &buyer)] {
        for (method, code, count) in [
            ("/shop.Cart/Add", "0", (BATCH + 5) as f64),
            ("/shop.Cart/Fail", "5", 2.0),
            ("/shop.Cart/Slow", "0", 1.0),
        ] {
            assert_eq!(
                calls(&samples, side, service, method, code),
                count,
                "{side} {method} {code}; HTTP/2 connections given up: {}, events without room: {}",
                value(&samples, "sonde_http_h2_connections_lost_total", &[]),
                value(
                    &samples,
                    "sonde_bpf_map_full_total",
                    &[("map", "http_events")]
                ),
            );
        }
    }
    let slow = value(
        &samples,
        "rpc_server_duration_seconds_sum",
        &[("service_name", &shop), ("rpc_method", "/shop.Cart/Slow")],
    );
    assert!(
        (slow - SLOW.as_secs_f64()).abs() < SLOW.as_secs_f64() * 0.1,
        "Slow took {slow} s"
    );
    let as_http: Vec<_> = samples
        .iter()
        .filter(|s| {
            s.name.starts_with("http_")
                && (s.label("service_name") == Some(&shop)
                    || s.label("service_name") == Some(&buyer))
        })
        .collect();
    assert!(
        as_http.is_empty(),
        "gRPC calls counted as HTTP: {as_http:?}"
    );
    assert_eq!(
        value(&samples, "sonde_http_h2_connections_lost_total", &[]),
        0.0,
        "no HTTP/2 connection given up"
    );
    // The request log holds the calls served, with their codes.
    let log: serde_json::Value = serde_json::from_str(&sonde.get_ok(&format!(
        "/api/v1/requests?service={shop}&route=/shop.Cart/Fail&limit=10"
    )))
    .unwrap();
    let failed = log["data"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{log}");
    assert!(failed.iter().all(|e| e["grpc_status"] == 5), "{log}");
    // The Services view lists the gRPC service and its methods.
    let page = poll(
        || sonde.get_ok("/services?range=15m"),
        |page| page.contains(&format!(">{shop}</a>")),
    );
    for method in ["Add", "Fail", "Slow"] {
        let row = format!(">gRPC /shop.Cart/{method}</th>");
        assert!(
            page.contains(&row),
            "{row} not in the Services view:\n{page}"
        );
    }

    for port in [plain_port, tls_port] {
        let port = port.to_string();
        let served = |samples: &[ExposedSample], name: &str, route: &str, status: &str| {
            let labels = [
                ("service_name", program.comm.as_str()),
                ("server_port", port.as_str()),
                ("http_request_method", "GET"),
                ("http_route", route),
                ("http_response_status_code", status),
            ];
            value(samples, name, &labels)
        };
        let count = "http_server_request_duration_seconds_count";
        let samples = wait_for(&sonde, |s| served(s, count, "/missing", "404") >= 2.0);
        assert_eq!(served(&samples, count, "/page.html", "200"), 3.0, "{port}");
        assert_eq!(served(&samples, count, "/missing", "404"), 2.0, "{port}");
        assert_eq!(
            served(
                &samples,
                "http_server_response_body_size_bytes_sum",
                "/page.html",
                "200"
            ),
            3.0 * PAGE_BYTES as f64,
            "{port}: DATA bytes of the page"
        );
    }
}

/// Whether Debian's python3-grpcio is there; a skip (or, with BPF tests
/// required, a failure) when not.
fn grpc_installed() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import grpc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || !bpf_required(),
        "python3-grpcio is missing: run `make test-deps`"
    );
    if !ok {
        eprintln!("skipping: python3-grpcio is not installed");
    }
    ok
}

/// The gRPC server as `service` (OTEL_SERVICE_NAME), once it listens.
fn grpc_server(dir: &Path, service: &str, port: u16) -> Server {
    let script = dir.join("grpc_server.py");
    std::fs::write(&script, GRPC_SERVER).unwrap();
    let child = Command::new(PYTHON)
        .arg(&script)
        .arg(port.to_string())
        .arg(SLOW.as_secs_f64().to_string())
        .env("OTEL_SERVICE_NAME", service)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    wait_listening(port, &mut server);
    server
}

/// Runs the gRPC client as `service`: [`BATCH`] concurrent calls of Add,
/// then `times` calls of Add, Fail and Slow; the status codes it printed.
fn grpc_client(dir: &Path, service: &str, port: u16, times: [u32; 3]) -> String {
    let script = dir.join("grpc_client.py");
    std::fs::write(&script, GRPC_CLIENT).unwrap();
    let out = Command::new(PYTHON)
        .arg(&script)
        .arg(port.to_string())
        .args([BATCH, BATCH_BODY].map(|n| n.to_string()))
        .args(times.map(|t| t.to_string()))
        .env("OTEL_SERVICE_NAME", service)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the gRPC client failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
