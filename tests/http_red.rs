//! HTTP RED metrics end to end: real servers (Debian's nginx, Python's
//! ThreadingHTTPServer) on loopback ports, driven by a client that makes a
//! known number of requests per method, status and route over keep-alive
//! and fresh connections; sonde's /metrics must count each label set
//! exactly, time a sleeping route within 10 % and size bodies right.

mod common;
mod http_servers;
mod kernel;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{free_port, ExposedSample, Sonde, TempDir};
use http_servers::{
    nginx, python, python_with_env, Capture, CHUNKED_WIRE_BYTES, CHUNK_PAUSES, CONFIG, PAGE_BYTES,
    SLEEP,
};

/// A request body of 1 MiB: many reads for the server, many writes back.
const LARGE_BODY: usize = 1 << 20;
use kernel::{attached, value, wait_for, NamedProgram, NO_BUDGET};

/// Reads one response: its status and body (by Content-Length, or chunked:
/// then the chunks' payload).
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, v)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
            chunked |= name.eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked";
        }
    }
    if !chunked {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        return (status, body);
    }
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2]; // and its CRLF
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return (status, body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// One request: method, path, body.
type Request<'a> = (&'a str, &'a str, &'a [u8]);

/// Sends `requests` one after the other on one keep-alive connection;
/// checks each status.
fn keep_alive(port: u16, requests: &[(Request, u16)]) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for ((method, path, body), status) in requests {
        // One write per request, as real clients send them.
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        writer.write_all(&request).unwrap();
        assert_eq!(read_response(&mut reader).0, *status, "{method} {path}");
    }
}

/// Each request on a connection of its own.
fn fresh(port: u16, requests: &[(Request, u16)]) {
    for request in requests {
        keep_alive(port, std::slice::from_ref(request));
    }
}

/// A POST that waits for `100 Continue` before it sends its body.
fn expect_continue(port: u16, body: &[u8]) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let header = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(header.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader).0, 100);
    writer.write_all(body).unwrap();
    let (status, echoed) = read_response(&mut reader);
    assert_eq!((status, echoed.as_slice()), (200, body));
}

/// A GET written in pieces, each its own segment (so the server's reads
/// see them apart), the first cutting the method.
fn in_pieces(port: u16, path: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let rest = format!("T {path} HTTP/1.1\r\nHost: localhost\r\n");
    for piece in ["GE", rest.as_str(), "\r\n"] {
        writer.write_all(piece.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_response(&mut BufReader::new(stream)).0, 200);
}

/// Requests pipelined: all written at once, then every response read.
fn pipelined(port: u16, requests: &[(&str, u16)]) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let batch: String = requests
        .iter()
        .map(|(path, _)| format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        .collect();
    let mut writer = stream.try_clone().unwrap();
    writer.write_all(batch.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    for (path, status) in requests {
        assert_eq!(read_response(&mut reader).0, *status, "{path}");
    }
}

fn repeat<'a>(request: Request<'a>, status: u16, times: usize) -> Vec<(Request<'a>, u16)> {
    vec![(request, status); times]
}

/// The value of `metric` for one server's label set.
fn of(samples: &[ExposedSample], metric: &str, service: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("service_name", service)];
    labels.extend_from_slice(extra);
    value(samples, metric, &labels)
}

const COUNT: &str = "http_server_request_duration_seconds_count";

fn labels<'a>(method: &'a str, status: &'a str, route: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("http_request_method", method),
        ("http_response_status_code", status),
        ("http_route", route),
    ]
}

