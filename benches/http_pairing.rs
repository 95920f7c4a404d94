//! User-space CPU per HTTP request of the http collector: a request's DONE
//! event (its heads, times and byte counts) matched to its connection's
//! OPEN, parsed, labelled and put in the histograms and the request log
//! ([`sonde::collect::http::Red`]), as the ring-buffer reader does for
//! every request the kernel side saw.
//!
//!     cargo bench --bench http_pairing [-- REQUESTS]     # default 200000
//!
//! (with the Makefile's flags and environment, see BENCHMARKS.md). The
//! requests are wrk's against nginx (`benches/http_wrk.sh`): the same
//! request line and nginx 1.22's response header, over 16 keep-alive
//! connections of one process accepted on a real loopback listener. The
//! figure is this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) per request,
//! the median of 5 runs; decoding the ring buffer's bytes and the reader's
//! wakeups are not in it.

use std::os::fd::AsRawFd;
use std::time::Duration;

use sonde::bench::thread_cpu_ns;
use sonde::collect::http::{Conn, Event, Red, Role};
use sonde::collect::monotonic_ns;
use sonde::config::HttpConfig;

const REQUEST: &[u8] = b"GET /page.html HTTP/1.1\r\nHost: 127.0.0.1:28123\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 15:57:01 GMT\r\nContent-Type: text/html\r\nContent-Length: 1000\r\nLast-Modified: Fri, 27 Nov 2026 15:56:58 GMT\r\nConnection: keep-alive\r\nETag: \"6928f47a-3e8\"\r\nAccept-Ranges: bytes\r\n\r\n";
const CONNECTIONS: i32 = 16;

/// CPU ns per request over `requests` requests.
fn run(red: &mut Red, listen_fd: i32, requests: u64) -> f64 {
    let tgid = std::process::id();
    // Keep-alive connections: one OPEN each, at their first request.
    for fd in 100..100 + CONNECTIONS {
        red.observe(Event::Open {
            conn: Conn { tgid, fd },
            key: fd as u64,
            parent: 0,
            cgroup: 0,
            comm: b"nginx",
            listen_fd,
            role: Role::Server,
            server: None,
        });
    }
    let start = thread_cpu_ns();
    let base = monotonic_ns();
    for n in 0..requests {
        let conn = Conn {
            tgid,
            fd: 100 + (n % CONNECTIONS as u64) as i32,
        };
        let ns = base + n * 10_000;
        red.observe(Event::Done {
            conn,
            start_ns: ns,
            end_ns: ns + 6_000,
            request_bytes: REQUEST.len() as u64,
            response_bytes: RESPONSE.len() as u64 + 1000,
            request_head: REQUEST,
            response_head: RESPONSE,
            closed: false,
        });
    }
    (thread_cpu_ns() - start) / requests as f64
}

fn main() {
    let requests: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("cannot listen on loopback");
    let listen_fd = listener.as_raw_fd();
    let mut red = Red::new(Duration::from_secs(300), &HttpConfig::default()).unwrap();
    run(&mut red, listen_fd, 1_000);
    let mut runs: Vec<f64> = (0..5).map(|_| run(&mut red, listen_fd, requests)).collect();
    runs.sort_by(f64::total_cmp);
    let families = red.families();
    let count: f64 = families
        .iter()
        .flat_map(|f| &f.series)
        .filter(|s| s.labels.metric_name() == "http_server_request_duration_seconds_count")
        .map(|s| s.value)
        .sum();
    assert_eq!(count, (1_000 + 5 * requests) as f64, "requests lost");
    println!(
        "user-space CPU per request: median {:.0} ns (min {:.0}, max {:.0}) over 5 runs of {requests} requests",
        runs[2], runs[0], runs[4]
    );
}