/// Sends `signal` to sonde's thread named `name` (waiting for it at most 10 s).
fn signal_thread(sonde: &Sonde, name: &str, signal: i32) {
    let pid = sonde.child.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let tid = loop {
        let found = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(Result::ok)
            .find(|task| {
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == name)
            });
        if let Some(task) = found {
            break task.file_name().to_string_lossy().parse::<i64>().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sonde has no {name} thread"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: tgkill sends a signal to one thread of our own child.
    let sent = unsafe { libc::syscall(libc::SYS_tgkill, pid as i64, tid, signal as i64) };
    assert_eq!(sent, 0, "tgkill {pid} {tid}");
}

#[test]
fn counts_nginx_and_python_requests_per_label_set() {
    counts_per_label_set(Capture::Sockets);
}

#[test]
fn counts_the_same_through_the_syscall_capture() {
    counts_per_label_set(Capture::SyscallExits);
}

fn counts_per_label_set(capture: Capture) {
    let Some(sonde) = capture.start(&format!("{NO_BUDGET}{CONFIG}")) else {
        return;
    };
    // A signal interrupting the event reader's poll (a SIGHUP reload) does
    // not stop it: the counts below need it.
    signal_thread(&sonde, "sonde-http", libc::SIGHUP);
    let dir = TempDir::new("http-red");
    let program = NamedProgram::new("/usr/sbin/nginx", &format!("sngx{}", capture.tag()));
    let (nginx_port, python_port) = (free_port(), free_port());
    let nginx_server = nginx(&dir.0.join("nginx"), &program, nginx_port, None, false);
    let python_service = format!("spy{}{}", std::process::id(), capture.tag());
    std::fs::create_dir_all(dir.0.join("python")).unwrap();
    let python_server = python(&dir.0.join("python"), &python_service, python_port, None);

    let page = ("GET", "/page.html", &b""[..]);
    let post = ("POST", "/page.html", &[b'p'; 100][..]);
    let mut nginx_requests = repeat(page, 200, 5);
    nginx_requests.extend(repeat(("GET", "/missing?x=1", b""), 404, 4));
    nginx_requests.extend(repeat(post, 405, 2));
    keep_alive(nginx_port, &nginx_requests);
    fresh(nginx_port, &repeat(page, 200, 3));
    // nginx closes the connection after a 500: fresh ones only.
    fresh(nginx_port, &repeat(("GET", "/fail", b""), 500, 5));

    let mut python_requests = repeat(("GET", "/users/123", b""), 200, 3);
    python_requests.extend(repeat(("GET", "/users/456", b""), 200, 2));
    python_requests.extend(repeat(("POST", "/echo", &[b'e'; 300][..]), 200, 2));
    // A large body, read and written in many pieces.
    let large = vec![b'l'; LARGE_BODY];
    python_requests.push((("POST", "/echo", &large[..]), 200));
    // Chunked responses, each ending with its last chunk.
    python_requests.extend(repeat(("GET", "/chunked", b""), 200, 2));
    keep_alive(python_port, &python_requests);
    fresh(python_port, &repeat(("GET", "/sleep", b""), 200, 4));
    fresh(python_port, &repeat(("BREW", "/pot", b""), 501, 1));
    expect_continue(python_port, &[b'c'; 50]);
    in_pieces(python_port, "/users/789");
    pipelined(
        python_port,
        &[("/users/111", 200), ("/users/222", 200), ("/nothing", 404)],
    );

    let nginx_service = program.comm.as_str();
    let samples = wait_for(&sonde, |s| {
        of(s, COUNT, nginx_service, &[]) >= 19.0 && of(s, COUNT, &python_service, &[]) >= 20.0
    });
    drop((nginx_server, python_server));

    let ngx = |metric: &str, l: &[(&str, &str)]| of(&samples, metric, nginx_service, l);
    let port = nginx_port.to_string();
    assert_eq!(ngx(COUNT, &[]), 19.0, "every nginx request, once");
    assert_eq!(
        ngx(
            COUNT,
            &[
                labels("GET", "200", "/page.html").as_slice(),
                &[("server_port", &port)]
            ]
            .concat()
        ),
        8.0
    );
    assert_eq!(ngx(COUNT, &labels("GET", "404", "/missing")), 4.0);
    assert_eq!(ngx(COUNT, &labels("GET", "500", "/fail")), 5.0);
    assert_eq!(ngx(COUNT, &labels("POST", "405", "/page.html")), 2.0);
    // The page's body, sent by sendfile after a writev of the header.
    let page_labels = labels("GET", "200", "/page.html");
    assert_eq!(
        ngx("http_server_response_body_size_bytes_sum", &page_labels),
        (8 * PAGE_BYTES) as f64
    );
    let bucket = |le: &str| {
        ngx(
            "http_server_response_body_size_bytes_bucket",
            &[page_labels.as_slice(), &[("le", le)]].concat(),
        )
    };
    assert_eq!((bucket("512"), bucket("1024")), (0.0, 8.0));
    assert_eq!(
        ngx(
            "http_server_request_body_size_bytes_sum",
            &labels("POST", "405", "/page.html")
        ),
        200.0
    );

    let py = |metric: &str, l: &[(&str, &str)]| of(&samples, metric, &python_service, l);
    assert_eq!(py(COUNT, &[]), 20.0, "every python request, once");
    // Five on a keep-alive connection, one written in pieces, two pipelined.
    assert_eq!(py(COUNT, &labels("GET", "200", "/users/*")), 8.0);
    assert_eq!(
        py(
            "http_server_response_body_size_bytes_sum",
            &labels("GET", "200", "/users/*")
        ),
        (8 * "user 123".len()) as f64
    );
    assert_eq!(py(COUNT, &labels("GET", "404", "/nothing")), 1.0);
    // 100 Continue is not the final status; both POST bodies counted.
    let echo = labels("POST", "200", "/echo");
    assert_eq!(py(COUNT, &echo), 4.0);
    assert_eq!(
        py("http_server_request_body_size_bytes_sum", &echo),
        (2 * 300 + 50 + LARGE_BODY) as f64
    );
    assert_eq!(
        py("http_server_response_body_size_bytes_sum", &echo),
        (2 * 300 + 50 + LARGE_BODY) as f64
    );
    // A chunked body is its bytes on the wire after the head, framing
    // included; its duration ends with the last chunk, after the pauses.
    let chunked = labels("GET", "200", "/chunked");
    assert_eq!(py(COUNT, &chunked), 2.0);
    assert_eq!(
        py("http_server_response_body_size_bytes_sum", &chunked),
        (2 * CHUNKED_WIRE_BYTES) as f64
    );
    let mean = py("http_server_request_duration_seconds_sum", &chunked) / 2.0;
    assert!(mean >= CHUNK_PAUSES.as_secs_f64(), "chunked mean {mean} s");
    assert_eq!(py(COUNT, &labels("_OTHER", "501", "/pot")), 1.0);
    let sleep = labels("GET", "200", "/sleep");
    assert_eq!(py(COUNT, &sleep), 4.0);
    let mean = py("http_server_request_duration_seconds_sum", &sleep) / 4.0;
    let want = SLEEP.as_secs_f64();
    assert!(
        (mean - want).abs() <= want * 0.1,
        "mean duration {mean} s, slept {want} s"
    );

    // sonde never instruments itself.
    let own_port = sonde.base_url.rsplit(':').next().unwrap();
    assert_eq!(value(&samples, COUNT, &[("server_port", own_port)]), 0.0);
}

/// A ring of the smallest size, 64 KiB, wraps many times: 1,500 requests
/// are ~1.4 MB of records with both ends probed, ~22 laps of it (read off
/// the ring's consumer page once for the same requests), and records of
/// several lengths straddle its end at changing places. Every request is
/// counted, with its status, route and body size: none lost, none read
/// wrongly.
#[test]
fn a_small_ring_that_wraps_many_times_loses_and_garbles_nothing() {
    let sonde = Sonde::start(&format!("{NO_BUDGET}{CONFIG}http_ring_size = \"64KiB\"\n"));
    if !attached(&sonde, "http") {
        return;
    }
    let dir = TempDir::new("http-red-wrap");
    let program = NamedProgram::new("/usr/sbin/nginx", "sngxwrap");
    let port = free_port();
    let _server = nginx(&dir.0.join("nginx"), &program, port, None, false);
    let page = ("GET", "/page.html", &b""[..]);
    let missing = ("GET", "/missing?lap=0123456789", &b""[..]);
    let batch = [
        (page, 200),
        (missing, 404),
        (page, 200),
        (missing, 404),
        (page, 200),
    ];
    // Paced, 5 requests (~5 KiB) every 10 ms: the reader, woken when a
    // quarter of the ring fills, has ~100 ms to get a CPU before the other
    // three quarters fill, more than a loaded machine made it wait.
    const BATCHES: usize = 300;
    for _ in 0..BATCHES {
        keep_alive(port, &batch);
        std::thread::sleep(Duration::from_millis(10));
    }

    let service = program.comm.as_str();
    let sent = (BATCHES * batch.len()) as f64;
    let samples = wait_for(&sonde, |s| of(s, COUNT, service, &[]) >= sent);
    let full = value(
        &samples,
        "sonde_bpf_map_full_total",
        &[("map", "http_events")],
    );
    assert_eq!(
        of(&samples, COUNT, service, &[]),
        sent,
        "ring full {full} times"
    );
    let pages = (BATCHES * 3) as f64;
    let page_labels = labels("GET", "200", "/page.html");
    assert_eq!(of(&samples, COUNT, service, &page_labels), pages);
    assert_eq!(
        of(&samples, COUNT, service, &labels("GET", "404", "/missing")),
        (BATCHES * 2) as f64
    );
    assert_eq!(
        of(
            &samples,
            "http_server_response_body_size_bytes_sum",
            service,
            &page_labels
        ),
        pages * PAGE_BYTES as f64
    );
}

#[test]
fn picks_up_a_connection_opened_before_sonde_at_its_next_request() {
    let dir = TempDir::new("http-red-old");
    let port = free_port();
    let service = format!("spyold{}", std::process::id());
    let _server = python(&dir.0, &service, port, None);
    let users = ("GET", "/users/7", &b""[..]);
    let old = TcpStream::connect(("127.0.0.1", port)).unwrap();
    old.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = old.try_clone().unwrap();
    let mut half = old.try_clone().unwrap();
    let mut reader = BufReader::new(old);
    let mut request = move |bytes: &[u8]| {
        writer.write_all(bytes).unwrap();
        assert_eq!(read_response(&mut reader).0, 200);
    };
    let get = b"GET /users/7 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // Before sonde: not seen; nor the request whose body is half sent.
    request(get);
    half.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nhalf")
        .unwrap();

    let sonde = Sonde::start(&format!("{NO_BUDGET}{CONFIG}"));
    if !attached(&sonde, "http") {
        return;
    }
    // A connection sonde sees accepted makes the process a known server
    // (to the syscall capture; the socket capture needs none)...
    fresh(port, &[(users, 200)]);
    // ...so the old connection is picked up at its next request line,
    // after the rest of a body (no request line: it is looked at again).
    request(b"rest");
    for _ in 0..3 {
        request(get);
    }
    // Closed: the last request is done.
    drop((request, half));
    let port_label = port.to_string();
    let want = [
        ("service_name", service.as_str()),
        ("http_route", "/users/*"),
        ("server_port", port_label.as_str()),
    ];
    let samples = wait_for(&sonde, |s| value(s, COUNT, &want) >= 4.0);
    assert_eq!(value(&samples, COUNT, &want), 4.0);
}

/// A server that forks a child per connection after accepting it (Python's
/// ForkingMixIn; busybox httpd and inetd-style servers alike): the child
/// never accepted, and the socket capture sees its requests all the same,
/// counted under the server's own instance, not one per child.
#[test]
fn counts_a_server_that_forks_a_child_per_connection() {
    let Some(sonde) = Capture::Sockets.start(&format!("{NO_BUDGET}{CONFIG}")) else {
        return;
    };
    let dir = TempDir::new("http-red-fork");
    let port = free_port();
    let service = format!("spyfork{}", std::process::id());
    let server = python_with_env(
        &dir.0,
        &service,
        port,
        None,
        &[("SERVER_FORKS", Path::new("1"))],
    );
    let users = ("GET", "/users/7", &b""[..]);
    fresh(port, &repeat(users, 200, 3));
    keep_alive(port, &repeat(users, 200, 2));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let instance = format!("{}:{}", host.trim(), server.0.id());
    let want = [
        ("service_name", service.as_str()),
        ("http_route", "/users/*"),
        ("instance", instance.as_str()),
    ];
    let samples = wait_for(&sonde, |s| value(s, COUNT, &want) >= 5.0);
    assert_eq!(value(&samples, COUNT, &want), 5.0);
}
